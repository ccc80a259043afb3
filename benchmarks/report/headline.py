"""The headline: per campaign and preset, which framework is faster and how sure that is,
and whether the book's perplexity was reached; also written as results/summary.json.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from benchmarks.report import format as fmt
from benchmarks.report.data import pick_rows
from benchmarks.report.stats import group_verdicts, round_rates
from benchmarks.report.tables import metric_of

SUMMARY_FIELDS = ["preset", "backend", "mode", "contender", "threads", "tok_s", "tok_s_ci", "rounds",
                  "ratio_to_fastest", "ratio_ci", "verdict", "utilisation", "final_ppl", "metric", "target_ppl",
                  "reached_target", "status"]


def campaigns_by_time(runs: pd.DataFrame) -> list[str]:
    """Campaign ids, the most recent first."""
    if runs.empty:
        return []
    return list(runs.groupby("campaign")["timestamp"].max().sort_values(ascending=False).index)


def ceiling(runs: pd.DataFrame) -> float:
    """The campaign's ceiling: the best matmul peak any of its processes measured."""
    peaks = runs["peak_flops"].dropna()
    return float(peaks.max()) if len(peaks) else math.nan


def headline_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """One campaign's runs -> one row per (preset group, contender, mode), with verdicts."""
    rows = pick_rows(runs)
    rates = round_rates(rows)
    peak = ceiling(runs)
    parts = [group_verdicts(g, rates) for _, g in rows.groupby("group", sort=True)]
    out = pd.concat(parts) if parts else rows
    out["utilisation"] = out["train_flops_per_token"] * out["tok_s"] / peak
    out["metric"] = [metric_of(r["book"], r) for _, r in out.iterrows()]
    out["final_ppl"] = [r[f"final_{r['metric']}"] for _, r in out.iterrows()]
    out["target"] = [(r["book"] or {}).get("target_ppl") for _, r in out.iterrows()]
    out["reached_target"] = [None if t is None or r["status"] != "ok" and math.isnan(r["final_ppl"])
                             else bool(r["final_ppl"] <= t) for t, (_, r) in zip(out["target"], out.iterrows())]
    return out.sort_values(["group", "tok_s"], ascending=[True, False]).reset_index(drop=True)


def summary(runs: pd.DataFrame, campaign: str) -> dict:
    """results/summary.json: this campaign's machine and headline rows, as data."""
    mine = runs[runs["campaign"] == campaign]
    rows = headline_rows(mine)
    first = mine.sort_values("timestamp").iloc[0]
    machine = {**(first["fingerprint_facts"] or {"id": first["fingerprint"]}), "matmul_peak_flops": ceiling(mine),
               "threads": int(first["threads"]), "frameworks": _frameworks(mine)}
    return {"campaign": campaign, "machine": machine,
            "git": {"commit": first["git_commit"].removesuffix("-dirty") or None, "dirty": bool(mine["dirty"].any())},
            "started": mine["timestamp"].min().isoformat(), "rows": [_summary_row(r) for _, r in rows.iterrows()]}


def _frameworks(runs: pd.DataFrame) -> dict[str, str]:
    return {b: str(v) for b, v in runs.groupby("backend")["framework_version"].last().items()}


def _clean(x):
    """Strict JSON: NaN and infinities become null, numpy scalars plain numbers."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    x = x.item() if hasattr(x, "item") else x
    return None if isinstance(x, float) and not math.isfinite(x) else x


def _summary_row(r: pd.Series) -> dict:
    row = {"preset": r["preset_label"], "backend": r["backend"], "mode": r["mode"], "contender": r["contender"],
           "threads": int(r["threads"]), "tok_s": r["tok_s"], "tok_s_ci": [r["tok_s_lo"], r["tok_s_hi"]],
           "rounds": int(r["rounds_timed"]), "ratio_to_fastest": r["ratio"], "ratio_ci": [r["ratio_lo"], r["ratio_hi"]],
           "verdict": r["verdict"], "utilisation": r["utilisation"], "final_ppl": r["final_ppl"],
           "metric": r["metric"], "target_ppl": r["target"], "reached_target": r["reached_target"],
           "status": r["status"]}
    return {k: row[k] for k in SUMMARY_FIELDS}


def write_summary(runs: pd.DataFrame, campaign: str, path: Path) -> dict:
    data = _clean(summary(runs, campaign))
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return data


def display(rows: pd.DataFrame) -> pd.DataFrame:
    """The headline table of one preset, as strings."""
    return pd.DataFrame({
        "backend (mode)": [f"{c} (`{m}`)" for c, m in zip(rows["contender"], rows["mode"], strict=True)],
        "tok/s": rows["tok_s"].map(fmt.rate),
        "95% CI": fmt.both(rows, "tok_s_lo", "tok_s_hi", fmt.interval_rate),
        "vs fastest [95% CI]": [fmt.ratio_ci(r, lo, hi) for r, lo, hi in
                                zip(rows["ratio"], rows["ratio_lo"], rows["ratio_hi"], strict=True)],
        "verdict": rows["verdict"], "rounds": rows["rounds_timed"].map(str),
        "utilisation": rows["utilisation"].map(fmt.percent),
        "final ppl": rows["final_ppl"].map(fmt.ppl),
        "target": [fmt.target(t, ok) for t, ok in zip(rows["target"], rows["reached_target"], strict=True)],
    })


def heading(runs: pd.DataFrame, campaign: str) -> str:
    mine = runs[runs["campaign"] == campaign]
    first = mine.sort_values("timestamp").iloc[0]
    commit = first["git_commit"].removesuffix("-dirty")[:10] or "?"
    dirty = " **(dirty tree: uncommitted changes)**" if mine["dirty"].any() else ""
    return (f"Campaign `{campaign}` on {first['machine']}, {first['device']}, "
            f"{int(first['threads'])} thread(s), commit `{commit}`{dirty}; {mine['timestamp'].min():%Y-%m-%d %H:%M} UTC; "
            f"ceiling (best matmul peak measured in the campaign) {fmt.gflops(ceiling(mine))} GFLOP/s.")
