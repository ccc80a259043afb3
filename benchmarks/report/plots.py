"""PNG plots per comparison group: perplexity curves and a tokens/sec bar chart.

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

COLORS = plt.get_cmap("tab10").colors
OURS = re.compile(r"^G\d+-.*-(ppl|toks)\.png$")


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
    fig.savefig(path, dpi=100)
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
    fig.savefig(path, dpi=100)
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


OURS = re.compile(r"^S\d+-.*-scaling\.png$")




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
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_scaling_plots(table: pd.DataFrame, base_specs: dict[str, dict], plot_dir: Path) -> dict[tuple, Path]:
    """One PNG per scaling group and preset; returns (sgroup, preset) -> path."""
    plot_dir.mkdir(parents=True, exist_ok=True)
    for old in plot_dir.glob("S*.png"):  # scaling group ids renumber as records come and go
        if OURS.match(old.name):
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
