"""Perplexity and throughput summaries, shared by the harness and the report."""

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
