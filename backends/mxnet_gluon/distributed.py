"""MXNet data-parallel training: its KVStore, `dist_sync`, over loopback.

The installed wheel is built with DIST_KVSTORE (ps-lite), so this runs MXNet's own
parameter-server engine with the roles it launches through `DMLC_*` variables: one
scheduler, one server and N worker processes. `device`/`local` kvstores across several
contexts of one process were the alternative; they were not chosen because on a CPU
every context is the same device in the same process (one engine, one OpenMP pool),
so they would not be separate workers, and that path does not reach other machines.

Each worker's `gluon.Trainer` holds the kvstore with `update_on_kvstore=False`:
`allreduce_grads` pushes the gradients and pulls their sum over the workers, the
worker divides by N (the average), clips on the global norm of that average and runs
`trainer.update`, so the optimizer runs on the workers, never on the server (where the
global-norm clip could not be taken).
"""

from __future__ import annotations

import time

import numpy as np

from backends import base
from backends.distributed import DATA_PARALLEL_MODE, LOOPBACK, Helper, Launch
from backends.mxnet_gluon._environment import autograd, mx, nd
from backends.mxnet_gluon.backend import MODES, MXNetBackend
from backends.mxnet_gluon.model import GluonModel
from backends.mxnet_gluon.optim import clip_on_device, make_trainer
from common.shards import shard, shards

MODE = DATA_PARALLEL_MODE["mxnet"]  # "hybridized": the Gluon blocks hybridized, stepped by a gluon.Trainer
REDUCE_KEY = 1 << 20  # the kvstore key of the per-epoch (loss sum, tokens) sum; the Trainer uses 0..n-1
TIMING_KEY = REDUCE_KEY + 1
_KV: dict[str, object] = {}


def engine(device: str) -> str:
    return "mxnet.kvstore/dist_sync"


def launch(workers: int, port: int, device: str) -> Launch:
    """The DMLC roles on loopback: the scheduler listens on `port`, the others pick theirs."""
    common = {"DMLC_PS_ROOT_URI": LOOPBACK, "DMLC_PS_ROOT_PORT": str(port), "DMLC_NUM_SERVER": "1",
              "DMLC_NUM_WORKER": str(workers), "DMLC_NODE_HOST": LOOPBACK}
    quiet = {**common, "OMP_NUM_THREADS": "1", "MXNET_ENGINE_TYPE": "NaiveEngine"}
    helpers = [Helper(role, "import mxnet", {**quiet, "DMLC_ROLE": role}) for role in ("scheduler", "server")]
    return Launch([{**common, "DMLC_ROLE": "worker"} for _ in range(workers)], helpers)


def join(timeout_s: float) -> tuple[int, int]:
    """Create the `dist_sync` kvstore (registers with the scheduler; ps-lite has no
    timeout, so a hang is the launcher's watchdog's to end)."""
    kv = mx.kv.create("dist_sync")
    kv.init(REDUCE_KEY, nd.zeros((2,), dtype=np.float64))
    _KV["kv"] = kv
    return kv.rank, kv.num_workers


def leave() -> None:
    """ps-lite finalises (a barrier of every node) when the kvstore is freed at exit."""


def build(backend: MXNetBackend, spec, vocab_size: int, device: str, params, mode: str) -> "KVStoreModel":
    dev = base.parse_device(device)
    base.require_device(dev, backend.devices(), backend.framework)
    ctx = mx.cpu() if dev.kind == "cpu" else mx.gpu(dev.index)
    return KVStoreModel(spec, vocab_size, ctx, params, mode, MODES[mode])


def _sum(values: list[float]) -> list[float]:
    """Sums over the workers (up to two values) through the kvstore, in float64."""
    kv = _KV["kv"]
    arr = nd.array(list(values) + [0.0] * (2 - len(values)), dtype=np.float64)
    kv.pushpull(REDUCE_KEY, arr, out=arr)
    return [float(v) for v in arr.asnumpy()[:len(values)]]


class KVStoreModel(GluonModel):
    """`GluonModel` (hybridized) whose update goes through the `dist_sync` kvstore."""

    def __init__(self, *args, **kwargs):
        self.kv = _KV["kv"]
        self.rank, self.workers = self.kv.rank, self.kv.num_workers
        self.trainer = None
        super().__init__(*args, **kwargs)

    def _make_update(self) -> None:
        """One Trainer on the kvstore for the model's life; a later `set_params` gives it
        a fresh optimizer (its keys are initialised on the servers only once)."""
        fresh = make_trainer(self.spec, self.net.collect_params())
        if self.trainer is None:
            self.trainer = mx.gluon.Trainer(self.net.collect_params(), fresh._optimizer, kvstore=self.kv,
                                            update_on_kvstore=False)
        else:
            self.trainer._init_optimizer(fresh._optimizer, None)
        self.update = self._update

    def _average(self, grads: list) -> None:
        """The engine's sum over the workers, divided by N, in place."""
        self.trainer.allreduce_grads()
        for g in grads:
            g *= 1.0 / self.workers

    def _update(self, grads: list) -> None:
        self._average(grads)
        clip_on_device(grads, self.spec.train.clip)
        self.trainer.update(1)

    def _train_epoch(self, batches) -> base.EpochStats:
        local = super()._train_epoch(shards(batches, self.rank, self.workers))
        loss_sum, tokens = _sum([local.loss_sum, local.tokens])
        return base.EpochStats(loss_sum, int(tokens))

    def _loss_and_grads(self, X: np.ndarray, Y: np.ndarray):
        X, Y = shard((X, Y), self.rank, self.workers)
        with autograd.record():
            loss, _ = self._loss(X, Y, self._zeros(X.shape[0]))
        loss.backward()
        self._average(self._grads())
        grads = {name: p.grad(self.ctx).asnumpy() for name, p in self._params.items()}
        return _sum([float(loss.asnumpy()[0])])[0] / self.workers, grads


def allreduce_seconds(numel: int, repeats: int = 20) -> float:
    """Median seconds of one push-pull (sum over workers) of `numel` float32s, /N."""
    kv, arr = _KV["kv"], nd.ones((numel,))
    kv.init(TIMING_KEY, arr)
    times = []
    for _ in range(repeats + 2):
        kv.barrier() if hasattr(kv, "barrier") else kv._barrier()
        tic = time.perf_counter()
        kv.pushpull(TIMING_KEY, arr, out=arr)
        arr *= 1.0 / kv.num_workers
        arr.wait_to_read()
        times.append(time.perf_counter() - tic)
    return float(np.median(times[2:]))


assert MODE in MODES
