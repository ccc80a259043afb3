"""Quality over seeds: per (group, contender, mode), the seeds' final and best perplexity
(median and range), how many reached the target, and time to target the MLPerf way.

MLPerf's rule for time to target over several runs: drop the fastest and the slowest,
average the rest. A seed that never reached the target counts as the slowest (its time
is infinite), so one such seed is dropped and a second keeps the row's time infinite:
the row is then `not reached`, as it is whenever most seeds miss. With fewer than three
seeds nothing is dropped. A row is `quality_flag`ged when even its best seed is worse
than the worst seed of the group's best row (its quality falls short beyond the spread
of its seeds); such a row is never called fastest.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from benchmarks.report.data import ROW_KEYS
from common.metrics import reached_target

SEEDS = ["seeds", "final_median", "final_min", "final_max", "best_median", "best_min", "best_max",
         "test_median", "test_min", "test_max", "reached", "reached_of", "time_to_target", "quality_flag"]


def olympic_time(times: list[float]) -> float:
    """MLPerf's time to target over seeds: drop the fastest and the slowest (seeds that
    missed are +inf, the slowest), average the rest (scipy.stats.trim_mean); inf when a
    missed seed survives the trimming or most seeds missed; NaN without seeds."""
    values = np.sort(np.asarray(times, dtype=float))
    n = len(values)
    if n == 0:
        return math.nan
    drop = 1 if n >= 3 else 0
    if np.isinf(values).sum() * 2 > n or np.isinf(values[drop:n - drop]).any():
        return math.inf
    # trim_mean cuts int(cut * n) = drop values from each end; the one missed seed that
    # may be left is the slowest, so it is cut (as a finite stand-in, never averaged)
    cut = 1.5 / n if drop else 0.0
    return float(stats.trim_mean(np.where(np.isinf(values), np.finfo(float).max, values), cut))


def _metric(run: pd.Series) -> str:
    meta = run["book"] or {}
    if meta.get("metric"):
        return meta["metric"]
    return "val_ppl" if not math.isnan(run["final_val_ppl"]) else "train_ppl"


def _target(run: pd.Series) -> float | None:
    """The preset's target for a run of the preset as written (seed aside), else None."""
    if run["overrides"]:
        return None
    target = (run["book"] or {}).get("target_ppl")
    return float(target) if target is not None else None


def _seed_time(run: pd.Series, metric: str, target: float | None) -> float:
    """Training seconds to the target; +inf when never reached (or the run failed)."""
    if target is None:
        return math.nan
    reached = reached_target(run["epoch_list"], target, metric)
    return reached[1] if reached and run["status"] in ("ok", "interrupted") else math.inf


def latest_per_seed(runs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The latest run of each seed per `keys`: a re-run seed counts once, as it last ran."""
    return runs.sort_values("timestamp").groupby(keys + ["seed"], dropna=False).tail(1)


def seed_stats(runs: pd.DataFrame, keys: list[str] = ROW_KEYS) -> pd.DataFrame:
    """One row per `keys` (a table-1 row): the SEEDS columns over its runs' distinct seeds
    (the latest run of each seed; perturbed-init runs are rows of their own)."""
    if runs.empty:
        return pd.DataFrame(columns=keys + SEEDS)
    latest = latest_per_seed(runs, keys)
    rows = []
    for key, group in latest.groupby(keys, dropna=False, sort=False):
        rows.append({**dict(zip(keys, key, strict=True)), **_summarise(group)})
    out = pd.DataFrame(rows, columns=keys + SEEDS)
    return flag_quality(out)


def _summarise(group: pd.DataFrame) -> dict:
    first = group.iloc[0]
    metric, target = _metric(first), _target(first)
    final = group[f"final_{metric}"].astype(float)
    best = group["best_ppl"].astype(float).fillna(final)
    test = group["final_test_ppl"].astype(float)
    times = [_seed_time(r, metric, target) for _, r in group.iterrows()]
    reached = sum(1 for t in times if math.isfinite(t))
    return {"seeds": len(group),
            "final_median": final.median(), "final_min": final.min(), "final_max": final.max(),
            "best_median": best.median(), "best_min": best.min(), "best_max": best.max(),
            "test_median": test.median(), "test_min": test.min(), "test_max": test.max(),
            "reached": reached if target is not None else None, "reached_of": len(group),
            "time_to_target": olympic_time(times) if target is not None else math.nan}


def flag_quality(rows: pd.DataFrame, group_key: str = "group") -> pd.DataFrame:
    """quality_flag: a row whose best seed is worse than the worst seed of its group's
    best row (the lowest median), with at least two seeds on each side."""
    if group_key not in rows:
        return rows.assign(quality_flag=False)
    flags = pd.Series(False, index=rows.index)
    for _, group in rows.groupby(group_key, sort=False):
        usable = group[group["seeds"].ge(2) & group["final_median"].notna()]
        if len(usable) < 2:
            continue
        best = usable["final_median"].idxmin()
        flags[usable.index] = usable["final_min"] > usable.at[best, "final_max"]
    return rows.assign(quality_flag=flags.astype(bool))


def reproduces(row: pd.Series) -> str:
    """'reproduces in k of S seeds' (or the single run's yes/no)."""
    if row.get("reached") is None or (isinstance(row.get("reached"), float) and math.isnan(row["reached"])):
        return "no target"
    k, n = int(row["reached"]), int(row["reached_of"])
    return f"reproduces in {k} of {n} seeds" if n > 1 else ("yes" if k else "no")
