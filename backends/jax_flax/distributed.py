"""JAX data-parallel training: `jax.distributed` processes and one global device mesh.

Each worker is a process with one CPU device (or one GPU); `jax.distributed.initialize`
joins them through a coordinator on loopback, and CPU collectives go through gloo
(`jax_cpu_collectives_implementation`). On one machine both listen on loopback only:
the coordinator is bound to 127.0.0.1 (JAX's default binds every interface) and gloo
is given the loopback interface. With RNNBENCH_COORDINATOR (runs across machines) JAX's
own defaults apply. The batch is a global array sharded over the
mesh's `data` axis (each process supplies its own rows, `common.shards`); parameters,
optimizer state and the loss are replicated. The training step is the single-process
one (`steps.Compiled`), jitted over those shardings: XLA's partitioner inserts the
all-reduce that sums the gradient of the mean loss, so the clip reads the averaged
gradient and every process takes the same step.

Several host devices in one process (`--xla_force_host_platform_device_count`) were
the alternative; processes were chosen because they are the workers of the other two
frameworks (separate processes, threads divided, one can die) and because the same
code runs across machines.
"""

from __future__ import annotations

import contextlib
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from backends import base
from backends.distributed import DATA_PARALLEL_MODE, LOOPBACK, PORT, RANK, WORKERS, Launch, loopback_interface
from backends.jax_flax.backend import MODES, JaxBackend
from backends.jax_flax.model import JaxModel
from common.shards import shard, shards

COORDINATOR = "RNNBENCH_COORDINATOR"  # host:port of process 0 (default: loopback, the launcher's port)
MODE = DATA_PARALLEL_MODE["jax"]  # "scan": each layer its own lax.scan


def engine(device: str) -> str:
    kind = base.parse_device(device).kind
    return "jax.distributed/" + ("gloo" if kind == "cpu" else "nccl")


def launch(workers: int, port: int, device: str) -> Launch:
    """The launcher's own variables suffice: rank, count, coordinator port."""
    return Launch([{} for _ in range(workers)])


def join(timeout_s: float) -> tuple[int, int]:
    """Join the coordinator (process 0 runs it) with gloo CPU collectives."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    rank, workers = int(os.environ[RANK]), int(os.environ[WORKERS])
    across = os.environ.get(COORDINATOR)  # another host's address, across machines
    address = across or f"{LOOPBACK}:{os.environ[PORT]}"
    bind = None if across else address
    if not across:
        _gloo_on_loopback()
    device = base.parse_device(os.environ.get("RNNBENCH_DEVICE", "cpu"))
    local = None if device.kind == "cpu" else [device.index]  # one GPU per process
    jax.distributed.initialize(address, num_processes=workers, process_id=rank, local_device_ids=local,
                               coordinator_bind_address=bind,
                               initialization_timeout=int(timeout_s), heartbeat_timeout_seconds=int(timeout_s),
                               shutdown_timeout_seconds=int(timeout_s))
    return jax.process_index(), jax.process_count()


def _gloo_on_loopback() -> None:
    """Make the CPU client's gloo collectives bind the loopback interface. JAX builds
    them itself (`xla_bridge`, when the CPU backend starts) with no interface, so gloo
    would bind the address the host name resolves to; the builder is wrapped to pass
    one. A JAX without that builder keeps its default."""
    from jax._src import xla_bridge

    make = getattr(xla_bridge._jax, "make_gloo_tcp_collectives", None)
    if make is None or getattr(make, "loopback", False):
        return
    interface = loopback_interface()

    def on_loopback(distributed_client, hostname=None, interface_=None, **kwargs):
        return make(distributed_client=distributed_client, interface=interface)

    on_loopback.loopback = True
    xla_bridge._jax.make_gloo_tcp_collectives = on_loopback


def leave() -> None:
    jax.distributed.shutdown()


def build(backend: JaxBackend, spec, vocab_size: int, device: str, params, mode: str) -> "MeshModel":
    base.require_device(base.parse_device(device), backend.devices(), backend.framework)
    return MeshModel(spec, vocab_size, None, params, mode, MODES[mode])


class MeshModel(JaxModel):
    """`JaxModel` over the global mesh: batches sharded by rows, the rest replicated."""

    def __init__(self, *args, **kwargs):
        self.mesh = Mesh(np.array(jax.devices()), ("data",))
        self.rank, self.workers = jax.process_index(), jax.process_count()
        self._replicate = False
        super().__init__(*args, **kwargs)

    def _context(self) -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        stack.enter_context(jax.enable_x64(self._x64))
        stack.enter_context(jax.default_matmul_precision("highest"))
        return stack

    def _sharding(self, *spec) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec(*spec))

    def _commit(self, tree):
        """Replicated over the mesh (arrays already global are left as they are)."""
        return jax.tree.map(lambda x: _global(x, self._sharding()), tree)

    def _put(self, *arrays: np.ndarray):
        """This process's rows as one global array sharded on the batch axis ((K, B, T)
        chunks on axis 1, (B, T) batches on axis 0); replicated while `_replicate`."""
        out = []
        for a in arrays:
            a = np.asarray(a, np.int32)
            if self._replicate:
                out.append(_global(a, self._sharding()))
                continue
            spec = (None, "data") if a.ndim == 3 else ("data",)
            out.append(jax.make_array_from_process_local_data(self._sharding(*spec), a))
        return tuple(out)

    def _state_for(self, state, batch: int):
        """The carried state over the global batch (`batch` is this process's rows)."""
        if not self.spec.train.carries_state:
            return None
        rows = batch * (1 if self._replicate else self.workers)
        if state is None or state[0].shape[1] != rows:
            zeros = jax.device_get(self.fns.zero_state(rows))
            sharding = self._sharding() if self._replicate else self._sharding(None, "data")
            return jax.tree.map(lambda z: _global(z, sharding), zeros)
        return state

    def _train_epoch(self, batches) -> base.EpochStats:
        local = super()._train_epoch(list(shards(batches, self.rank, self.workers)))
        return base.EpochStats(local.loss_sum, local.tokens * self.workers)  # the loss is the global one

    def _evaluate(self, batches) -> base.EpochStats:
        """Every process evaluates the whole batches, replicated (a partial batch need not split)."""
        with self._replicated():
            return super()._evaluate(batches)

    def _predict(self, prefix_ids, num_preds):
        with self._replicated():
            return super()._predict(prefix_ids, num_preds)

    def _recurrent_pass(self, X, grads):
        with self._replicated():
            return super()._recurrent_pass(X, grads)

    def _loss_and_grads(self, X: np.ndarray, Y: np.ndarray):
        return super()._loss_and_grads(*shard((X, Y), self.rank, self.workers))

    @contextlib.contextmanager
    def _replicated(self):
        self._replicate = True
        try:
            yield
        finally:
            self._replicate = False


def _global(x, sharding: NamedSharding):
    """`x` (the same on every process) as a global array laid out by `sharding`; a global
    array stays as it is. (`device_put` cannot reach other processes' devices.)"""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return x
    if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(_global(jax.random.key_data(x), sharding), impl=jax.random.key_impl(x))
    a = np.asarray(x)
    return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])


def allreduce_seconds(numel: int, repeats: int = 20) -> float:
    """Median seconds of one mean over the processes of a `numel` float32 vector."""
    mesh = Mesh(np.array(jax.devices()), ("data",))
    local = np.ones((1, numel), np.float32)
    x = jax.make_array_from_process_local_data(NamedSharding(mesh, PartitionSpec("data")), local)
    mean = jax.jit(lambda v: jnp.mean(v, axis=0), out_shardings=NamedSharding(mesh, PartitionSpec()))
    mean(x).block_until_ready()
    times = []
    for _ in range(repeats + 2):
        tic = time.perf_counter()
        mean(x).block_until_ready()
        times.append(time.perf_counter() - tic)
    return float(np.median(times[2:]))


assert MODE in MODES
