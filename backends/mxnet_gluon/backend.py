"""The `mxnet` backend: devices, build environment, threads, and `build`."""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from backends import base
from backends.mxnet_gluon._environment import ENGINE, mx
from backends.mxnet_gluon.model import BookModel, GluonModel
from common.errors import SpecError
from common.params import Params
from common.specs import RunSpec


def _import_threads() -> int | None:
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() else None


_OMP_THREADS_AT_IMPORT = _import_threads()


@dataclass(frozen=True)
class Mode(base.ModeInfo):
    """What a mode changes (the package docstring says why), with its track and description."""

    hybridize: bool = False  # the blocks and the loss compiled by hybridize(static_alloc, static_shape)


MODES = {
    "imperative": Mode("tuned", "FlatRNN (one flat parameter buffer, no per-step re-packing), device-side "
                                "clipping folded into one fused multi-SGD update; not hybridized"),
    "hybridized": Mode("tuned", "as imperative, with the blocks and loss hybridized (static_alloc, "
                                "static_shape)", hybridize=True),
    "gluon": Mode("out-of-box", "Gluon rnn.LSTM/GRU/RNN, hybridized (static_alloc, static_shape) + gluon.Trainer "
                                "+ gluon.utils.clip_global_norm (no host check); the loss is log-sum-exp in "
                                "elementwise ops, as every mode (Gluon's fused loss is too inexact for parity)",
                  hybridize=True),
    "book": Mode("book", "d2l 0.17's RNNModel and train_epoch_ch8: Gluon rnn layers, imperative, the book's "
                         "grad_clipping (host norm) and float(loss) every step, from train_ch8's "
                         "init.Normal(0.01) (biases zero)", init="normal:0.01"),
}


class MXNetBackend(base.Backend):
    name = "mxnet"
    framework = "MXNet"
    MODES = MODES
    default_mode = "hybridized"  # measured faster on d2l-deep-lstm (CPU); see the closing note of issue 4

    def __init__(self) -> None:
        self._requested = _OMP_THREADS_AT_IMPORT or os.cpu_count() or 1

    def devices(self) -> list[str]:
        try:
            gpus = mx.context.num_gpus()
        except mx.base.MXNetError:  # a CUDA build without a usable driver
            gpus = 0
        return ["cpu"] + [f"gpu:{i}" for i in range(gpus)]

    def environment(self) -> dict[str, Any]:
        features = mx.runtime.Features()
        blas = [n[5:].lower() for n in ("BLAS_MKL", "BLAS_OPEN", "BLAS_ATLAS", "BLAS_APPLE") if features.is_enabled(n)]
        return {
            "framework": "mxnet",
            "version": mx.__version__,
            "numpy": np.__version__,
            "features": {
                "mkldnn": features.is_enabled("MKLDNN"),
                "cuda": features.is_enabled("CUDA"),
                "cudnn": features.is_enabled("CUDNN"),
                "blas": blas[0] if blas else "none",
            },
            "threads": _OMP_THREADS_AT_IMPORT or os.cpu_count() or 1,
            "threads_requested": self._requested,
            "omp_threads": _OMP_THREADS_AT_IMPORT,
            "engine": ENGINE,
            "engine_cpu_workers": int(os.environ.get("MXNET_CPU_WORKER_NTHREADS", "1")),
        }

    def set_threads(self, threads: int) -> None:
        """MXNet's operators take their OpenMP team size from OMP_NUM_THREADS as read at
        import (the registry sets it first, so a fresh process gets `threads`); later
        calls reach only this thread's OpenMP. `environment()` reports both counts."""
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise SpecError(f"threads={threads!r} must be an integer >= 1")
        mx.base._LIB.MXSetNumOMPThreads(ctypes.c_int(threads))
        self._requested = threads

    def matmul_peak(self, device: str = "cpu", n: int = 2048, repeats: int = 5) -> float:
        """MXNet's plain float32 `nd.dot` (OpenBLAS on the CPU, cuBLAS on a GPU), synchronised."""
        ctx = _context(base.parse_device(device))
        a, b = mx.nd.random.normal(shape=(n, n), ctx=ctx), mx.nd.random.normal(shape=(n, n), ctx=ctx)
        return base.best_flops(lambda: mx.nd.dot(a, b).wait_to_read(), 2 * n**3, repeats)

    def matmul_peaks(self, device: str = "cpu", n: int = 2048, repeats: int = 5) -> dict[str, float]:
        """`plain` (`nd.dot`) and `nd.FullyConnected` (oneDNN on the CPU, the library its
        recurrent kernels use)."""
        ctx = _context(base.parse_device(device))
        a, b = mx.nd.random.normal(shape=(n, n), ctx=ctx), mx.nd.random.normal(shape=(n, n), ctx=ctx)
        dense = base.best_flops(
            lambda: mx.nd.FullyConnected(a, b, no_bias=True, num_hidden=n).wait_to_read(), 2 * n**3, repeats)
        return {"plain": self.matmul_peak(device, n, repeats), "fully_connected": dense}

    def device_name(self, device: str) -> str | None:
        return None  # MXNet has no API for a GPU's model name; the CPU model is read by the harness

    def device_memory(self, device: str) -> tuple[float, float] | None:
        """The GPU's memory in use (`mx.context.gpu_memory_info`: the whole device's, not
        only this process's; MXNet keeps no peak, so the harness's samples make one)."""
        dev = base.parse_device(device)
        if dev.kind != "gpu":
            return None
        free, total = mx.context.gpu_memory_info(dev.index)
        used = (total - free) / 2**20
        return used, used

    def _build(self, spec: RunSpec, vocab_size: int, device: base.Device, params: Params | None,
               mode: str) -> base.LanguageModel:
        model_class = BookModel if MODES[mode].book else GluonModel
        return model_class(spec, vocab_size, _context(device), params, mode, MODES[mode])


def _context(dev: base.Device):
    return mx.cpu() if dev.kind == "cpu" else mx.gpu(dev.index)


BACKEND = MXNetBackend()
