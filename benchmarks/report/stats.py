"""How rnnbench decides: throughput per round, confidence intervals, verdicts.

A round's throughput is its tokens over its seconds (a rate; rates are never averaged
as ratios of sums would be). Within a campaign every summary is the median with the
sign test's distribution-free 95% interval (scipy.stats.quantile_test: two order
statistics), so k wild rounds move each end of an interval by at most k places and
the estimate hardly at all:
- a row's ratio to the fastest: the median of the per-round ratios (paired within a
  round, so the machine's drift cancels); the fastest is the row no other row beats
  by that ratio;
- the fastest row's tokens/sec: the median of its round rates; every other row's,
  the fastest's times its ratio, so the two columns are one statistic (the row's own
  median is kept as `tok_s_own`).
Where the records measured disturbance (common.load), a contender with enough disturbed
slices gets its slowdown per CPU-second other programs took fitted (Theil-Sen, robust),
and every slice is corrected by it (`load_slope`); a contender without such a fit
leaves its disturbed slices out. The same over every round, uncorrected, is kept
beside (`*_all`).
Between campaigns (`compare`) nothing is paired: NEW over BASE is the two-sample
Hodges-Lehmann estimate on the log rates (the median of all pairwise differences) with
the interval of the Mann-Whitney U test (asv's test) inverted, and a change is called
only when the whole interval lies beyond 10% (asv's default factor). docs/design.md
says why these and not a mean with a t interval.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
from scipy import stats

from benchmarks.report.data import framework_of
from common.load import is_disturbed

CONFIDENCE = 0.95
MIN_ROUNDS = 6  # the fewest pairs for which a 95% signed-rank interval is bounded
MIN_EFFECT = 0.03  # within a campaign: a row is `slower` only below 0.97x the fastest
COMPARE_MIN_EFFECT = 0.10  # between campaigns
RATE_KEYS = ["group", "campaign", "preset_label", "contender", "backend", "mode"]
METHOD = (
    "How rnnbench decides. A campaign (one `nox -s bench`) trains every contender in every round, one after "
    "another in a random order drawn each round, so the machine's drift falls on all of them alike; each contender "
    "is two processes taking turns at its rounds (the default suite), so its interval spans both. A round's "
    "tokens/sec is its tokens over its seconds (the warm-up epoch, with compilation, is round 0 and excluded). "
    "Every figure is a median with the sign test's distribution-free 95% interval (scipy.stats.quantile_test): "
    "`vs fastest` over the per-round ratios to the fastest row (paired within each round, so drift cancels; a "
    "wild round moves it little), the fastest being the row no other beats by that ratio; the fastest row's "
    "`tok/s` over its rounds' rates, every other row's `tok/s` the fastest's times its `vs fastest`, so the two "
    "columns never disagree (each row's own median is `tok_s_own` in summary.json). Verdict: `slower` when "
    "that interval lies wholly below 1 and the ratio is "
    f"below {1 - MIN_EFFECT:.2f}; `tie` otherwise; `fastest` only for a top row that every other row is `slower` than. "
    "A slice is `disturbed` when other programs took more than a calibrated share of the machine while it ran "
    "(common.load); the campaign adds rounds to replace them. A contender with at least "
    f"{MIN_ROUNDS} disturbed slices, whose time per token clearly rises with the CPU time others took, has "
    "that cost fitted (Theil–Sen; at most one second per foreign CPU-second) and every slice corrected by it; "
    "any other contender's disturbed slices are left out. The verdict as measured (every slice, uncorrected) is "
    "shown beside. "
    "The `twin (A/A)` row is one contender run again as processes of its own: never ranked, its ratio to its "
    "original calibrates the intervals. A row that did not finish (`diverged`, `error`, `interrupted`), failed "
    "the parity check (`not equivalent`) or missed the preset's quality target (`missed target`) is never fastest. "
    "Numbers from different campaigns are never compared here; `python -m benchmarks compare BASE NEW` does that "
    "(two-sample Hodges–Lehmann, Mann–Whitney interval), calling a change only when its whole interval lies "
    "beyond 10%.")


def round_rates(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (run row, round >= 1): tokens, seconds and tok_s of that round, and
    whether it was `disturbed` (common.load). Epochs recorded before rounds existed
    count as round 1, except the first (warm-up); a campaign's timing-only rounds after
    the preset (`extra_epochs`) count like the others."""
    rows = []
    for run in runs.itertuples(index=False):
        keys = {k: getattr(run, k) for k in RATE_KEYS}
        timed = getattr(run, "timing_list", None)  # every process's, where several took turns
        if not isinstance(timed, list):
            timed = list(run.epoch_list) + list(getattr(run, "extra_list", None) or [])
        for i, epoch in enumerate(timed):
            number = epoch.get("round", 0 if i == 0 else 1)
            seconds = epoch.get("seconds")
            if number and seconds:
                rows.append({**keys, "round": int(number), "tokens": float(epoch.get("tokens") or 0),
                             "seconds": float(seconds)})
    frame = pd.DataFrame(rows, columns=RATE_KEYS + ["round", "tokens", "seconds"])
    frame = frame.groupby(RATE_KEYS + ["round"], as_index=False)[["tokens", "seconds"]].sum()
    frame = frame.assign(tok_s=frame["tokens"] / frame["seconds"])
    return frame.merge(_disturbance(runs), on=RATE_KEYS + ["round"], how="left").fillna({"disturbed": False})


def _disturbance(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (run row, round): the recorded load shares and the `disturbed` flag."""
    rows = []
    for run in runs.itertuples(index=False):
        loads = getattr(run, "timing_loads", None)
        for entry in loads if isinstance(loads, list) else getattr(run, "load_list", None) or []:
            if isinstance(entry, dict) and entry.get("round"):
                rows.append({**{k: getattr(run, k) for k in RATE_KEYS}, "round": int(entry["round"]),
                             "foreign": float(entry.get("foreign", math.nan)),
                             "foreign_cpu_s": float(entry.get("foreign_cpu_s", math.nan)),
                             "steal": float(entry.get("steal", math.nan)),
                             "efficiency": float(entry.get("efficiency", math.nan)),
                             "disturbed": is_disturbed(entry)})
    columns = RATE_KEYS + ["round", "foreign", "foreign_cpu_s", "steal", "efficiency", "disturbed"]
    return pd.DataFrame(rows, columns=columns).drop_duplicates(RATE_KEYS + ["round"])


def median_interval(values: np.ndarray) -> tuple[float, float, float]:
    """(median, 95% low, high) of `values`: the sign test's distribution-free interval
    (scipy.stats.quantile_test), two order statistics, so k wild values move each end by
    at most k places; NaN bounds below MIN_ROUNDS values (no bounded 95% interval)."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    mid = float(np.median(x))
    if len(x) < MIN_ROUNDS:
        return mid, math.nan, math.nan
    ci = stats.quantile_test(x, q=mid, p=0.5).confidence_interval(CONFIDENCE)
    return mid, float(ci.low), float(ci.high)


def hodges_lehmann_shift(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(estimate, 95% low, high) of the shift from `y` to `x` (independent samples): the
    median of all differences, and the shifts the Mann-Whitney U test does not reject."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) == 0 or len(y) == 0:
        return math.nan, math.nan, math.nan
    diffs = (x[:, None] - y[None, :]).ravel()
    mid = float(np.median(diffs))
    if len(x) < 2 or len(y) < 2 or (np.ptp(x) == 0 and np.ptp(y) == 0):
        return mid, math.nan, math.nan
    low, high = _inverted(diffs, lambda d: stats.mannwhitneyu(x - d, y).pvalue, 1 - CONFIDENCE)
    return mid, low, high


def _inverted(candidates: np.ndarray, pvalue, alpha: float) -> tuple[float, float]:
    """The interval of shifts d that the rank test does not reject: its ends are among
    the sorted `candidates` (Walsh averages or pairwise differences), where the test's
    statistic changes. pvalue(d) rises to the middle and falls after, so each end is
    found by bisection over the gaps between candidates."""
    c = np.sort(candidates)
    n = len(c)

    def accepted(j: int) -> bool:  # the gap between c[j-1] and c[j] (j = 0: below all, n: above all)
        if j == 0:
            d = c[0] - 1.0
        elif j == n:
            d = c[-1] + 1.0
        else:
            d = 0.5 * (c[j - 1] + c[j])
        return pvalue(d) >= alpha

    mid = n // 2
    if not accepted(mid):
        return math.nan, math.nan
    lo_j, hi = 0, mid  # smallest accepted gap in [0, mid]
    while lo_j < hi:
        m = (lo_j + hi) // 2
        if accepted(m):
            hi = m
        else:
            lo_j = m + 1
    lo, hi_j = mid, n  # largest accepted gap in [mid, n]
    while lo < hi_j:
        m = (lo + hi_j + 1) // 2
        if accepted(m):
            lo = m
        else:
            hi_j = m - 1
    low = c[lo_j - 1] if lo_j > 0 else -math.inf
    high = c[hi_j] if hi_j < n else math.inf
    return float(low), float(high)


def _exp(triple: tuple[float, float, float]) -> tuple[float, float, float]:
    return tuple(math.exp(v) if not math.isnan(v) else math.nan for v in triple)


def rate_ci(rates: np.ndarray) -> tuple[float, float, float]:
    """A row's tokens/sec over its rounds: (estimate, 95% low, high), on the log scale."""
    rates = np.asarray(rates, dtype=float)
    return _exp(median_interval(np.log(rates))) if len(rates) else (math.nan,) * 3


def paired_ratio(a: pd.Series, b: pd.Series, skip: set[int] = frozenset()) -> tuple[float, float, float, int]:
    """a over b, both indexed by round, over their common rounds but those in `skip`
    (disturbed ones): (ratio, 95% low, high, rounds paired)."""
    both = pd.concat([_drop(a, skip).rename("a"), _drop(b, skip).rename("b")], axis=1, join="inner").dropna()
    if both.empty:
        return math.nan, math.nan, math.nan, 0
    logs = np.log(both["a"].to_numpy() / both["b"].to_numpy())
    return (*_exp(median_interval(logs)), len(logs))


LOAD_SLOPE_MAX = 1.0  # a foreign CPU-second holds one core for one second: it stalls a contender at most that long
LOAD_FLOOR = 0.5  # a slice that lost more than half its wall time to others is left out, never extrapolated


def load_slope(slices: pd.DataFrame) -> float:
    """The wall seconds one CPU-second of other programs cost this contender, from its
    slices (`tokens`, `seconds`, `foreign_cpu_s`, `disturbed` columns): the Theil-Sen
    slope of seconds per token against foreign CPU-seconds per token (scipy; robust to
    wild slices), used only where it is established: at least MIN_ROUNDS disturbed
    slices and a 95% slope interval above 0. Otherwise 0 (no correction): a quiet
    campaign's few ticks of others' CPU fit noise, not a cost. Capped at LOAD_SLOPE_MAX
    (a contender whose threads run in lockstep on every core loses about one second
    per foreign CPU-second; one whose threads idle loses less)."""
    if "foreign_cpu_s" not in slices or int(slices["disturbed"].astype(bool).sum()) < MIN_ROUNDS:
        return 0.0
    used = slices.dropna(subset=["foreign_cpu_s"])
    x = (used["foreign_cpu_s"] / used["tokens"]).to_numpy(dtype=float)
    y = (used["seconds"] / used["tokens"]).to_numpy(dtype=float)
    if len(x) < MIN_ROUNDS or np.ptp(x) == 0:
        return 0.0
    fit = stats.theilslopes(y, x, alpha=CONFIDENCE)
    return float(min(fit.slope, LOAD_SLOPE_MAX)) if fit.low_slope > 0 else 0.0


def corrected_rates(slices: pd.DataFrame) -> tuple[pd.Series, float]:
    """A contender's tok/s per round as if nobody else had run: each slice's seconds
    less `load_slope` x the CPU-seconds others took (a slice that lost more than
    LOAD_FLOOR of its time is left out); without an established slope, its
    disturbed slices are left out instead. Returns (rates by round, slope)."""
    k = load_slope(slices)
    if k == 0.0:
        kept = slices[~slices["disturbed"].astype(bool)]
        return (kept["tokens"] / kept["seconds"]).sort_index(), 0.0
    seconds = slices["seconds"] - k * slices["foreign_cpu_s"].fillna(0.0)
    kept = seconds >= LOAD_FLOOR * slices["seconds"]
    return (slices.loc[kept, "tokens"] / seconds[kept]).sort_index(), k


def unpaired_ratio(new: np.ndarray, base: np.ndarray) -> tuple[float, float, float]:
    """new over base from independent rounds: (ratio, 95% low, high)."""
    return _exp(hodges_lehmann_shift(np.log(np.asarray(new, dtype=float)), np.log(np.asarray(base, dtype=float))))


def half_width(ratio: float, low: float, high: float) -> float:
    """An interval's half-width relative to its estimate (inf when unbounded)."""
    if any(math.isnan(v) for v in (ratio, low, high)) or ratio <= 0:
        return math.inf
    return (high - low) / (2 * ratio)


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
    """For one comparison group's rows (one per contender): tok_s and its interval, the
    paired ratio to the fastest ranked row and its interval, and the verdict. Where the
    records measured disturbance, these leave out every disturbed slice (a row's tok/s
    its own, a ratio each round where either side was disturbed): a slice known to be
    contended says nothing about the code. The same over every round is kept beside
    (`*_all`). Rows where `ranked` is False (a missed quality target) get `missed
    target`, rows whose parity check failed `not equivalent`, and a twin `twin (A/A)`
    with its ratio to its original (`twin_ratio*`, `calibration`); none of these is
    ever the pace-setter."""
    out = rows.copy()
    ranked = pd.Series(True, index=out.index) if ranked is None else ranked.reindex(out.index).fillna(True)
    slices = {i: _slices(rates, r) for i, r in out.iterrows()}
    every = {i: (f["tokens"] / f["seconds"]).sort_index() for i, f in slices.items()}
    noisy = {i: set(f.index[f["disturbed"].astype(bool)]) for i, f in slices.items()}
    fitted = {i: corrected_rates(f) for i, f in slices.items()}
    series = {i: fitted[i][0] for i in out.index}
    cis = {i: rate_ci(s.to_numpy()) for i, s in series.items()}
    out["tok_s"] = [cis[i][0] for i in out.index]
    out["tok_s_lo"], out["tok_s_hi"] = [cis[i][1] for i in out.index], [cis[i][2] for i in out.index]
    out["rounds_timed"] = [len(every[i]) for i in out.index]
    out["disturbed_rounds"] = [len(noisy[i]) for i in out.index]
    out["disturbed_list"] = [sorted(noisy[i]) for i in out.index]
    out["load_slope"] = [fitted[i][1] for i in out.index]
    out["load_measured"] = [_measured(rates, r) for _, r in out.iterrows()]
    out["twin"] = _column(out, "twin_of", "").astype(str).ne("")
    equivalent = _column(out, "parity_ok", None).ne(False)
    verdicts = {i: _standing(out.at[i, "status"], ranked[i], equivalent[i], out.at[i, "twin"]) for i in out.index}
    eligible = [i for i, v in verdicts.items() if v is None and not math.isnan(out.at[i, "tok_s"])]
    if not eligible:
        out = out.assign(**{c: math.nan for c in RATIO_COLUMNS})
        return out.assign(verdict=[v or "tie" for v in verdicts.values()],
                          verdict_all=[v or "tie" for v in verdicts.values()], rounds_paired=0, calibration=None)
    best = _fastest(eligible, out["tok_s"], series)
    for suffix, pick in (("", series), ("_all", every)):
        ratios = {i: paired_ratio(pick[i], pick[best]) if i != best
                  else (1.0, 1.0, 1.0, len(pick[i])) for i in out.index}
        for k, name in enumerate(("", "_lo", "_hi")):
            out["ratio" + suffix + name] = [ratios[i][k] for i in out.index]
        if not suffix:
            out["rounds_paired"] = [ratios[i][3] for i in out.index]
            out = _anchored(out, best)
        called = {i: verdicts[i] or call(*ratios[i][:3], min_effect, ("slower", "tie", "tie")) for i in out.index}
        others = [called[i] for i in eligible if i != best]
        called[best] = "fastest" if all(v == "slower" for v in others) else "tie"
        out["verdict" + suffix] = [called[i] for i in out.index]
    return _with_versions(_with_twins(out, series, min_effect), series, min_effect)


def _fastest(eligible: list, tok_s: pd.Series, series: dict) -> object:
    """The pace-setter: the row with the highest median tok/s; then, while another row
    is faster than it by their paired ratio (the same statistic `vs fastest` shows),
    that row, so no ratio to the fastest reads above 1 (a cycle stops at the first row
    seen again)."""
    best, seen = max(eligible, key=lambda i: tok_s[i]), set()
    while best not in seen:
        seen.add(best)
        ratios = {i: paired_ratio(series[i], series[best])[0] for i in eligible if i != best}
        faster = [i for i, r in ratios.items() if r > 1]
        best = max(faster, key=ratios.get) if faster else best
    return best


def _anchored(out: pd.DataFrame, best) -> pd.DataFrame:
    """Every other row's tok/s (and interval) as the fastest's times its paired ratio,
    so the tok/s column and `vs fastest` are one statistic and can never disagree; the
    row's own median over its slices is kept as `tok_s_own*` (it differs by the drift
    between the rounds each row had)."""
    out = out.assign(tok_s_own=out["tok_s"], tok_s_own_lo=out["tok_s_lo"], tok_s_own_hi=out["tok_s_hi"])
    pace = out.at[best, "tok_s"]
    paired = out["ratio"].notna() & (out.index != best)
    for column, ratio in (("tok_s", "ratio"), ("tok_s_lo", "ratio_lo"), ("tok_s_hi", "ratio_hi")):
        out.loc[paired, column] = pace * out.loc[paired, ratio]
    return out


RATIO_COLUMNS = ["ratio", "ratio_lo", "ratio_hi", "ratio_all", "ratio_all_lo", "ratio_all_hi",
                 "twin_ratio", "twin_ratio_lo", "twin_ratio_hi"]


def _standing(status: str, ranked: bool, equivalent: bool, twin: bool) -> str | None:
    """Why a row is never ranked (its verdict), or None for a row that competes."""
    if twin:
        return "twin (A/A)"
    if status != "ok":
        return status
    if not equivalent:
        return "not equivalent"
    return None if ranked else "missed target"


def _with_twins(out: pd.DataFrame, series: dict, min_effect: float) -> pd.DataFrame:
    """Each twin's paired ratio to its original (same group, contender named by
    `twin_of`), on the same corrected rates as every ratio, and the calibration
    verdict: the ranking rule applied to an A/A pair, so anything but `tie` says the
    campaign's intervals cannot be trusted."""
    for name in ("twin_ratio", "twin_ratio_lo", "twin_ratio_hi"):
        out[name] = math.nan
    out["calibration"] = None
    for i in out.index[out["twin"]]:
        original = out.index[out["contender"].eq(out.at[i, "twin_of"]) & ~out["twin"]]
        if len(original) == 0:
            continue
        j = original[0]
        ratio, lo, hi, _ = paired_ratio(series[i], series[j])
        out.loc[i, ["twin_ratio", "twin_ratio_lo", "twin_ratio_hi"]] = [ratio, lo, hi]
        out.at[i, "calibration"] = call(ratio, lo, hi, min_effect, ("slower", "tie", "faster"))
    return out


VERSION_COLUMNS = ("version_base", "version_ratio", "version_ratio_lo", "version_ratio_hi", "version_verdict")


def _version_key(version: str) -> tuple:
    return tuple(int(x) if x.isdigit() else -1 for x in re.split(r"[.+!-]", version))


def _with_versions(out: pd.DataFrame, series: dict, min_effect: float) -> pd.DataFrame:
    """Where framework versions are contenders (`jax 0.10.1/tuned` beside `jax
    0.10.2/tuned`): each older version's paired ratio to the newest one of the same
    mode, with its interval and the ranking rule's word (`slower`, `tie`, `faster`)."""
    for name in VERSION_COLUMNS:
        out[name] = None if name in ("version_base", "version_verdict") else math.nan
    same: dict[tuple[str, str], list[tuple[str, object]]] = {}
    for i, label in out["contender"].astype(str).items():
        backend, version = framework_of(label)
        if version and not out.at[i, "twin"]:
            same.setdefault((backend, label.partition("/")[2]), []).append((version, i))
    for (backend, _), found in same.items():
        newest, j = max(found, key=lambda vi: _version_key(vi[0]))
        for _, i in found:
            if i == j:
                continue
            ratio, lo, hi, _ = paired_ratio(series[i], series[j])
            out.loc[i, ["version_ratio", "version_ratio_lo", "version_ratio_hi"]] = [ratio, lo, hi]
            out.at[i, "version_base"] = f"{backend} {newest}"
            out.at[i, "version_verdict"] = call(ratio, lo, hi, min_effect, ("slower", "tie", "faster"))
    return out


def _column(frame: pd.DataFrame, name: str, default) -> pd.Series:
    return frame[name] if name in frame else pd.Series(default, index=frame.index, dtype=object)


def _drop(values: pd.Series, rounds: set[int]) -> pd.Series:
    return values[~values.index.isin(list(rounds))] if rounds else values


def _measured(rates: pd.DataFrame, row: pd.Series) -> bool:
    """Whether the row's rounds carry a load measurement (records before issue 23 do not)."""
    mine = rates[(rates["group"] == row["group"]) & (rates["contender"] == row["contender"])]
    return bool("foreign" in mine and mine["foreign"].notna().any())


def _slices(rates: pd.DataFrame, row: pd.Series) -> pd.DataFrame:
    """One row's slices indexed by round: tokens, seconds, foreign_cpu_s, disturbed."""
    mine = rates[(rates["group"] == row["group"]) & (rates["contender"] == row["contender"])
                 & (rates["backend"] == row["backend"]) & (rates["mode"] == row["mode"])]
    columns = ["tokens", "seconds", "foreign_cpu_s", "disturbed"]
    return mine.set_index("round").reindex(columns=columns).fillna({"disturbed": False}).sort_index()


def pair_widths(slices: dict[str, pd.DataFrame], twins: dict[str, str] | None = None) -> dict[tuple[str, str], float]:
    """The campaign driver's stopping measure for one preset: the relative half-width
    of each ratio interval the report will show, keyed (contender, partner): each
    contender to the fastest, each twin to its original, on the same corrected rates
    (`corrected_rates`); slices per contender as `slice_frame` builds them (inf while
    unbounded)."""
    twins = twins or {}
    series = {c: corrected_rates(f)[0] for c, f in slices.items() if len(f)}
    ranked = [c for c in series if c not in twins]
    if len(series) < 2 or not ranked:
        return {}
    best = _fastest(ranked, pd.Series({c: rate_ci(series[c].to_numpy())[0] for c in ranked}), series)
    pairs = [(c, best) for c in ranked if c != best] + [(t, o) for t, o in twins.items() if t in series and o in series]
    return {(a, b): half_width(*paired_ratio(series[a], series[b])[:3]) for a, b in pairs}


def slice_frame(rates: dict[int, float], loads: dict[int, dict], disturbed: set[int]) -> pd.DataFrame:
    """What the campaign driver heard of one contender's slices, as `corrected_rates`
    takes them: tok/s per round and, where the child said them, its tokens and the
    CPU-seconds others took (without them: one token per second of 1/rate, no fit)."""
    rows = {r: {"tokens": float(loads.get(r, {}).get("tokens", 1.0)),
                "foreign_cpu_s": float(loads.get(r, {}).get("foreign_cpu_s", math.nan)),
                "disturbed": r in disturbed} for r in rates}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=["tokens", "foreign_cpu_s", "disturbed"])
    frame["seconds"] = frame["tokens"] / pd.Series(rates, dtype=float)
    return frame.sort_index()
