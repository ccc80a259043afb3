"""PyTorch data-parallel training: `torch.distributed` and `DistributedDataParallel`.

Processes rendezvous with torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT), so a worker started by `torchrun` joins the same way as one
started by `benchmarks.parallel.launcher`. Under our own launcher (one machine) everything listens
on loopback only: worker 0 binds the store's socket to 127.0.0.1 itself and hands it to
`TCPStore` (whose own server would bind every interface), and gloo is given the
loopback interface (GLOO_SOCKET_IFNAME). Under `torchrun` its `env://` store and the
interfaces it is given are the user's choice, for runs across machines. Backend: `gloo` on the CPU, `nccl` on GPUs
(one worker per GPU). DDP averages the gradients during `backward` (bucketed
all-reduces overlapping the backward pass); clipping then reads the averaged gradients
(`TorchModel._clip`), and every worker takes the same optimizer step.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from backends.base import EpochStats, parse_device
from backends.distributed import DATA_PARALLEL_MODE, LOOPBACK, PORT, Launch, loopback_interface
from backends.pytorch.backend import MODES, TorchBackend, _torch_device
from backends.pytorch.model import TorchModel
from common.errors import DeviceUnavailable
from common.shards import shard, shards

MODE = DATA_PARALLEL_MODE["pytorch"]  # "nn": nn.LSTM/GRU/RNN: the library's own layers, which DDP wraps as they are


def engine(device: str) -> str:
    return "torch.distributed/" + ("gloo" if parse_device(device).kind == "cpu" else "nccl")


def launch(workers: int, port: int, device: str) -> Launch:
    """torchrun's environment for each worker, on loopback."""
    if parse_device(device).kind == "gpu":
        if not dist.is_nccl_available() or torch.cuda.device_count() < workers:
            raise DeviceUnavailable(
                f"--workers {workers} on GPUs needs {workers} GPUs and NCCL; this PyTorch sees "
                f"{torch.cuda.device_count()} GPU(s), NCCL {'available' if dist.is_nccl_available() else 'absent'}: "
                "use --device cpu (gloo), or fewer workers")
    common = {"MASTER_ADDR": LOOPBACK, "MASTER_PORT": str(port), "WORLD_SIZE": str(workers),
              "LOCAL_WORLD_SIZE": str(workers), "GLOO_SOCKET_IFNAME": loopback_interface()}
    return Launch([{**common, "RANK": str(r), "LOCAL_RANK": str(r)} for r in range(workers)])


def join(timeout_s: float) -> tuple[int, int]:
    """Join the group from torchrun's environment; collectives give up after `timeout_s`.
    Started by our launcher (RNNBENCH_PORT set), the store listens on loopback only."""
    backend = "nccl" if os.environ.get("RNNBENCH_DEVICE", "cpu") != "cpu" else "gloo"
    timeout = timedelta(seconds=timeout_s)
    if PORT not in os.environ:
        dist.init_process_group(backend, init_method="env://", timeout=timeout)
        return dist.get_rank(), dist.get_world_size()
    rank, workers = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dist.init_process_group(backend, store=_loopback_store(rank, workers, timeout), rank=rank,
                            world_size=workers, timeout=timeout)
    return dist.get_rank(), dist.get_world_size()


def _loopback_store(rank: int, workers: int, timeout: timedelta) -> dist.TCPStore:
    """The rendezvous store on 127.0.0.1:MASTER_PORT; worker 0 serves it from a socket
    it bound to loopback (the launcher checked that the port was free)."""
    port = int(os.environ["MASTER_PORT"])
    if rank != 0:
        return dist.TCPStore(LOOPBACK, port, workers, is_master=False, timeout=timeout)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((LOOPBACK, port))
    listener.listen(128)
    store = dist.TCPStore(LOOPBACK, port, workers, is_master=True, timeout=timeout,
                          master_listen_fd=listener.fileno())
    _KEEP.append(listener)  # the store serves on this socket for the run's life
    return store


_KEEP: list[socket.socket] = []


def leave() -> None:
    """Destroy the group once the DDP model is freed (`benchmarks.parallel.worker` frees it first):
    a group still held by DDP's reducer is torn down at interpreter exit instead, where
    gloo's threads could abort the finished worker (`terminate called`, SIGABRT)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def build(backend: TorchBackend, spec, vocab_size: int, device: str, params, mode: str) -> "DDPModel":
    """The `nn` model wrapped in DDP (parameters checked by the backend's own build first)."""
    plain = backend.build(spec, vocab_size, device, params, mode)
    return DDPModel(plain)


class DDPModel(TorchModel):
    """`TorchModel` whose training forward runs through DDP on this worker's rows."""

    def __init__(self, plain: TorchModel):
        self.__dict__.update(plain.__dict__)  # the built model, its parameters and optimizer
        self.rank, self.workers = dist.get_rank(), dist.get_world_size()
        ids = None if self.device.type == "cpu" else [self.device.index]
        self.ddp = DistributedDataParallel(self.net, device_ids=ids, broadcast_buffers=False)
        self._train_loss = self._loss

    def _loss(self, X, y, state):
        net = self.ddp if torch.is_grad_enabled() and self.net.training else self.net
        logits, state = net(X, state)
        return torch.nn.functional.cross_entropy(logits.reshape(-1, self.vocab_size), y), state

    def _sum(self, *values: float) -> list[float]:
        """Sums over the workers (one all-reduce, float64)."""
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def _train_epoch(self, batches) -> EpochStats:
        local = super()._train_epoch(shards(batches, self.rank, self.workers))
        loss_sum, tokens = self._sum(local.loss_sum, local.tokens)
        return EpochStats(loss_sum, int(tokens))

    def _loss_and_grads(self, X: np.ndarray, Y: np.ndarray):
        """This worker's slice, gradients averaged by DDP, the loss averaged likewise."""
        X, Y = shard((X, Y), self.rank, self.workers)
        loss, grads = super()._loss_and_grads(X, Y)
        return self._sum(loss)[0] / self.workers, grads


def allreduce_seconds(numel: int, repeats: int = 20) -> float:
    """Median seconds of one all-reduce (sum, then /N as DDP does) of `numel` float32s."""
    dev = _torch_device(parse_device(os.environ.get("RNNBENCH_DEVICE", "cpu")))
    t = torch.ones(numel, device=dev)
    times = []
    for _ in range(repeats + 2):
        dist.barrier()
        tic = time.perf_counter()
        dist.all_reduce(t)
        t.div_(dist.get_world_size())
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - tic)
    return float(np.median(times[2:]))


assert MODE in MODES
