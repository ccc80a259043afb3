"""Backend registry: a backend is loaded by name, its framework imported only then.

Thread settings that frameworks read once at import (OpenMP, XLA) are put in the
environment before the import, so every framework starts with the same count; the
heap setting of `backends.heap` is applied to every backend's process alike.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

from backends.base import Backend
from backends.heap import keep_freed_memory
from common.errors import BackendUnavailable, SpecError


@dataclass(frozen=True)
class Entry:
    module: str
    framework: str
    install: str


BACKENDS = {
    "pytorch": Entry("backends.pytorch", "PyTorch", "pip install torch==2.13.0"),
    "mxnet": Entry("backends.mxnet_gluon", "MXNet", "pip install mxnet==1.9.1 numpy==1.23.5"),
    "jax": Entry("backends.jax_flax", "JAX/Flax", "pip install jax flax optax"),
}


_THREADS_SET: dict[str, int] = {}


def default_threads() -> int:
    return os.cpu_count() or 1


def prepare_threads(threads: int) -> None:
    """Thread counts frameworks read from the environment at import time."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RNNBENCH_THREADS"):
        os.environ[var] = str(threads)


def load_backend(name: str, threads: int | None = None) -> Backend:
    """The backend called `name`, with `threads` intra-op threads (default: all cores)."""
    if name not in BACKENDS:
        raise SpecError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    entry = BACKENDS[name]
    if threads is None:  # keep what an earlier load in this process set: XLA cannot change it
        threads = _THREADS_SET.get(name) or default_threads()
    prepare_threads(threads)
    keep_freed_memory()
    try:
        module = importlib.import_module(entry.module)
    except ImportError as exc:
        if (exc.name or "").startswith("backends") and exc.name != entry.module:
            raise  # a bug in this project, not a missing framework
        raise BackendUnavailable(
            f"backend {name!r} needs {entry.framework}, which cannot be imported here ({exc}); "
            f"run it through `nox -s bench-{name}` (it builds its own venv) or `{entry.install}`"
        ) from exc
    backend = module.BACKEND
    if _THREADS_SET.get(name) != threads:
        backend.set_threads(threads)
        _THREADS_SET[name] = threads
    return backend

