"""Data-parallel workers: what every backend's `distributed.py` provides (no framework here).

Each backend package has a module `distributed` (the same name in every backend) that
runs its framework's own data-parallel engine; `benchmarks.parallel.launcher` starts the
processes and supervises them. A backend's module provides:

- `MODE`: the one mode it trains data-parallel (other modes are refused in one line);
- `engine(device) -> str`: the engine's name for the records (e.g. `torch.distributed/gloo`);
- `launch(workers, port, device) -> Launch`: the environment of each worker process and
  any helper processes the engine needs (MXNet's scheduler and server);
- `join(timeout_s) -> (rank, workers)`: join the group from the environment (called in
  each worker before building a model); `rank` is the engine's, which picks the slice;
- `build(backend, spec, vocab_size, device, params, mode) -> LanguageModel`: a model
  whose `train_epoch`/`loss_and_grads` take whole batches, train on this worker's slice
  (`common.shards`), average the gradients through the engine, clip on the global norm
  of the averaged gradient and take one optimizer step; their losses are the whole
  batch's, the same on every worker;
- `leave()`: leave the group;
- `allreduce_seconds(numel, repeats) -> float`: seconds for one average of a float32
  gradient of `numel` numbers across the workers (what the engine costs per step).

The environment names below are the launcher's; each backend's `launch` adds its
framework's own (torchrun's RANK/WORLD_SIZE/MASTER_*, MXNet's DMLC_*).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType

from backends import BACKENDS
from common.errors import SpecError

# The mode each backend trains data-parallel (its `distributed.MODE`), here without a
# framework import so that the campaign can run the 1-worker baseline in the same mode.
DATA_PARALLEL_MODE = {"pytorch": "nn", "mxnet": "hybridized", "jax": "scan"}
RANK, WORKERS, PORT = "RNNBENCH_RANK", "RNNBENCH_WORKERS", "RNNBENCH_PORT"
LOOPBACK = "127.0.0.1"  # where a single-machine run listens (our launcher is one machine's)


def loopback_interface() -> str:
    """The name of the interface that holds 127.0.0.1 (`lo` on Linux, `lo0` on macOS):
    gloo binds its sockets to the interface it is given (GLOO_SOCKET_IFNAME), else to
    the address the host name resolves to, which may face the network."""
    import psutil  # the environment tools, in every venv

    for name, addresses in psutil.net_if_addrs().items():
        if any(a.address == LOOPBACK for a in addresses):
            return name
    return "lo"


@dataclass(frozen=True)
class Helper:
    """A process the engine needs besides the workers (run as `python -c code`)."""

    name: str
    code: str
    env: dict[str, str]


@dataclass(frozen=True)
class Launch:
    """What to start: one environment per worker (added to the launcher's), and helpers."""

    worker_env: list[dict[str, str]]
    helpers: list[Helper] = field(default_factory=list)


def load_distributed(backend: str) -> ModuleType:
    """The backend's `distributed` module (imports its framework)."""
    return importlib.import_module(BACKENDS[backend].module + ".distributed")


def check_mode(backend: str, mode: str | None, supported: str) -> str:
    """The mode to run with workers: the backend's data-parallel mode, or a one-line refusal."""
    if mode not in (None, supported):
        raise SpecError(f"--workers runs {backend} only in its {supported!r} mode, not {mode!r}: "
                        f"use --mode {supported} (or leave --mode out)")
    return supported


def gpu_of(rank: int, device: str) -> str:
    """One worker per GPU: worker r of a `gpu` run uses gpu:r; CPU workers share the CPU."""
    return "cpu" if device.strip().lower() == "cpu" else f"gpu:{rank}"
