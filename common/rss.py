"""Resident memory over a run's training: its level when training starts, its peak during.

The process's own peak (getrusage's `ru_maxrss`) also holds what came before training:
the matmul peak measurement (three 4096 x 4096 float32 matrices), the float64 parity
check, the data. Those differ between contenders (only the first contender of each
framework measures the peak in a campaign), so a memory comparison on that figure would
compare them, not the models. On Linux, writing 5 to /proc/self/clear_refs resets the
peak (VmHWM) to the current level, so the peak read after training is training's own:
framework, parameters, optimizer state, activations. Where that reset is not offered
the process peak is kept and `scope` says `process`.
"""

from __future__ import annotations

import re
from pathlib import Path

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_mib(field: str) -> float | None:
    """A `kB` field of /proc/self/status (VmRSS, VmHWM) in MiB; None where there is none."""
    try:
        found = re.search(rf"^{field}:\s+(\d+)\s+kB", STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(found.group(1)) / 1024.0 if found else None


def process_peak_mib() -> float:
    """Peak resident memory of this process so far (getrusage; KiB on Linux)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS; whether this system allowed it."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return _status_mib("VmHWM") is not None


class Watermark:
    """Started just before the first epoch: `start_mib` then, `peak_mib()` since."""

    def __init__(self) -> None:
        self.scope = "training" if _reset_peak() else "process"
        self.start_mib = _status_mib("VmRSS")

    def peak_mib(self) -> float:
        peak = _status_mib("VmHWM") if self.scope == "training" else None
        return peak if peak is not None else process_peak_mib()

    def fields(self) -> dict:
        """What the record's summary carries: `train_peak_rss_mb`, `rss_start_mb`, `peak_scope`."""
        return {"train_peak_rss_mb": self.peak_mib(), "rss_start_mb": self.start_mib, "peak_scope": self.scope}
