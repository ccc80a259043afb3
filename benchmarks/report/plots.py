"""PNG plots per comparison group: perplexity curves, a tokens/sec bar chart and the
headline's forest plot (each contender's ratio to the fastest, with its interval).

One group is one preset on one machine and device (see report_data), so a plot never
mixes machines. matplotlib runs headless (Agg).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator  # noqa: E402

from benchmarks.report.data import pick_rows, threads_label  # noqa: E402
from benchmarks.report.display import scaling_title  # noqa: E402
from benchmarks.report.tables import AXIS_LABEL, scaling_label, with_baseline  # noqa: E402
from common.files import replacing  # noqa: E402

COLORS = plt.get_cmap("tab10").colors
OURS = re.compile(r"^G\d+-.*-(ppl|toks)\.png$")


def save(fig, path: Path) -> None:
    """fig as a PNG at `path`, atomically (common.files): an old plot stays whole
    until the new one is complete."""
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=100)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "x"


def _label(run: pd.Series) -> str:
    label = f"{run['backend']} {run['mode']}"
    return label if run["status"] == "ok" else f"{label} ({run['status']})"


def _title(run: pd.Series) -> str:
    device = "cpu" if run["device_kind"] == "cpu" else run["device"]
    return f"{run['preset_label']} · {device} on {run['machine']} · {threads_label(run['threads'])}"


def _finite(values: list) -> list[float]:
    return [v if isinstance(v, (int, float)) and math.isfinite(v) else math.nan for v in values]


def _curves(ax_epoch, ax_time, run: pd.Series, color) -> None:
    epochs = run["epoch_list"]
    x = [e.get("epoch") for e in epochs]
    t = pd.Series([float(e.get("seconds") or 0.0) for e in epochs]).cumsum().tolist()
    marker = "o" if len(epochs) <= 12 else None
    for key, style, suffix in (("train_ppl", "-", "train"), ("val_ppl", "--", "val")):
        y = _finite([e.get(key) for e in epochs])
        if all(math.isnan(v) for v in y):
            continue
        has_val = any(e.get("val_ppl") is not None for e in epochs)
        label = f"{_label(run)} {suffix}" if has_val else _label(run)
        ax_epoch.plot(x, y, style, color=color, label=label, marker=marker, markersize=3)
        ax_time.plot(t, y, style, color=color, label=label, marker=marker, markersize=3)


def _minor_label(value: float, _pos) -> str:
    """Label only 2, 3 and 5 times a power of ten, so a log axis stays readable."""
    return f"{value:g}" if f"{value:.0e}"[0] in "235" else ""


def _target_line(run: pd.Series, axes) -> None:
    target = run["target_ppl"] if not math.isnan(run["target_ppl"]) else run["book"].get("target_ppl")
    if target:
        for ax in axes:
            ax.axhline(target, color="0.4", linestyle=":", linewidth=1, label=f"target {target:g}")


def perplexity_plot(group: pd.DataFrame, path: Path) -> None:
    """Perplexity vs epoch and vs cumulative training seconds, one line per backend/mode."""
    fig, (ax_epoch, ax_time) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for i, (_, run) in enumerate(group.iterrows()):
        _curves(ax_epoch, ax_time, run, COLORS[i % len(COLORS)])
    ax_epoch.set(xlabel="epoch", ylabel="perplexity (log scale)", yscale="log")
    ax_time.set(xlabel="training seconds (cumulative, incl. warm-up)")
    ax_epoch.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_epoch.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax_epoch.yaxis.set_minor_formatter(FuncFormatter(_minor_label))
    _target_line(group.iloc[0], (ax_epoch, ax_time))
    for ax in (ax_epoch, ax_time):
        ax.grid(True, which="both", alpha=0.3)
    if ax_time.get_legend_handles_labels()[0]:
        ax_time.legend(fontsize=8, loc="upper right")
    fig.suptitle(_title(group.iloc[0]), fontsize=10)
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)


def throughput_plot(group: pd.DataFrame, path: Path) -> None:
    """Steady-state tokens/sec per backend/mode, with min-max whiskers; non-ok bars hatched."""
    group = group.sort_values("tok_s_median", na_position="first")
    labels = [_label(r) for _, r in group.iterrows()]
    med = group["tok_s_median"].fillna(0.0)
    err = [(med - group["tok_s_min"]).clip(lower=0).fillna(0.0), (group["tok_s_max"] - med).clip(lower=0).fillna(0.0)]
    ok = group["status"].eq("ok").tolist()
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(group) + 1.4))
    bars = ax.barh(labels, med, xerr=err, capsize=3, color=[COLORS[0] if o else "0.75" for o in ok],
                   hatch=None, edgecolor="black", linewidth=0.5)
    for bar, o, value, end in zip(bars, ok, med, med + err[1], strict=True):
        if not o:
            bar.set_hatch("//")
        ax.annotate(f" {value:,.0f}", (end, bar.get_y() + bar.get_height() / 2), va="center", fontsize=8)
    ax.set(xlabel="tokens/sec (median over epochs after the first; whiskers: min-max)")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xlim(0, max(float((med + err[1]).max()), 1.0) * 1.18)
    ax.set_title(_title(group.iloc[0]), fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)


def write_plots(runs: pd.DataFrame, plot_dir: Path) -> dict[str, list[Path]]:
    """Both plots for every comparison group; returns group id -> PNG paths."""
    plot_dir.mkdir(parents=True, exist_ok=True)
    for old in plot_dir.glob("G*.png"):  # group ids renumber as records come and go
        if OURS.match(old.name):
            old.unlink()
    written: dict[str, list[Path]] = {}
    if runs.empty:
        return written
    rows = pick_rows(runs).sort_values(["group", "backend", "mode"])
    for gid, group in rows.groupby("group", sort=True):
        stem = f"{gid}-{slug(group['preset_label'].iloc[0])}"
        ppl, toks = plot_dir / f"{stem}-ppl.png", plot_dir / f"{stem}-toks.png"
        perplexity_plot(group, ppl)
        throughput_plot(group, toks)
        written[gid] = [ppl, toks]
    return written


LOG_AXES = {"batch_size", "num_hiddens", "num_steps"}


SCALING_OURS = re.compile(r"^S\d+-.*-scaling\.png$")

def _draw(ax_tok, ax_mem, points: pd.DataFrame, axis: str) -> None:
    ok = points[points["status"].eq("ok")]
    modes = ok.groupby("backend")["mode"].nunique().to_dict()
    for i, ((backend, mode), line) in enumerate(ok.groupby(["backend", "mode"], sort=True)):
        style = {"color": COLORS[i % len(COLORS)], "marker": "o", "markersize": 4,
                 "label": scaling_label(backend, mode, modes)}
        ax_tok.plot(line["value"], line["tok_s_median"], **style)
        ax_mem.plot(line["value"], line["peak_rss_mb"], **style)
    for ax in (ax_tok, ax_mem):
        if axis in LOG_AXES:
            ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(points["value"].dropna().unique()))  # ticks at the measured sizes
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.grid(True, which="both", alpha=0.3)
    ax_tok.set_yscale("log")
    ax_tok.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax_tok.yaxis.set_minor_formatter(FuncFormatter(_minor_label))
    ax_mem.set(xlabel=AXIS_LABEL[axis])


def scaling_plot(per_axis: dict[str, pd.DataFrame], title: str, path: Path) -> None:
    """Tokens/sec (top, log) and peak RSS (bottom) vs each varied size, one line per backend."""
    n = len(per_axis)
    fig, axes = plt.subplots(2, n, figsize=(4.2 * n + 0.6, 6.4), squeeze=False, sharey="row")
    for col, (axis, points) in enumerate(per_axis.items()):
        _draw(axes[0][col], axes[1][col], points, axis)
    axes[0][0].set(ylabel="tokens/sec (median, log)")
    axes[1][0].set(ylabel="peak RSS (MB)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        axes[0][0].legend(handles, labels, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)


def write_scaling_plots(table: pd.DataFrame, base_specs: dict[str, dict], plot_dir: Path) -> dict[tuple, Path]:
    """One PNG per scaling group and preset; returns (sgroup, preset) -> path."""
    plot_dir.mkdir(parents=True, exist_ok=True)
    for old in plot_dir.glob("S*.png"):  # scaling group ids renumber as records come and go
        if SCALING_OURS.match(old.name):
            old.unlink()
    written = {}
    for (sgroup, preset), rows in table.groupby(["sgroup", "preset"], sort=True):
        per_axis = with_baseline(rows, base_specs[preset]) if preset in base_specs else {}
        if not per_axis:
            continue
        path = plot_dir / f"{sgroup}-{slug(preset)}-scaling.png"
        scaling_plot(per_axis, scaling_title(rows), path)
        written[(sgroup, preset)] = path
    return written


FOREST_OURS = re.compile(r"^F.+-verdict\.png$")
BACKEND_COLORS = {"pytorch": "#ee4c2c", "mxnet": "#1f77b4", "jax": "#8e44ad"}  # fixed, so every plot agrees
TRACK_MARKERS = {"tuned": "o", "out-of-box": "s", "book": "^"}
OTHER_MARKER, OTHER_COLOR, TWIN_COLOR = "D", "0.35", "0.55"
FOREST_XLABEL = "throughput / fastest (95% interval)"


def _track(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and value == value else math.nan


def forest_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """One preset's headline rows -> what the forest plot draws, top row first: the
    fastest, then by ratio, failed rows (no ratio) last. Columns: label, ratio, lo, hi,
    color, marker, filled (False for the A/A twin), note (the text beside the row)."""
    rows = rows.assign(twin=rows["twin"].fillna(False).astype(bool) if "twin" in rows else False)
    ratio = pd.to_numeric(rows["ratio"], errors="coerce")
    order = pd.DataFrame({"failed": ratio.isna(), "not_fastest": rows["verdict"].ne("fastest"), "neg": -ratio})
    rows = rows.loc[order.sort_values(["failed", "not_fastest", "neg"], kind="stable").index]
    out = []
    for _, r in rows.iterrows():
        value, lo, hi = _number(r["ratio"]), _number(r["ratio_lo"]), _number(r["ratio_hi"])
        twin = bool(r["twin"])
        interval = f" [{lo:.2f}, {hi:.2f}]" if lo == lo and hi == hi else ""
        failed = r["verdict"] if r["status"] in (r["verdict"], "ok") else f"{r['verdict']} ({r['status']})"
        note = f"{value:.2f}×{interval} {r['verdict']}" if value == value else failed
        out.append({"label": f"twin (A/A): {r['contender']}" if twin else str(r["contender"]),
                    "ratio": value, "lo": lo, "hi": hi, "track": _track(r.get("track")),
                    "color": TWIN_COLOR if twin else BACKEND_COLORS.get(r["backend"], OTHER_COLOR),
                    "marker": TRACK_MARKERS.get(_track(r.get("track")), OTHER_MARKER), "filled": not twin,
                    "note": note})
    return pd.DataFrame(out, columns=["label", "ratio", "lo", "hi", "track", "color", "marker", "filled", "note"])


def _forest_point(ax, y: int, row: pd.Series) -> None:
    """One contender: its ratio, the interval as a horizontal bar (where known), its note."""
    if row["ratio"] == row["ratio"]:
        has_ci = row["lo"] == row["lo"] and row["hi"] == row["hi"]
        xerr = [[max(row["ratio"] - row["lo"], 0.0)], [max(row["hi"] - row["ratio"], 0.0)]] if has_ci else None
        ax.errorbar([row["ratio"]], [y], xerr=xerr, fmt=row["marker"], color=row["color"], capsize=3,
                    markersize=7, markerfacecolor=row["color"] if row["filled"] else "white",
                    markeredgecolor=row["color"], linestyle="none")
    ax.annotate(row["note"], (1.01, y), xycoords=ax.get_yaxis_transform(), va="center", fontsize=8,
                color="0.15" if row["ratio"] == row["ratio"] else "#b00020", annotation_clip=False)


def _forest_legend(ax, data: pd.DataFrame, backends: list[str]) -> None:
    """Marker = track, colour = framework, hollow grey = the A/A twin; only what is drawn."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=BACKEND_COLORS.get(b, OTHER_COLOR), marker="o", linestyle="none", label=b)
               for b in backends]
    for track in dict.fromkeys(_track(t) for t in data["track"]):
        marker = TRACK_MARKERS.get(track, OTHER_MARKER)
        handles.append(Line2D([], [], color="0.2", marker=marker, linestyle="none", label=track or "no track"))
    if (~data["filled"]).any():
        handles.append(Line2D([], [], color=TWIN_COLOR, marker="o", markerfacecolor="white", linestyle="none",
                              label="twin (A/A)"))
    ax.figure.legend(handles=handles, loc="outside lower left", ncol=len(handles), fontsize=8, frameon=False,
                     handletextpad=0.2, columnspacing=1.0)


def forest_plot(rows: pd.DataFrame, path: Path, title: str) -> list[str]:
    """Each contender's throughput over the fastest row with its 95% interval, one row per
    contender, fastest on top; failed rows keep a row with their verdict as text. Returns
    the row labels top to bottom (what a reader sees on the y axis)."""
    data = forest_rows(rows)
    n = len(data)
    fig, ax = plt.subplots(figsize=(9, 0.26 * n + 1.1), layout="constrained")  # room for the title and legend
    for i, (_, row) in enumerate(data.iterrows()):
        _forest_point(ax, n - 1 - i, row)
    ax.axvline(1.0, color="0.3", linewidth=1, linestyle="--")
    ax.set_yticks(range(n), list(reversed(data["label"].tolist())), fontsize=9)
    ax.set_ylim(-0.6, n - 0.4)
    bounds = pd.concat([data["lo"], data["ratio"], data["hi"], pd.Series([1.0])]).dropna()
    low, high = float(bounds.min()), float(bounds.max())
    pad = max(high - low, 0.05) * 0.08
    ax.set_xlim(low - pad, high + pad)
    ax.set_xlabel(FOREST_XLABEL, fontsize=9)
    ax.grid(True, axis="x", alpha=0.3)
    drawn = set(rows["backend"])
    _forest_legend(ax, data, [b for b in BACKEND_COLORS if b in drawn] + sorted(drawn - set(BACKEND_COLORS)))
    fig.suptitle(title, fontsize=10, x=0.01, ha="left")
    save(fig, path)
    plt.close(fig)
    return data["label"].tolist()


def write_forest_plots(headline: pd.DataFrame, plot_dir: Path) -> dict[str, Path]:
    """The forest plot of every preset group in `headline` (every campaign's headline rows
    at once: old `F*-verdict.png` files are removed first); returns group id -> PNG."""
    plot_dir.mkdir(parents=True, exist_ok=True)
    for old in plot_dir.glob("F*.png"):  # group ids renumber as records come and go
        if FOREST_OURS.match(old.name):
            old.unlink()
    written: dict[str, Path] = {}
    if headline.empty:
        return written
    for gid, rows in headline.groupby("group", sort=True):
        label = rows["preset_label"].iloc[0]
        path = plot_dir / f"F{gid}-{slug(label)}-verdict.png"
        forest_plot(rows, path, f"{gid} · {label}: tokens/sec over the fastest row")
        written[gid] = path
    return written
