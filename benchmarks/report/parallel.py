"""Data-parallel scaling: tokens/sec at 1 and N workers per framework, and the
efficiency tok/s at N / (N x tok/s at 1), from the rounds of one campaign.

A campaign run with `--workers 1,2` makes each worker count a contender, so the 1- and
N-worker runs of a framework train their slices of every round back to back: the
efficiency is the Hodges-Lehmann estimate of the per-round ratios with its Wilcoxon
interval (stats.paired_ratio), as the verdict's ratios are. Runs that are not
in one campaign are never paired. `comm` is the engine's all-reduce of the gradient's
size, timed by the workers after training, and its share of a training step.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from benchmarks.report.plots import save, slug
from benchmarks.report.stats import paired_ratio, rate_ci

KEYS = ["campaign", "preset_label", "device", "spec_key", "backend"]
NOTE = (
    "Data-parallel scaling (`--workers N`, each framework's own engine: README). Each worker trains batch_size/N "
    "sequences of every batch; the engine averages the gradients. `efficiency` = tok/s at N ÷ (N × tok/s at 1), "
    "the geometric mean over the campaign's rounds with a 95% paired t interval; the 1-worker row is the same "
    "mode in one process. `all-reduce` is one average of the gradient's size through the engine (median of 20, "
    "timed by the workers after training) and `of step` its share of a training step at N workers. N workers "
    "share the cores one run would use (threads divided), so on a machine with few cores this measures "
    "correctness and the engine's overhead, not a speed-up.")


def round_series(run: pd.Series) -> pd.Series:
    """tok/s per round >= 1 of one run (tokens over seconds of each round's epochs)."""
    sums: dict[int, list[float]] = {}
    for i, epoch in enumerate(run["epoch_list"]):
        number = int(epoch.get("round", 0 if i == 0 else 1))
        if number and epoch.get("seconds"):
            tokens, seconds = sums.setdefault(number, [0.0, 0.0])
            sums[number] = [tokens + float(epoch.get("tokens") or 0), seconds + float(epoch["seconds"])]
    return pd.Series({r: t / s for r, (t, s) in sorted(sums.items()) if s > 0}, dtype=float)


def _latest(rows: pd.DataFrame) -> pd.Series | None:
    if rows.empty:
        return None
    ok = rows[rows["status"].eq("ok")]
    return (ok if len(ok) else rows).sort_values("timestamp").iloc[-1]


def workers_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (campaign, preset, backend, N > 1) with its 1-worker baseline."""
    if runs.empty or "workers" not in runs or not runs["workers"].gt(1).any():
        return pd.DataFrame()
    out = []
    for key, rows in runs.groupby(KEYS, sort=True):
        for (workers, mode), many in rows[rows["workers"].gt(1)].groupby(["workers", "mode"]):
            top, one = _latest(many), _latest(rows[rows["workers"].eq(1) & rows["mode"].eq(mode)])
            out.append(_row(dict(zip(KEYS, key, strict=True)), int(workers), top, one))
    return pd.DataFrame(out)


def _row(key: dict, workers: int, top: pd.Series, one: pd.Series | None) -> dict:
    at_n = round_series(top)
    at_1 = round_series(one) if one is not None else pd.Series(dtype=float)
    n_mid, n_lo, n_hi = rate_ci(at_n.to_numpy())
    one_mid, one_lo, one_hi = rate_ci(at_1.to_numpy())
    eff, eff_lo, eff_hi, paired = paired_ratio(at_n, at_1 * workers) if len(at_1) else (math.nan,) * 3 + (0,)
    spec = top["spec"]["train"]
    steps_s = n_mid / (spec["batch_size"] * spec["num_steps"]) if n_mid == n_mid else math.nan
    comm = top.get("comm_s", math.nan)
    return {"campaign": key["campaign"], "preset": key["preset_label"], "device": key["device"],
            "backend": key["backend"], "mode": top["mode"], "engine": top.get("engine") or "", "workers": workers,
            "status": top["status"], "tok_s_1": one_mid, "tok_s_1_lo": one_lo, "tok_s_1_hi": one_hi,
            "tok_s_n": n_mid, "tok_s_n_lo": n_lo, "tok_s_n_hi": n_hi, "efficiency": eff, "efficiency_lo": eff_lo,
            "efficiency_hi": eff_hi, "rounds_paired": paired, "allreduce_s": comm, "comm_share": comm * steps_s}


def _ci(mid: float, lo: float, hi: float, spec: str) -> str:
    if mid != mid:
        return "-"
    text = format(mid, spec)
    return text + (f" [{format(lo, spec)}, {format(hi, spec)}]" if lo == lo and hi == hi else "")


def display(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "backend": table["backend"], "mode": table["mode"], "engine": table["engine"], "N": table["workers"],
        "tok/s at 1": [_ci(r.tok_s_1, r.tok_s_1_lo, r.tok_s_1_hi, ",.0f") for r in table.itertuples()],
        "tok/s at N": [_ci(r.tok_s_n, r.tok_s_n_lo, r.tok_s_n_hi, ",.0f") for r in table.itertuples()],
        "efficiency": [_ci(r.efficiency, r.efficiency_lo, r.efficiency_hi, ".2f") for r in table.itertuples()],
        "rounds": table["rounds_paired"],
        "all-reduce": ["-" if v != v else f"{v * 1e3:.2f} ms" for v in table["allreduce_s"]],
        "of step": ["-" if v != v else f"{v:.0%}" for v in table["comm_share"]],
        "status": table["status"]})


def workers_plot(rows: pd.DataFrame, path: Path) -> None:
    """tok/s against workers per backend (whiskers: the 95% intervals), ideal N x tok/s at 1 dashed."""
    import matplotlib.pyplot as plt  # the Agg backend, chosen by benchmarks.report.plots

    fig, ax = plt.subplots(figsize=(6, 3.6))
    colors = plt.get_cmap("tab10").colors
    for i, (backend, pts) in enumerate(rows.groupby("backend", sort=True)):
        pts = pts.sort_values("workers")
        xs = [1] + pts["workers"].tolist()
        ys = [pts["tok_s_1"].iloc[0]] + pts["tok_s_n"].tolist()
        lo = [pts["tok_s_1_lo"].iloc[0]] + pts["tok_s_n_lo"].tolist()
        hi = [pts["tok_s_1_hi"].iloc[0]] + pts["tok_s_n_hi"].tolist()
        err = [[max(0.0, y - v) if v == v else 0.0 for y, v in zip(ys, lo, strict=True)],
               [max(0.0, v - y) if v == v else 0.0 for y, v in zip(ys, hi, strict=True)]]
        label = f"{backend} ({pts['mode'].iloc[0]})"
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, color=colors[i], label=label)
        ax.plot(xs, [ys[0] * x for x in xs], linestyle="--", color=colors[i], alpha=0.5)
    ax.set(xlabel="workers", ylabel="tokens/sec", xticks=sorted({1, *rows["workers"]}))
    ax.set_title(f"{rows['preset'].iloc[0]}: data-parallel scaling (dashed: N x 1 worker)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)


def workers_blocks(table: pd.DataFrame, out_dir: Path) -> list[tuple]:
    """The report's section: a table and a plot per campaign and preset."""
    if table.empty:
        return []
    blocks: list[tuple] = [("h", 2, "Data-parallel scaling"), ("p", NOTE)]
    folder = out_dir / "plots" / "workers"
    folder.mkdir(parents=True, exist_ok=True)
    for (campaign, preset, device), rows in table.groupby(["campaign", "preset", "device"], sort=True):
        path = folder / f"{slug(f'{campaign}-{preset}-{device}')}.png"
        workers_plot(rows, path)
        blocks += [("h", 3, f"{preset} on {device}, campaign {campaign}"), ("table", display(rows)),
                   ("img", path.relative_to(out_dir).as_posix(), f"{preset} workers scaling")]
    return blocks
