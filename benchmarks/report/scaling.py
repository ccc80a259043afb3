"""Scaling curves in the report: runs tagged `scaling` -> tables and plots.

The `scaling` suite (benchmarks.suites) runs quick-lstm / quick-gru once as they are
and once per value of one varied size (batch size, hidden size, sequence length,
layers). Here each run is placed on its curve by comparing its spec with its preset's:
the unmodified run is a point of every curve, a run differing in one scaling size is
a point of that size's curve, anything else is listed as `other` and not plotted.
Curves are drawn per scaling group (one machine, device and thread count) and preset
(so per cell): tokens/sec and peak RSS against the varied size, one line per backend.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullLocator  # noqa: E402

from benchmarks.report import format as fmt  # noqa: E402
from benchmarks.report.data import pick_rows, threads_label  # noqa: E402
from benchmarks.report.tables import ceiling  # noqa: E402
from benchmarks.suites import SCALING_AXES  # noqa: E402

SECTION_OF = {"batch_size": "train", "num_steps": "train", "num_hiddens": "model", "num_layers": "model"}
AXIS_LABEL = {"batch_size": "batch size", "num_hiddens": "hidden units", "num_steps": "sequence length (steps)",
              "num_layers": "layers"}
LOG_AXES = {"batch_size", "num_hiddens", "num_steps"}
MACHINE_KEYS = ["campaign", "machine", "device", "threads"]
BASELINE, OTHER = "preset", "other"
SCALING = ["sgroup", "preset", "cell", "machine", "device", "threads", "backend", "mode", "axis", "value", "status",
           "runs", "epochs_done", "tok_s_median", "tok_s_min", "tok_s_max", "peak_rss_mb", "achieved_flops",
           "peak_flops", "ceiling_flops", "of_ceiling", "overrides", "run_id"]
OURS = re.compile(r"^S\d+-.*-scaling\.png$")
COLORS = plt.get_cmap("tab10").colors


def scaling_point(spec: dict, base: dict | None) -> tuple[str, float]:
    """(axis, value) of a run: (BASELINE, nan) for the preset as is, (OTHER, nan) when it
    differs from its preset in anything but epochs and at most one scaling size."""
    if base is None:
        return OTHER, math.nan
    diffs = {(section, key) for section in ("data", "model", "train")
             for key in set(spec.get(section) or {}) | set(base.get(section) or {})
             if key != "epochs" and (spec.get(section) or {}).get(key) != (base.get(section) or {}).get(key)}
    if not diffs:
        return BASELINE, math.nan
    if len(diffs) == 1:
        section, key = next(iter(diffs))
        if SECTION_OF.get(key) == section:
            return key, float(spec[section][key])
    return OTHER, math.nan


def scaling_table(scaling: pd.DataFrame, all_runs: pd.DataFrame) -> pd.DataFrame:
    """One row per scaling point and backend/mode (the latest ok run of it), numbered by
    scaling group S1, S2, ...; `of_ceiling` is achieved FLOP/s over the best matmul peak
    any run (scaling or not) measured on that machine, device and thread count."""
    if scaling.empty:
        return pd.DataFrame(columns=SCALING)
    rows = pick_rows(scaling, MACHINE_KEYS + ["preset_label", "spec_key", "backend", "mode"])
    points = [scaling_point(s, b) for s, b in zip(rows["spec"], rows["base_spec"], strict=True)]
    rows["axis"], rows["value"] = [p[0] for p in points], [p[1] for p in points]
    rows["preset"], rows["cell"] = rows["preset_label"], rows["spec"].map(lambda s: s["model"]["cell"])
    groups = rows[MACHINE_KEYS].drop_duplicates().sort_values(MACHINE_KEYS).reset_index(drop=True)
    groups["sgroup"] = [f"S{i + 1}" for i in range(len(groups))]
    rows = rows.merge(groups, on=MACHINE_KEYS, how="left")
    rows["ceiling_flops"] = ceiling(all_runs, rows, MACHINE_KEYS)
    rows["of_ceiling"] = rows["achieved_flops"] / rows["ceiling_flops"]
    rows = rows.sort_values(["sgroup", "preset", "axis", "value", "backend", "mode"], na_position="first")
    return rows[SCALING].reset_index(drop=True)


def with_baseline(table: pd.DataFrame, preset_spec: dict) -> dict[str, pd.DataFrame]:
    """axis -> points of that axis, the preset's own run included at the preset's value."""
    values = {axis: float(preset_spec[SECTION_OF[axis]][axis]) for axis in SCALING_AXES}
    out = {}
    base = table[table["axis"].eq(BASELINE)]
    for axis in [a for a in SCALING_AXES if a in set(table["axis"])]:
        points = pd.concat([table[table["axis"].eq(axis)], base.assign(axis=axis, value=values[axis])],
                           ignore_index=True)
        out[axis] = points.sort_values(["backend", "mode", "value"]).reset_index(drop=True)
    return out


def _label(backend: str, mode: str, modes_per_backend: dict[str, int]) -> str:
    return backend if modes_per_backend.get(backend, 1) == 1 else f"{backend} {mode}"


def _draw(ax_tok, ax_mem, points: pd.DataFrame, axis: str) -> None:
    ok = points[points["status"].eq("ok")]
    modes = ok.groupby("backend")["mode"].nunique().to_dict()
    for i, ((backend, mode), line) in enumerate(ok.groupby(["backend", "mode"], sort=True)):
        style = {"color": COLORS[i % len(COLORS)], "marker": "o", "markersize": 4,
                 "label": _label(backend, mode, modes)}
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


def _minor_label(value: float, _pos) -> str:
    """Label only 2 and 5 times a power of ten, so a log axis stays readable."""
    return f"{value:,.0f}" if f"{value:.0e}"[0] in "25" else ""


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


def group_title(rows: pd.DataFrame) -> str:
    first = rows.iloc[0]
    device = "cpu" if first["device"].startswith("cpu") else first["device"]
    return (f"{first['sgroup']} · {first['preset']} ({first['cell']}) · {device} on {first['machine']} · "
            f"{threads_label(first['threads'])}")


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
        path = plot_dir / f"{sgroup}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', preset)}-scaling.png"
        scaling_plot(per_axis, group_title(rows), path)
        written[(sgroup, preset)] = path
    return written


def display(points: pd.DataFrame, axis: str) -> pd.DataFrame:
    """One curve as a table: a row per value, per backend `tok/s (of ceiling)` and peak MB."""
    modes = points.groupby("backend")["mode"].nunique().to_dict()
    points = points.assign(_label=[_label(b, m, modes) for b, m in zip(points["backend"], points["mode"], strict=True)])
    out = pd.DataFrame({AXIS_LABEL[axis]: sorted(points["value"].unique())})
    for label, line in points.groupby("_label", sort=True):
        by_value = line.drop_duplicates("value", keep="last").set_index("value")
        cell = [_tok_cell(by_value.loc[v]) if v in by_value.index else fmt.DASH for v in out[AXIS_LABEL[axis]]]
        out[f"{label} tok/s (of ceiling)"] = cell
        out[f"{label} peak MB"] = [fmt.rate(by_value.loc[v, "peak_rss_mb"]) if v in by_value.index else fmt.DASH
                                   for v in out[AXIS_LABEL[axis]]]
    out[AXIS_LABEL[axis]] = out[AXIS_LABEL[axis]].map(lambda v: f"{v:g}")
    return out


def _tok_cell(row: pd.Series) -> str:
    if row["status"] != "ok":
        return f"{fmt.rate(row['tok_s_median'])} ({row['status']})"
    share = fmt.percent(row["of_ceiling"])
    return fmt.rate(row["tok_s_median"]) + ("" if share == fmt.DASH else f" ({share})")
