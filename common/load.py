"""Disturbed rounds: how much CPU other programs took while a contender's round ran.

A round's throughput is only comparable to its neighbours' if nothing else ran on the
machine meanwhile. The measure is machine-wide and needs no per-contender baseline:
the machine's busy CPU time over the round (psutil's system-wide times, i.e.
/proc/stat), minus the CPU time of the contender's own process tree, is what other
programs took; the hypervisor's steal time (VMs report it in the same place) is CPU the
machine did not get at all. Both are shares of the round's capacity, wall seconds x
logical CPUs. The contender's own efficiency (its CPU over wall x threads) is recorded
beside them, to show what the disturbance did.

`FOREIGN_LIMIT` and `STEAL_LIMIT` are the calibrated thresholds (docs/design.md says
how they were set): above either, the round is `disturbed`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable

FOREIGN_LIMIT = 0.05  # share of the machine other programs may take before a round is disturbed
STEAL_LIMIT = 0.05  # share of the machine the hypervisor may withhold
QUIET_SAMPLE_S = 0.1  # the window wait_quiet looks at (10 of /proc/stat's 10 ms ticks per CPU)
QUIET_LIMIT = 0.1  # the foreign share of such a window that still counts as quiet (its resolution: 0.05)
QUIET_WAIT_S = 3.0  # the longest wait for a quiet window before a slice starts anyway


@dataclass(frozen=True)
class Snapshot:
    """CPU seconds at one instant: machine busy and steal, this process tree's own."""

    wall: float
    busy: float
    steal: float
    own: float


def snapshot(wall: float) -> Snapshot | None:
    """Now's CPU times (None where psutil is missing or /proc cannot be read)."""
    try:
        import psutil
    except ImportError:
        return None
    try:
        times = psutil.cpu_times()
        me = psutil.Process()
        own = _cpu(me.cpu_times())
        for child in me.children(recursive=True):  # data-parallel workers
            try:
                own += _cpu(child.cpu_times())
            except psutil.Error:
                pass
    except (psutil.Error, OSError):
        return None
    busy = sum(getattr(times, k, 0.0) for k in ("user", "nice", "system", "irq", "softirq"))
    return Snapshot(wall, busy, float(getattr(times, "steal", 0.0)), own)


def _cpu(times) -> float:
    return float(times.user + times.system + getattr(times, "children_user", 0.0)
                 + getattr(times, "children_system", 0.0))


def round_load(start: Snapshot | None, end: Snapshot | None, threads: int,
               cpus: int | None = None) -> dict[str, float] | None:
    """The round between two snapshots: wall seconds, CPU seconds others took
    (`foreign_cpu_s`, never below 0: the two counters tick at different instants),
    steal, the contender's own CPU, and those as shares (`foreign`, `steal`: of wall x
    CPUs; `efficiency`: own over wall x threads)."""
    if start is None or end is None or end.wall <= start.wall:
        return None
    cpus = cpus or os.cpu_count() or 1
    wall = end.wall - start.wall
    own = max(0.0, end.own - start.own)
    foreign = max(0.0, (end.busy - start.busy) - own)
    steal = max(0.0, end.steal - start.steal)
    return {"wall_s": wall, "foreign_cpu_s": foreign, "steal_s": steal, "own_cpu_s": own, "cpus": cpus,
            "foreign": foreign / (wall * cpus), "steal": steal / (wall * cpus),
            "efficiency": own / (wall * max(1, threads))}


def is_disturbed(load: dict | None) -> bool:
    """Whether other programs (or the hypervisor) took more than the calibrated share."""
    if not load:
        return False
    return float(load.get("foreign", 0.0)) > FOREIGN_LIMIT or float(load.get("steal", 0.0)) > STEAL_LIMIT


def wait_quiet(limit_s: float = QUIET_WAIT_S, sample_s: float = QUIET_SAMPLE_S,
               snap: Callable[[float], Snapshot | None] = snapshot, clock: Callable[[], float] = time.perf_counter,
               sleep: Callable[[float], None] = time.sleep) -> float:
    """Before a slice, after one that was disturbed: wait until other programs take at
    most QUIET_LIMIT of the machine over one `sample_s` window (the campaign driver's
    own tree, every contender asleep on its pipe, does not count), at most `limit_s`.
    A burst that is already running then ends before the next slice starts instead of
    falling on it. Returns the seconds waited."""
    began = clock()
    while clock() - began < limit_s:
        start = snap(clock())
        sleep(sample_s)
        window = round_load(start, snap(clock()), threads=1)
        if window is None or window["foreign"] <= QUIET_LIMIT:
            break
    return clock() - began
