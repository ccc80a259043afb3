"""Keep freed memory in the process heap instead of returning it to the kernel.

A training step allocates and frees the same few-megabyte buffers (activations,
gradients, per-step temporaries) every batch. glibc's malloc serves blocks above its
mmap threshold with fresh `mmap`s and hands freed heap tops back (trim), so each batch
pays a page fault per 4 KiB touched. Raising both thresholds once per process keeps
those pages (figures in docs/performance.md). Applied to every backend alike (it is the process's
allocator, not a framework setting) and recorded in each run's environment;
`RNNBENCH_HEAP=default` leaves glibc's defaults (for an A/B of this setting).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc <malloc.h>
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit
TRIM_THRESHOLD = 1024 * 1024 * 1024

_applied: dict[str, int] | None = None


def keep_freed_memory() -> dict[str, int] | None:
    """Raise glibc's mmap and trim thresholds (once); the values set, or None where
    the C library is not glibc (then nothing changes)."""
    global _applied
    if _applied is None and os.environ.get("RNNBENCH_HEAP") != "default":
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):
            return None
        if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD):
            _applied = {"mmap_threshold": MMAP_THRESHOLD, "trim_threshold": TRIM_THRESHOLD}
    return _applied


def heap_settings() -> dict[str, int] | None:
    """What `keep_freed_memory` set in this process, for the run's record."""
    return _applied
