"""`TorchBackend`: devices, threads, environment, matmul peak, and `build`."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from backends.base import Backend, Device, ModeInfo, best_flops, parse_device
from backends.pytorch import recurrence
from backends.pytorch.model import BookModel, TorchModel
from common.params import Params
from common.specs import RunSpec


def _torch_device(dev) -> torch.device:
    return torch.device("cpu") if dev.kind == "cpu" else torch.device("cuda", dev.index)


def _sync(result: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return result


@dataclass(frozen=True)
class Mode(ModeInfo):
    """What a mode changes (the package docstring says why), with its track and description."""

    written_out: bool = False  # GRU/RNN layers as recurrence.StackedRecurrent on the CPU
    compiled: bool = False  # forward pass and loss under torch.compile


MODES = {
    "eager": Mode("tuned", "nn.LSTM; on the CPU GRU/RNN as hand-written BPTT on packed oneDNN matmuls "
                           "(recurrence.py); clipping by one foreach norm on the device; torch.optim SGD/Adam "
                           "(foreach)", written_out=True),
    "nn": Mode("out-of-box", "nn.LSTM/GRU/RNN + torch.optim (foreach) + torch.nn.utils.clip_grad_norm_"),
    "compile": Mode("tuned", "nn.LSTM/GRU/RNN with the one-hot, output layer and loss under torch.compile "
                             "(inductor); device-side clipping", compiled=True),
    "book": Mode("book", "d2l 0.17's train_epoch_ch8: nn layers, the book's grad_clipping (norm compared on "
                         "the host) and float(loss) every step"),
}


class TorchBackend(Backend):
    name, framework = "pytorch", "PyTorch"
    MODES, default_mode = MODES, "eager"

    def devices(self) -> list[str]:
        return ["cpu"] + [f"gpu:{i}" for i in range(torch.cuda.device_count())]

    def set_threads(self, threads: int) -> None:
        torch.set_num_threads(threads)

    def device_memory(self, device: str) -> tuple[float, float] | None:
        dev = parse_device(device)
        if dev.kind != "gpu":
            return None
        cuda = torch.device("cuda", dev.index)
        return torch.cuda.memory_allocated(cuda) / 2**20, torch.cuda.max_memory_allocated(cuda) / 2**20

    def reset_device_peak(self, device: str) -> None:
        dev = parse_device(device)
        if dev.kind == "gpu":
            torch.cuda.reset_peak_memory_stats(torch.device("cuda", dev.index))

    def environment(self) -> dict:
        cuda = torch.cuda.is_available()
        return {
            "framework": "pytorch",
            "version": torch.__version__,
            "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "mkldnn": torch.backends.mkldnn.is_available(),
            "mkl": torch.backends.mkl.is_available(),
            "cuda": torch.version.cuda if cuda else None,
            "cudnn": torch.backends.cudnn.version() if cuda else None,
            "gpu_names": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        }

    def matmul_peak(self, device: str = "cpu", n: int = 2048, repeats: int = 5) -> float:
        """PyTorch's plain float32 `a @ b` (MKL on the CPU, which takes its AVX2 path on
        AMD CPUs; cuBLAS on a GPU), synchronised."""
        dev = _torch_device(parse_device(device))
        a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
        return best_flops(lambda: _sync(a @ b, dev), 2 * n**3, repeats)

    def matmul_peaks(self, device: str = "cpu", n: int = 2048, repeats: int = 5) -> dict[str, float]:
        """`plain` (`a @ b`) and, on the CPU, oneDNN's matmul with the weight packed
        (AVX-512 where the CPU has it), which the written-out recurrent kernels use."""
        peaks = {"plain": self.matmul_peak(device, n, repeats)}
        dev = _torch_device(parse_device(device))
        if dev.type == "cpu" and recurrence.ONEDNN:
            a, b = torch.randn(n, n), torch.randn(n, n)
            packed = recurrence.PackedLinear(b, rows=n)
            peaks["onednn_packed"] = best_flops(lambda: packed(a), 2 * n**3, repeats)
        return peaks

    def device_name(self, device: str) -> str | None:
        dev = parse_device(device)
        return torch.cuda.get_device_name(dev.index) if dev.kind == "gpu" else None

    def _build(self, spec: RunSpec, vocab_size: int, device: Device, params: Params | None,
               mode: str) -> TorchModel:
        model_class = BookModel if MODES[mode].book else TorchModel
        return model_class(spec, vocab_size, _torch_device(device), params, mode, MODES[mode])


BACKEND = TorchBackend()
