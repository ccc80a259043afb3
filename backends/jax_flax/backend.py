"""`JaxBackend`: devices, environment, threads, modes, and `build`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import flax
import jax
import jaxlib
import numpy as np
import optax

from backends.base import Backend, Device, ModeInfo, best_flops, parse_device, require_device
from backends.jax_flax import _environment
from backends.jax_flax.library_model import FlaxModel
from backends.jax_flax.model import JaxModel
from common.params import Params
from common.specs import RunSpec


@dataclass(frozen=True)
class Mode(ModeInfo):
    """What a mode changes, with its track and description (`ModeInfo`). "scan" runs each
    layer as its own scan; "wavefront" (the default) the whole stack as one scan
    (`wavefront.py`), and stacks it does not support (bidirectional, dropout, one layer)
    per layer as "scan" does; "flax" is Flax's own cells (`library.py`)."""

    recurrence: str = "scan"  # "scan" (per layer) or "wavefront" (the stack in one scan); not read by "flax"
    unroll: int = 1  # lax.scan's unroll factor: time steps per loop iteration


_TUNED = ("this project's cells in the canonical layout with a hand-written backward (custom_vjp), "
          "the input projection of all steps as one matmul, a whole chunk of batches in one jitted "
          "fori_loop with donated buffers, exact min(1, clip/norm) clipping, optax sgd/adam")
MODES = {
    "scan": Mode("tuned", f"each layer one lax.scan; {_TUNED}", "scan"),
    "scan-unroll": Mode("tuned", f"each layer one lax.scan unrolled 5 steps; {_TUNED}", "scan", 5),
    "wavefront": Mode("tuned",
                      "the whole stack as one wavefront lax.scan (layer l at time s-l, fused [W_hh|W_ih] matmul "
                      f"per layer and step; per layer as scan when bidirectional, dropout or 1 layer); {_TUNED}",
                      "wavefront"),
    "flax": Mode("out-of-box",
                 "Flax's nn.OptimizedLSTMCell/GRUCell/SimpleCell in nn.RNN (nn.Bidirectional, nn.Dropout, nn.Embed, "
                 "nn.Dense), optax clip_by_global_norm + sgd/adam, one jax.jit train step per batch from Python; "
                 "canonical parameters mapped into Flax's merged biases in the step; matmul precision 'highest' "
                 "as in every mode; no limitations"),
}


def _gpus() -> list[jax.Device]:
    """GPU devices, or none when this jaxlib has no GPU backend or sees no GPU."""
    try:
        return list(jax.devices("gpu"))
    except RuntimeError:
        return []


class JaxBackend(Backend):
    name, framework = "jax", "JAX/Flax"
    MODES, default_mode = MODES, "wavefront"

    def devices(self) -> list[str]:
        return ["cpu"] + [f"gpu:{i}" for i in range(len(_gpus()))]

    def set_threads(self, threads: int) -> None:
        _environment.set_threads(threads)

    def environment(self) -> dict[str, Any]:
        gpus = _gpus()
        return {
            "framework": "jax",
            "version": jax.__version__,
            "versions": {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "flax": flax.__version__,
                         "optax": optax.__version__, "numpy": np.__version__},
            "platform": jax.default_backend(),
            "platform_version": jax.devices()[0].client.platform_version,
            "threads": _environment.current_threads(),
            "pjrt_nproc": os.environ.get("PJRT_NPROC"),
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "matmul_precision": "highest",
            "gpu_names": [d.device_kind for d in gpus],
        }

    def matmul_peak(self, device: str = "cpu", n: int = 2048, repeats: int = 5) -> float:
        dev = self._device(parse_device(device))
        with jax.default_matmul_precision("highest"):  # as the models run
            matmul = jax.jit(lambda a, b: a @ b)
            a = jax.device_put(np.random.RandomState(0).randn(n, n).astype(np.float32), dev)
            return best_flops(lambda: matmul(a, a).block_until_ready(), 2 * n**3, repeats)

    def device_name(self, device: str) -> str | None:
        """The GPU's name (e.g. 'NVIDIA A100'); None for the CPU (the harness knows its model)."""
        dev = parse_device(device)
        return self._device(dev).device_kind if dev.kind == "gpu" else None

    def device_memory(self, device: str) -> tuple[float, float] | None:
        """XLA's allocator statistics on a GPU (its peak is the process's: there is no reset)."""
        dev = parse_device(device)
        if dev.kind != "gpu":
            return None
        stats = self._device(dev).memory_stats() or {}
        if "peak_bytes_in_use" not in stats:
            return None
        return stats.get("bytes_in_use", 0) / 2**20, stats["peak_bytes_in_use"] / 2**20

    def _device(self, dev) -> jax.Device:
        require_device(dev, self.devices(), self.framework)
        return jax.devices("cpu")[0] if dev.kind == "cpu" else _gpus()[dev.index]

    def _build(self, spec: RunSpec, vocab_size: int, device: Device, params: Params | None,
               mode: str) -> JaxModel:
        model_class = FlaxModel if MODES[mode].library else JaxModel
        return model_class(spec, vocab_size, self._device(device), params, mode, MODES[mode])


BACKEND = JaxBackend()
