"""XLA's process-wide settings, put in the environment before the CPU client starts.

Threads: JAX has no thread-count API. XLA sizes the CPU client's intra-op thread pool
once, when the client is created, from `PJRT_NPROC` (then `NPROC`), falling back to
the CPU affinity mask (XLA's `DefaultThreadPoolSize`); `OMP_NUM_THREADS` and
`MKL_NUM_THREADS` are ignored. With one thread we also pass
`--xla_cpu_multi_thread_eigen=false`, so Eigen runs its kernels inline.

Scheduler: `--xla_cpu_enable_concurrency_optimized_scheduler=false`. XLA:CPU's default
schedule overlaps independent operations, which for this workload (matmuls that
already use every thread) costs memory and time (docs/performance.md). A value the user already put in XLA_FLAGS wins.

This module imports no JAX: the package runs it before the first `import jax`.
"""

from __future__ import annotations

import os
import warnings

EIGEN_FLAG = "--xla_cpu_multi_thread_eigen"
DEFAULT_FLAGS = {"--xla_cpu_enable_concurrency_optimized_scheduler": "false"}


def _flags() -> list[str]:
    return os.environ.get("XLA_FLAGS", "").split()


def _set_flags(flags: list[str]) -> None:
    if flags:
        os.environ["XLA_FLAGS"] = " ".join(flags)
    else:
        os.environ.pop("XLA_FLAGS", None)


def configure(threads: int | None) -> None:
    """Thread count (when given) and the default flags; effective only before JAX starts."""
    flags = _flags()
    names = {f.split("=", 1)[0] for f in flags}
    flags += [f"{name}={value}" for name, value in DEFAULT_FLAGS.items() if name not in names]
    if threads is not None:
        os.environ["PJRT_NPROC"] = str(threads)
        flags = [f for f in flags if not f.startswith(EIGEN_FLAG)]
        if threads == 1:
            flags.append(f"{EIGEN_FLAG}=false")
    _set_flags(flags)


def configure_from_env() -> None:
    """Default flags, and RNNBENCH_THREADS (set by the backend registry) as the thread count."""
    text = os.environ.get("RNNBENCH_THREADS", "")
    configure(int(text) if text.isdigit() and int(text) > 0 else None)


def client_started() -> bool:
    """Whether JAX already created its backends (then the pool size is fixed)."""
    try:
        from jax._src import xla_bridge  # private, but the only way to ask
    except ImportError:
        return True
    check = getattr(xla_bridge, "backends_are_initialized", None)
    return True if check is None else bool(check())


def set_threads(threads: int) -> None:
    """Configure `threads` if JAX has not started yet; otherwise warn if it differs."""
    if not client_started():
        configure(threads)
    elif threads != current_threads():
        warnings.warn(
            f"JAX's CPU thread pool already started with {current_threads()} threads; "
            f"{threads} takes effect only in a new process (set RNNBENCH_THREADS or PJRT_NPROC first)",
            RuntimeWarning,
            stacklevel=3,
        )


def current_threads() -> int:
    """The intra-op pool size XLA uses (or will use) in this process."""
    for var in ("PJRT_NPROC", "NPROC"):
        text = os.environ.get(var, "")
        if text.isdigit():
            return int(text)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
