"""How rnnbench decides: throughput per round, confidence intervals, verdicts.

A round's throughput is its tokens over its seconds (a rate; rates are never
averaged as ratios of sums would be). Within a campaign every contender trains its
slice of each round back to back, so the ratio of two contenders in the same round
cancels the machine's drift: the ratio of a row to the fastest row is the geometric
mean of the per-round ratios, with a 95% confidence interval from a paired t-test on
their logarithms (scipy.stats.ttest_1samp). A row's own tokens/sec is the median over
rounds with a 95% bootstrap interval (scipy.stats.bootstrap, percentile method).
Between two campaigns nothing is paired: the ratio NEW / BASE is the ratio of the
geometric means, its interval from Welch's t-test on the logarithms
(scipy.stats.ttest_ind), and the drift between campaigns is not cancelled, so a change
is called only when the whole interval lies beyond 10% (asv's default factor).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
MIN_EFFECT = 0.03  # within a campaign: a row is `slower` only below 0.97x the fastest
COMPARE_MIN_EFFECT = 0.10  # between campaigns
RATE_KEYS = ["group", "campaign", "preset_label", "contender", "backend", "mode"]
METHOD = (
    "How rnnbench decides. A campaign (one `nox -s bench`) trains every contender in every round, one after "
    "another in an order rotated each round, so the machine's drift falls on all of them alike. A round's "
    "tokens/sec is its tokens over its seconds (the warm-up epoch, with compilation, is round 0 and excluded). "
    "`tok/s` is the median over rounds with a 95% bootstrap interval (scipy.stats.bootstrap). `vs fastest` is "
    "the geometric mean of the per-round ratios to the fastest row (paired within each round, so drift cancels), "
    "with a 95% interval from a paired t-test on the logarithms (scipy.stats.ttest_1samp). Verdict: `slower` when "
    f"that interval lies wholly below 1 and the ratio is below {1 - MIN_EFFECT:.2f}; `tie` otherwise; `fastest` "
    "only for a top row that every other row is `slower` than. A row that did not finish (`diverged`, `error`, "
    "`interrupted`) is never fastest, nor is one that missed the preset's quality target (`missed target`: "
    "speed is compared at the same quality). The fastest row is the one with the highest geometric mean over rounds, "
    "the ranking the paired ratios agree with. Numbers from different campaigns are never compared here; "
    "`python -m benchmarks compare BASE NEW` does that, calling a change only when its whole interval lies beyond "
    "10%.")


def round_rates(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (run row, round >= 1): tokens, seconds and tok_s of that round.

    Epochs recorded before rounds existed count as round 1, except the first (warm-up)."""
    rows = []
    for run in runs.itertuples(index=False):
        for i, epoch in enumerate(run.epoch_list):
            number = epoch.get("round", 0 if i == 0 else 1)
            seconds = epoch.get("seconds")
            if number and seconds:
                rows.append({**{k: getattr(run, k) for k in RATE_KEYS}, "round": int(number),
                             "tokens": float(epoch.get("tokens") or 0), "seconds": float(seconds)})
    frame = pd.DataFrame(rows, columns=RATE_KEYS + ["round", "tokens", "seconds"])
    frame = frame.groupby(RATE_KEYS + ["round"], as_index=False)[["tokens", "seconds"]].sum()
    return frame.assign(tok_s=frame["tokens"] / frame["seconds"])


def median_ci(values: np.ndarray) -> tuple[float, float, float]:
    """(median, low, high): the 95% percentile-bootstrap interval; NaN bounds below 2 values."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mid = float(np.median(values))
    if len(values) < 2 or np.ptp(values) == 0:
        return (mid, math.nan, math.nan) if len(values) < 2 else (mid, mid, mid)
    res = stats.bootstrap((values,), np.median, confidence_level=CONFIDENCE, method="percentile",
                          n_resamples=2000, rng=np.random.default_rng(0))
    return mid, float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_ratio(a: pd.Series, b: pd.Series) -> tuple[float, float, float, int]:
    """a over b, both indexed by round, over their common rounds: (geometric-mean ratio,
    95% low, high, rounds paired); NaN bounds with fewer than 2 pairs."""
    both = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").dropna()
    if both.empty:
        return math.nan, math.nan, math.nan, 0
    logs = np.log(both["a"].to_numpy() / both["b"].to_numpy())
    ratio = float(np.exp(logs.mean()))
    if len(logs) < 2:
        return ratio, math.nan, math.nan, len(logs)
    if np.ptp(logs) == 0:
        return ratio, ratio, ratio, len(logs)
    ci = stats.ttest_1samp(logs, 0.0).confidence_interval(CONFIDENCE)
    return ratio, float(np.exp(ci.low)), float(np.exp(ci.high)), len(logs)


def unpaired_ratio(new: np.ndarray, base: np.ndarray) -> tuple[float, float, float]:
    """new over base from independent rounds: (ratio of geometric means, 95% low, high)."""
    ln, lb = np.log(np.asarray(new, dtype=float)), np.log(np.asarray(base, dtype=float))
    ratio = float(np.exp(ln.mean() - lb.mean()))
    if len(ln) < 2 or len(lb) < 2 or (np.ptp(ln) == 0 and np.ptp(lb) == 0):
        return ratio, math.nan, math.nan
    ci = stats.ttest_ind(ln, lb, equal_var=False).confidence_interval(CONFIDENCE)
    return ratio, float(np.exp(ci.low)), float(np.exp(ci.high))


def call(ratio: float, low: float, high: float, min_effect: float, words: tuple[str, str, str]) -> str:
    """words = (below, within, above): below when the interval is wholly under 1 and the
    ratio under 1 - min_effect, above in the mirror case, within otherwise."""
    if not math.isnan(high) and high < 1 and ratio < 1 - min_effect:
        return words[0]
    if not math.isnan(low) and low > 1 and ratio > 1 + min_effect:
        return words[2]
    return words[1]


def group_verdicts(rows: pd.DataFrame, rates: pd.DataFrame, min_effect: float = MIN_EFFECT,
                   ranked: pd.Series | None = None) -> pd.DataFrame:
    """For one comparison group's rows (one per contender/mode): tok_s and its CI, the
    paired ratio to the fastest `ok` row and its CI, and the verdict. Rows where
    `ranked` is False (a missed quality target) get `missed target` and are never the
    pace-setter."""
    out = rows.copy()
    ranked = pd.Series(True, index=out.index) if ranked is None else ranked.reindex(out.index).fillna(True)
    series = {i: _rate_series(rates, r) for i, r in out.iterrows()}
    cis = {i: median_ci(s.to_numpy()) for i, s in series.items()}
    out["tok_s"] = [cis[i][0] for i in out.index]
    out["tok_s_lo"], out["tok_s_hi"] = [cis[i][1] for i in out.index], [cis[i][2] for i in out.index]
    out["rounds_timed"] = [len(series[i]) for i in out.index]
    ok = out[out["status"].eq("ok") & out["tok_s"].notna() & ranked.astype(bool)]
    if ok.empty:
        verdict = [("missed target" if s == "ok" and not ranked[i] else s) for i, s in out["status"].items()]
        return out.assign(ratio=math.nan, ratio_lo=math.nan, ratio_hi=math.nan, verdict=verdict)
    best = max(ok.index, key=lambda i: _geomean(series[i]))  # the ranking the paired ratios agree with
    ratios = {i: paired_ratio(series[i], series[best]) if i != best else (1.0, 1.0, 1.0, len(series[i]))
              for i in out.index}
    out["ratio"] = [ratios[i][0] for i in out.index]
    out["ratio_lo"], out["ratio_hi"] = [ratios[i][1] for i in out.index], [ratios[i][2] for i in out.index]
    verdicts = {i: (out.at[i, "status"] if out.at[i, "status"] != "ok" else "missed target" if not ranked[i]
                    else call(*ratios[i][:3], min_effect, ("slower", "tie", "tie"))) for i in out.index}
    others = [v for i, v in verdicts.items() if i != best and i in ok.index]
    verdicts[best] = "fastest" if all(v == "slower" for v in others) else "tie"
    out["verdict"] = [verdicts[i] for i in out.index]
    return out


def _geomean(values: pd.Series) -> float:
    return float(np.exp(np.log(values.to_numpy()).mean())) if len(values) else -math.inf


def _rate_series(rates: pd.DataFrame, row: pd.Series) -> pd.Series:
    mine = rates[(rates["group"] == row["group"]) & (rates["contender"] == row["contender"])
                 & (rates["mode"] == row["mode"])]
    return mine.set_index("round")["tok_s"].sort_index()
