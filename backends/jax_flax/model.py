"""`JaxModel`: one built model, its optimizer state, and the LanguageModel contract.

Every public method runs inside `_context()`: 64-bit types only for float64 specs (so
float32 runs are plain JAX defaults), matmul precision "highest" (no TF32 on GPUs, so
GPU runs stay within the parity tolerance), and the model's device as the default.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Iterable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.traverse_util import flatten_dict, unflatten_dict

from backends.base import Batch, EpochStats, LanguageModel
from backends.jax_flax.cells import RNNLM
from backends.jax_flax.steps import compiled
from common.params import Params, check_params, param_shapes
from common.specs import RunSpec


def _in_context(method):
    """Run `method` with the model's x64 / precision / device settings."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._context():
            return method(self, *args, **kwargs)
    return wrapper


class JaxBase(LanguageModel):
    """What every JAX mode shares: the device / x64 / precision context, the canonical
    parameters as a nested dict (`self._params`), the optax state (`self._opt_state`,
    of `self._tx`, whose learning rate is an injected hyperparameter) and the key.
    A subclass sets `spec`, `mode`, `vocab_size`, `device`, `_x64`, `_tx` and `fns` (its
    jitted functions: `zero_state`, `loss_and_grads`, `recurrent_grads`, `predict_step`),
    then calls `_start(params)`."""

    _lr: float | None = None  # set by `_set_learning_rate`; None: the spec's

    def _context(self) -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        stack.enter_context(jax.enable_x64(self._x64))
        stack.enter_context(jax.default_matmul_precision("highest"))
        stack.enter_context(jax.default_device(self.device))
        return stack

    def _start(self, params: Params | None) -> None:
        """The key, then `params` (or the framework's initialisation) and a fresh optimizer."""
        self._key = self._commit(jax.random.key(self.spec.train.seed))
        if params is None:
            self._load(self._framework_init())
        else:
            self.set_params(params)

    def _framework_init(self) -> dict:
        """Nested canonical parameters from the framework's own seeded initialisation."""
        raise NotImplementedError

    def _load(self, nested: dict) -> None:
        """Make `nested` the parameters and restart the optimizer (at the current lr)."""
        self._params = self._commit(nested)
        self._opt_state = self._commit(self._tx.init(self._params))
        if self._lr is not None:
            self._set_learning_rate(self._lr)

    @_in_context
    def _set_learning_rate(self, lr: float) -> None:
        """Later steps use `lr`: the optimizer state's injected `learning_rate`, replaced
        by an array of the same dtype on the same device, so nothing recompiles."""
        self._lr = float(lr)
        old = optax.tree.get(self._opt_state, "learning_rate")
        new = self._commit(jnp.asarray(self._lr, dtype=old.dtype))
        self._opt_state = optax.tree.set(self._opt_state, learning_rate=new)

    @_in_context
    def get_params(self) -> Params:
        flat = flatten_dict(self._params, sep=".")
        order = param_shapes(self.spec.model, self.vocab_size)
        return {name: np.array(jax.device_get(flat[name]), copy=True) for name in order}

    @_in_context
    def set_params(self, params: Params) -> None:
        check_params(params, self.spec.model, self.vocab_size)
        dtype = np.dtype(self.spec.train.dtype)
        flat = {name: np.asarray(value, dtype=dtype) for name, value in params.items()}
        self._load(unflatten_dict(flat, sep="."))
        self._run_state = None  # a fresh start carries no state over either

    # -- what every mode does alike (through `self.fns`) -------------------------------
    def _state_for(self, state, batch: int):
        """The carried state; zeros at the epoch start or if the batch size changes; None
        when the sampling does not carry it (the step then starts each batch from zeros)."""
        if not self.spec.train.carries_state:
            return None
        if state is None or state[0].shape[1] != batch:
            return self._commit(self.fns.zero_state(batch))
        return state

    @_in_context
    def _loss_and_grads(self, X: np.ndarray, Y: np.ndarray) -> tuple[float, Params]:
        loss, grads = self.fns.loss_and_grads(self._params, *self._put(X, Y))
        flat = flatten_dict(grads, sep=".")
        return float(loss), {name: np.array(jax.device_get(flat[name]), copy=True)
                             for name in param_shapes(self.spec.model, self.vocab_size)}

    @_in_context
    def _recurrent_pass(self, X: np.ndarray, grads: bool) -> tuple[float, Params | None]:
        total, found = self.fns.recurrent_grads(self._params, *self._put(X))
        jax.block_until_ready(found)
        if not grads:
            return float(total), None
        return float(total), {f"rnn.{name}": np.asarray(jax.device_get(g))
                              for name, g in flatten_dict(found, sep=".").items()}

    @_in_context
    def _predict(self, prefix_ids: list[int], num_preds: int) -> list[int]:
        """Greedy: feed the prefix a token at a time, then each argmax back in (one compile)."""
        state, step = self._commit(self.fns.zero_state(1)), self.fns.predict_step
        for token in prefix_ids:
            out, state = step(self._params, state, *self._put(np.array([[token]])))
        outs = [out]
        for _ in range(num_preds - 1):
            out, state = step(self._params, state, out)
            outs.append(out)
        return [int(v[0, 0]) for v in jax.device_get(outs)]

    def _put(self, *arrays: np.ndarray):
        return jax.device_put(tuple(np.asarray(a, np.int32) for a in arrays), self.device)

    def _commit(self, tree):
        """Arrays placed explicitly on the model's device. jit keys its cache on whether an
        argument is committed to a device, so mixing fresh (uncommitted) zeros with the
        (committed) outputs of earlier steps would compile every step function twice."""
        return jax.device_put(tree, self.device)


class JaxModel(JaxBase):
    """A Flax RNN language model on one JAX device, trained by jitted optax steps
    (the tuned modes: this project's cells, `cells.RNNLM`).

    Training runs equally-shaped batches in chunks, each chunk one compiled loop.
    """

    def __init__(self, spec: RunSpec, vocab_size: int, device: jax.Device, params: Params | None,
                 mode: str, settings):
        self.spec, self.mode, self.vocab_size, self.device = spec, mode, vocab_size, device
        self.settings = settings  # backend.MODES[mode]
        self.recurrence, self.unroll = recurrence, unroll = settings.recurrence, settings.unroll
        self._capacity: dict[str, dict] = {"train": {}, "eval": {}}  # batch shape -> batches per chunk
        self._x64 = spec.train.dtype == "float64"
        with self._context():
            self._dtype = jnp.float64 if self._x64 else jnp.float32
            self._net = RNNLM(spec.model, vocab_size, unroll, self._dtype, recurrence)
            self.fns = compiled(self._net, spec, self._dtype)
            self._tx = self.fns.tx
            self._start(params)

    # -- parameters --------------------------------------------------------------------
    def _framework_init(self) -> dict:
        """Flax's own initialisation (lecun-normal inputs, orthogonal recurrences, zero biases)."""
        X = jnp.zeros((1, 1), jnp.int32)
        variables = _jit_init(self._net, jax.random.key(self.spec.train.seed), X, self.fns.zero_state(1))
        return unflatten_dict(flatten_dict(variables["params"]))  # plain nested dicts

    # -- training and evaluation -------------------------------------------------------
    @_in_context
    def _train_epoch(self, batches: Iterable[Batch]) -> EpochStats:
        batches = list(batches)
        carry = self._commit((self._params, self._opt_state, jnp.zeros((), self._dtype), self._key, None))
        carry = carry[:4] + (self._epoch_start_state(),)
        for batch, Xs, Ys, count in self._chunks(batches, self._capacity["train"]):
            carry = carry[:4] + (self._state_for(carry[4], batch),)
            carry = self.fns.train_chunk(carry, Xs, Ys, count)
            self._params, self._opt_state, _, self._key, _ = carry  # valid even if interrupted
        self._epoch_end_state(carry[4])
        loss_sum = float(jax.block_until_ready(carry)[2])  # the epoch's one sync
        return EpochStats(loss_sum, int(sum(X.size for X, _ in batches)))

    @_in_context
    def _evaluate(self, batches: Iterable[Batch]) -> EpochStats:
        batches = list(batches)
        loss_sum, state = self._commit(jnp.zeros((), self._dtype)), None
        for batch, Xs, Ys, count in self._chunks(batches, self._capacity["eval"]):
            carry = (loss_sum, self._state_for(state, batch))
            loss_sum, state = self.fns.eval_chunk(carry, self._params, Xs, Ys, count)
        return EpochStats(float(loss_sum), int(sum(X.size for X, _ in batches)))  # float() syncs

    def _chunks(self, batches: list[Batch], capacities: dict):
        """(batch size, Xs, Ys, count) per chunk: runs of equally-shaped batches, stacked
        (K, B, T) on the device, K = the number of such batches the first time this shape
        was seen (so later epochs reuse the compilation), zero-padded past `count`."""
        for group in _same_shape_runs(batches):
            shape = group[0][0].shape
            capacity = capacities.setdefault(shape, len(group))
            for start in range(0, len(group), capacity):
                chunk = group[start:start + capacity]
                Xs = np.zeros((2, capacity) + shape, np.int32)
                for i, (X, Y) in enumerate(chunk):
                    Xs[0, i], Xs[1, i] = X, Y
                yield (shape[0], *self._put(Xs[0], Xs[1]), self._commit(np.int32(len(chunk))))




@functools.partial(jax.jit, static_argnums=0)
def _jit_init(net: RNNLM, key, X, state):
    """`net.init` compiled once per network (linen modules hash by their fields), not op by op."""
    return net.init(key, X, state, False)


def _same_shape_runs(batches: list[Batch]) -> list[list[Batch]]:
    """Consecutive batches grouped by shape (usually one group; `windows` adds a partial one)."""
    groups: list[list[Batch]] = []
    for b in batches:
        if groups and groups[-1][0][0].shape == b[0].shape:
            groups[-1].append(b)
        else:
            groups.append([b])
    return groups
