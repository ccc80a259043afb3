"""Perplexity, throughput, time to target and utilisation: the derived figures, worked
out here once for the harness (records) and the report (tables) alike."""

from __future__ import annotations

import math
import statistics


def perplexity(loss_sum: float, tokens: int) -> float:
    """exp(mean token cross-entropy); inf when the loss overflowed or is NaN."""
    if tokens <= 0:
        raise ValueError("perplexity needs at least one token")
    mean = loss_sum / tokens
    if math.isnan(mean):
        return math.nan
    return math.exp(mean) if mean < 700 else math.inf


def steady_state(values: list[float], warmup: int = 1) -> dict[str, float]:
    """Median and spread of per-epoch values after the warm-up epochs.

    With too few epochs to drop any, all are used (and the median says so by being
    the same as the warm-up's).
    """
    tail = values[warmup:] or values
    if not tail:
        return {"median": math.nan, "min": math.nan, "max": math.nan, "iqr": math.nan}
    quart = statistics.quantiles(tail, n=4) if len(tail) >= 2 else [tail[0]] * 3
    return {"median": statistics.median(tail), "min": min(tail), "max": max(tail), "iqr": quart[2] - quart[0]}


def reached_target(epochs: list[dict], target: float | None, metric: str = "train_ppl") -> tuple[int, float] | None:
    """(first epoch whose `metric` <= target, training seconds up to its end), or None if
    never (or no target); the seconds include the warm-up epoch, as DAWNBench/MLPerf do."""
    if target is None:
        return None
    elapsed = 0.0
    for e in epochs:
        elapsed += float(e.get("seconds") or 0.0)
        value = e.get(metric)
        if value is not None and value <= target:
            return int(e.get("epoch", 0)), elapsed
    return None


def utilisation(flops_per_token: float, tok_s: float | None, peak: float | None) -> tuple[float | None, float | None]:
    """(achieved FLOP/s = model FLOPs per token x tokens/sec, its fraction of `peak`)."""
    if tok_s is None or not math.isfinite(tok_s):
        return None, None
    achieved = flops_per_token * tok_s
    return achieved, (achieved / peak if peak else None)
