"""Pure functions of one model, compiled with `jax.jit`: training over a chunk of
batches, evaluation step, gradients, one-token prediction.

Training and evaluation take a chunk of equally-shaped batches stacked (K, B, T) and
loop over them inside one compiled call. The training carry is
`(params, opt_state, loss_sum, key, state)`; it is donated, so parameters and
optimizer moments are updated in place. `state` is the recurrent state
carried to the next batch (`sequential` sampling) or `None` (each batch starts from
zeros made inside the step, so the carry's shapes never depend on a batch's size).
The loss is summed on the device; nothing here syncs with the host.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax

from backends.jax_flax.cells import RNNLM, Stack, zero_state
from common.specs import RunSpec, TrainSpec


def clip_by_global_norm(clip: float) -> optax.GradientTransformation:
    """Scale all gradients by min(1, clip / global norm); clip <= 0 disables clipping.

    This is d2l's `grad_clipping` and the numpy reference exactly. `optax.clip_by_global_norm`
    computes `(g / norm) * clip` (the same scale, rounded twice) and, with clip = 0,
    zeroes every update where the spec means "no clipping", so it is not used.
    """
    def update(updates, state, params=None):
        del params
        if clip <= 0:
            return updates, state
        scale = jnp.minimum(1.0, clip / optax.tree.norm(updates))
        return jax.tree.map(lambda g: g * scale.astype(g.dtype), updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_optimizer(train: TrainSpec) -> optax.GradientTransformation:
    """Clip, then SGD or Adam (PyTorch's defaults: betas 0.9/0.999, eps 1e-8 outside the sqrt).
    The learning rate is a hyperparameter in the optimizer state (`inject_hyperparams`),
    so the schedule changes it without recompiling (`set_learning_rate`)."""
    if train.optimizer == "sgd":
        opt = optax.inject_hyperparams(optax.sgd)(learning_rate=train.lr)
    else:
        opt = optax.inject_hyperparams(optax.adam)(learning_rate=train.lr, b1=0.9, b2=0.999, eps=1e-8)
    return optax.chain(clip_by_global_norm(train.clip), opt)


def set_learning_rate(opt_state, lr: float):
    """`opt_state` of `make_optimizer` with its learning rate replaced (same dtype)."""
    clip_state, inner = opt_state
    rate = inner.hyperparams["learning_rate"]
    return clip_state, inner._replace(hyperparams={**inner.hyperparams, "learning_rate": jnp.asarray(lr, rate.dtype)})


def mean_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy over all tokens; logits (T, B, V), labels (T, B)."""
    picked = jnp.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
    return jnp.mean(jax.nn.logsumexp(logits, axis=-1) - picked)


@functools.lru_cache(maxsize=32)
def compiled(net: RNNLM, spec: RunSpec, dtype: Any) -> Compiled:
    """The jitted functions for a (network, spec, dtype), shared by every model built
    alike in this process (they hold no state), so those compile once."""
    return Compiled(net, make_optimizer(spec.train), spec, dtype)


class Compiled:
    """The jitted functions of one (network, optimizer, spec)."""

    def __init__(self, net: RNNLM, tx: optax.GradientTransformation, spec: RunSpec, dtype: Any):
        self.net, self.tx, self.spec, self.dtype = net, tx, spec, dtype
        self.carries = spec.train.carries_state
        self.dropout = spec.model.dropout > 0
        self.train_chunk = jax.jit(self._train_chunk, donate_argnums=0)
        self.eval_chunk = jax.jit(self._eval_chunk, donate_argnums=0)
        self.loss_and_grads = jax.jit(jax.value_and_grad(self._loss_from_zero))
        self.predict_step = jax.jit(self._predict_step)
        self.recurrent_grads = jax.jit(self._recurrent_grads)
        self.zero_state = jax.jit(self._zero_state, static_argnums=0)

    # -- pieces ----------------------------------------------------------------------
    def _zero_state(self, batch: int):
        return zero_state(self.spec.model, batch, self.dtype)

    def _loss(self, params, X, Y, state, key, train: bool):
        """Mean loss and final state; `state=None` means zeros."""
        state = self._zero_state(X.shape[0]) if state is None else state
        rngs = {"dropout": key} if (train and self.dropout) else None
        logits, final = self.net.apply({"params": params}, X, state, train, rngs=rngs)
        return mean_cross_entropy(logits, Y.T), final

    def _loss_from_zero(self, params, X, Y):
        return self._loss(params, X, Y, None, None, False)[0]

    def _train_body(self, carry, X, Y):
        """One clipped update."""
        params, opt_state, loss_sum, key, state = carry
        sub = None
        if self.dropout:
            key, sub = jax.random.split(key)
        grad_fn = jax.value_and_grad(self._loss, has_aux=True)
        (loss, final), grads = grad_fn(params, X, Y, state if self.carries else None, sub, True)
        updates, opt_state = self.tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        state = final if self.carries else None
        return params, opt_state, loss_sum + loss * X.size, key, state

    # -- jitted entry points ---------------------------------------------------------
    def _train_chunk(self, carry, Xs, Ys, count):
        """Updates from the first `count` batches of Xs, Ys (K, B, T), in one compiled loop.

        `count` is traced, so any count <= K reuses the one compilation. One call per
        chunk, not per batch, because every call allocates the step's temporaries
        afresh (for large ones, new pages: d2l-deep-gru spent a third of its time in
        page faults with one call per batch); inside the loop they are reused.
        """
        return jax.lax.fori_loop(0, count, lambda i, c: self._train_body(c, Xs[i], Ys[i]), carry)

    def _eval_body(self, params, carry, X, Y):
        loss_sum, state = carry
        loss, final = self._loss(params, X, Y, state if self.carries else None, None, False)
        return loss_sum + loss * X.size, (final if self.carries else None)

    def _eval_chunk(self, carry, params, Xs, Ys, count):
        """Loss of the first `count` batches of Xs, Ys, as `_train_chunk` but no updates."""
        return jax.lax.fori_loop(0, count, lambda i, c: self._eval_body(params, c, Xs[i], Ys[i]), carry)

    def _recurrent_grads(self, params, X):
        """The recurrent layers' summed outputs from a zero state and its gradient to their
        weights (`LanguageModel.recurrent_pass`); the inputs are constants here."""
        ids, net = X.T, self.net
        if net.model.input == "embedding":
            xs = jnp.take(params["embed"]["w"], ids, axis=0)
        else:
            xs = jax.nn.one_hot(ids, net.vocab_size, dtype=self.dtype)
        stack = Stack(net.model, net.unroll, self.dtype, net.recurrence)
        state = self._zero_state(X.shape[0])
        return jax.value_and_grad(lambda p: stack.apply({"params": p}, xs, state, False)[0].sum())(params["rnn"])

    def _predict_step(self, params, state, token):
        """Feed one token (1, 1); return the argmax next token (1, 1) and the new state."""
        logits, state = self.net.apply({"params": params}, token, state, False)
        return jnp.argmax(logits[-1], axis=-1).astype(token.dtype)[:, None], state
