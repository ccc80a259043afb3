"""`FlaxModel`: the `flax` mode (out-of-box track), trained as the Flax examples train.

One `jax.jit`-ed train step (loss, `jax.value_and_grad`, `tx.update`,
`optax.apply_updates`), called from Python once per batch; the same for evaluation.
The optimizer is optax's own: `optax.clip_by_global_norm` (left out when clip <= 0,
where it would zero every update) chained with `optax.sgd` or `optax.adam`, each under
`optax.inject_hyperparams` so the learning rate can change without recompiling. The loss
is `optax.softmax_cross_entropy_with_integer_labels`, averaged.

The network is `library.FlaxLM` (Flax's cells in `nn.RNN`); the trained parameters are
the canonical ones, mapped into Flax's layout inside each step (`library.to_flax`), so
the two biases Flax merges each get the merged bias's gradient and update as in the
reference. The loss sum stays on the device; the epoch's one sync reads it at the end.
No fori_loop over batches, no donated buffers, no custom VJP.
"""

from __future__ import annotations

import functools
from typing import Any, Iterable

import jax
import jax.numpy as jnp
import optax

from backends.base import Batch, EpochStats
from backends.jax_flax.library import FlaxLM, FlaxStack, from_carries, from_flax, stack_to_flax, to_carries, to_flax
from backends.jax_flax.model import JaxBase, _in_context
from common.params import Params
from common.specs import ModelSpec, RunSpec, TrainSpec
from common.state import state_count, state_shape


def library_optimizer(train: TrainSpec) -> optax.GradientTransformation:
    """optax as its documentation writes it: clip by global norm, then SGD or Adam."""
    factory = optax.sgd if train.optimizer == "sgd" else optax.adam  # adam's defaults: PyTorch's
    opt = optax.inject_hyperparams(factory)(learning_rate=train.lr)
    return optax.chain(optax.clip_by_global_norm(train.clip), opt) if train.clip > 0 else opt


def zero_state(model: ModelSpec, batch: int, dtype) -> tuple:
    return tuple(jnp.zeros(state_shape(model, batch), dtype) for _ in range(state_count(model)))


@functools.lru_cache(maxsize=32)
def flax_steps(spec: RunSpec, vocab_size: int, dtype: Any) -> FlaxSteps:
    """The jitted functions for a spec, shared by every model built alike (they hold no state)."""
    return FlaxSteps(spec, vocab_size, dtype)


class FlaxSteps:
    """The jitted functions of one (spec, vocabulary, dtype): train and evaluation steps
    (one batch each), gradients, one-token prediction, the recurrent layers alone."""

    def __init__(self, spec: RunSpec, vocab_size: int, dtype: Any):
        self.spec, self.model, self.dtype = spec, spec.model, dtype
        self.net = FlaxLM(spec.model, vocab_size, dtype)
        self.tx = library_optimizer(spec.train)
        self.carries = spec.train.carries_state
        self.train_step = jax.jit(self._train_step)
        self.eval_step = jax.jit(self._eval_step)
        self.loss_and_grads = jax.jit(jax.value_and_grad(lambda p, X, Y: self._loss(p, X, Y, None, None, False)[0]))
        self.predict_step = jax.jit(self._predict_step)
        self.recurrent_grads = jax.jit(self._recurrent_grads)
        self.init = jax.jit(self._init)
        self.zero_state = jax.jit(lambda batch: zero_state(self.model, batch, dtype), static_argnums=0)

    def _init(self, key):
        X = jnp.zeros((1, 1), jnp.int32)
        variables = self.net.init(key, X, to_carries(self.model, zero_state(self.model, 1, self.dtype)))
        return from_flax(self.model, variables["params"])

    def _loss(self, params, X, Y, state, key, train: bool):
        """Mean cross-entropy and the final canonical state; `state=None` means zeros."""
        state = zero_state(self.model, X.shape[0], self.dtype) if state is None else state
        rngs = {"dropout": key} if (train and self.model.dropout > 0) else None
        logits, finals = self.net.apply({"params": to_flax(self.model, params)}, X, to_carries(self.model, state),
                                        train, rngs=rngs)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, Y).mean()
        return loss, from_carries(self.model, finals)

    def _train_step(self, params, opt_state, loss_sum, key, state, X, Y):
        key, sub = jax.random.split(key)
        grad_fn = jax.value_and_grad(self._loss, has_aux=True)
        (loss, final), grads = grad_fn(params, X, Y, state, sub, True)
        updates, opt_state = self.tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, loss_sum + loss * X.size, key, (final if self.carries else None)

    def _eval_step(self, params, loss_sum, state, X, Y):
        loss, final = self._loss(params, X, Y, state, None, False)
        return loss_sum + loss * X.size, (final if self.carries else None)

    def _predict_step(self, params, state, token):
        """Feed one token (1, 1); return the argmax next token (1, 1) and the new state."""
        logits, finals = self.net.apply({"params": to_flax(self.model, params)}, token, to_carries(self.model, state))
        return jnp.argmax(logits[:, -1], axis=-1).astype(token.dtype)[:, None], from_carries(self.model, finals)

    def _recurrent_grads(self, params, X):
        """The recurrent layers' summed outputs from a zero state and its gradient to their
        (canonical) weights; the inputs are constants."""
        m = self.model
        xs = (jnp.take(params["embed"]["w"], X, axis=0) if m.input == "embedding"
              else jax.nn.one_hot(X, self.net.vocab_size, dtype=self.dtype))
        stack, carries = FlaxStack(m, self.dtype), to_carries(m, zero_state(m, X.shape[0], self.dtype))
        total = lambda rnn: stack.apply({"params": stack_to_flax(m, rnn)}, xs, carries, False)[0].sum()  # noqa: E731
        return jax.value_and_grad(total)(params["rnn"])


class FlaxModel(JaxBase):
    """The `flax` mode's model: `FlaxSteps` called once per batch from Python."""

    def __init__(self, spec: RunSpec, vocab_size: int, device: jax.Device, params: Params | None, mode: str,
                 settings):
        self.spec, self.mode, self.vocab_size, self.device = spec, mode, vocab_size, device
        self.settings = settings  # backend.MODES[mode]
        self._x64 = spec.train.dtype == "float64"
        with self._context():
            self._dtype = jnp.float64 if self._x64 else jnp.float32
            self.fns = flax_steps(spec, vocab_size, self._dtype)
            self._tx = self.fns.tx
            self._start(params)

    def _framework_init(self) -> dict:
        """Flax's own initialisation of its cells, mapped to the canonical layout."""
        return jax.device_get(self.fns.init(jax.random.key(self.spec.train.seed)))

    @_in_context
    def _train_epoch(self, batches: Iterable[Batch]) -> EpochStats:
        loss_sum, tokens, step = self._commit(jnp.zeros((), self._dtype)), 0, self.fns.train_step
        state = self._epoch_start_state()
        for X, Y in batches:
            state = self._state_for(state, X.shape[0])
            self._params, self._opt_state, loss_sum, self._key, state = step(
                self._params, self._opt_state, loss_sum, self._key, state, *self._put(X, Y))
            tokens += X.size
        self._epoch_end_state(state)
        return EpochStats(float(loss_sum), tokens)  # float() is the epoch's one sync

    @_in_context
    def _evaluate(self, batches: Iterable[Batch]) -> EpochStats:
        loss_sum, state, tokens = self._commit(jnp.zeros((), self._dtype)), None, 0
        for X, Y in batches:
            state = self._state_for(state, X.shape[0])
            loss_sum, state = self.fns.eval_step(self._params, loss_sum, state, *self._put(X, Y))
            tokens += X.size
        return EpochStats(float(loss_sum), tokens)
