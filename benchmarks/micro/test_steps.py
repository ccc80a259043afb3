"""The timed calls per case: one training step, one forward and backward pass of the
recurrent layers alone, and one greedy generation step.

pedantic mode, iterations=1: each round is one call, and each call ends with the
device finished (`train_epoch`/`predict` sync before returning), so a round's time is
the step's wall time. The first `--micro-warmup` calls (compilation, hybridization,
allocator growth) are not timed.
"""

from __future__ import annotations

import pytest

from benchmarks.micro.cases import KINDS, extra_info


def _stat(benchmark, name: str) -> float | None:
    """A timing statistic in seconds, or None when benchmarking is disabled."""
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    return getattr(stats, name, None) if stats is not None else None


@pytest.mark.parametrize("kind", KINDS)
def test_step(benchmark, workload, micro_options, matmul_peak, kind):
    case = workload.case
    benchmark.group = f"{kind} {case.cell}"
    benchmark.name = f"{kind}-{case.id}"
    benchmark.pedantic(workload.step(kind), rounds=micro_options["rounds"][kind], iterations=1,
                       warmup_rounds=micro_options["warmup"])
    device = micro_options["device"]
    benchmark.extra_info.update(extra_info(workload, kind, device, _stat(benchmark, "median"),
                                           _stat(benchmark, "min"), matmul_peak(workload, device)))
