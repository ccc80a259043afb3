"""The language model as Flax linen modules, in the canonical cuDNN layout.

Parameters are declared with the canonical names and shapes of `common.params`
(`w_ih (G*h, in)`, `w_hh (G*h, h)`, `b_ih`, `b_hh`; gates i,f,g,o / r,z,n), nested as
`rnn -> l{k} -> fwd|bwd`, `dense`, `embed`, so the linen parameter tree flattened with
"." *is* the canonical dict. Flax's own `LSTMCell`/`GRUCell` keep one bias per gate
where cuDNN has two (`b_ih` and `b_hh`): the same function, but SGD moves the merged
bias half as fast (each of cuDNN's two biases gets the full gradient), so they cannot
load cuDNN parameters or train like PyTorch/MXNet. These cells can.

The recurrence itself (input projection of all steps in one matmul, then `lax.scan`,
and its hand-written backward) is `recurrence.run_direction`. Everything is time-major.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from backends.jax_flax.recurrence import run_direction
from common.params import DIRECTIONS
from common.specs import ModelSpec

State = tuple[jax.Array, ...]  # (h,) or (h, c), each (layers*directions, B, h)


# ---- Flax's own initialisation (used when no canonical parameters are given) --------

def _lecun_rows(key, shape, dtype):
    """lecun_normal for a (out, in) matrix: fan-in is the last axis (Flax's Dense default)."""
    return nn.initializers.lecun_normal(in_axis=-1, out_axis=-2)(key, shape, dtype)


def _orthogonal_blocks(gates: int) -> Callable:
    """One orthogonal (h, h) block per gate, as Flax's recurrent cells initialise them."""
    def init(key, shape, dtype):
        h = shape[1]
        keys = jax.random.split(key, gates)
        return jnp.concatenate([nn.initializers.orthogonal()(k, (h, h), dtype) for k in keys], axis=0)
    return init


# ---- modules -------------------------------------------------------------------------

class Direction(nn.Module):
    """One direction of one layer: `(T, B, in)` inputs -> `(T, B, h)` outputs, final (h, c)."""

    cell: str
    hidden: int
    gates: int
    reverse: bool
    unroll: int
    dtype: Any

    @nn.compact
    def __call__(self, xs, h0, c0):
        gh, n_in = self.gates * self.hidden, xs.shape[-1]
        w_ih = self.param("w_ih", _lecun_rows, (gh, n_in), self.dtype)
        w_hh = self.param("w_hh", _orthogonal_blocks(self.gates), (gh, self.hidden), self.dtype)
        b_ih = self.param("b_ih", nn.initializers.zeros, (gh,), self.dtype)
        b_hh = self.param("b_hh", nn.initializers.zeros, (gh,), self.dtype)
        return run_direction(self.cell, self.reverse, self.unroll, xs, w_ih, b_ih, w_hh, b_hh, h0, c0)


class Layer(nn.Module):
    """One layer, one or two directions; outputs concatenated on the feature axis."""

    model: ModelSpec
    unroll: int
    dtype: Any

    @nn.compact
    def __call__(self, xs, h0s, c0s):
        m, outs, hs, cs = self.model, [], [], []
        for d in range(m.num_directions):
            ys, h, c = Direction(m.cell, m.num_hiddens, m.gates, d == 1, self.unroll, self.dtype,
                                 name=DIRECTIONS[d])(xs, h0s[d], None if c0s is None else c0s[d])
            outs.append(ys)
            hs.append(h)
            cs.append(c)
        return jnp.concatenate(outs, axis=-1) if len(outs) > 1 else outs[0], hs, cs


class Stack(nn.Module):
    """The stacked recurrent layers, with dropout between layers (not after the last)."""

    model: ModelSpec
    unroll: int
    dtype: Any

    @nn.compact
    def __call__(self, xs, state: State, train: bool):
        m, lstm = self.model, self.model.cell == "lstm"
        D, finals_h, finals_c = m.num_directions, [], []
        for layer in range(m.num_layers):
            rows = slice(layer * D, (layer + 1) * D)
            c0s = state[1][rows] if lstm else None
            xs, hs, cs = Layer(m, self.unroll, self.dtype, name=f"l{layer}")(xs, state[0][rows], c0s)
            finals_h += hs
            finals_c += cs
            if m.dropout > 0 and layer < m.num_layers - 1:
                xs = nn.Dropout(m.dropout, deterministic=not train)(xs)
        final = (jnp.stack(finals_h),) + ((jnp.stack(finals_c),) if lstm else ())
        return xs, final


class Embedding(nn.Module):
    """Token ids -> vectors, parameter `w (V, e)` (Flax's `nn.Embed` initialisation)."""

    vocab_size: int
    features: int
    dtype: Any

    @nn.compact
    def __call__(self, ids):
        w = self.param("w", nn.linear.default_embed_init, (self.vocab_size, self.features), self.dtype)
        return jnp.take(w, ids, axis=0)


class Dense(nn.Module):
    """The output layer, `w (V, h*dirs)` and `b (V)` as in PyTorch's `nn.Linear`."""

    features: int
    dtype: Any

    @nn.compact
    def __call__(self, xs):
        w = self.param("w", _lecun_rows, (self.features, xs.shape[-1]), self.dtype)
        b = self.param("b", nn.initializers.zeros, (self.features,), self.dtype)
        return xs @ w.T + b


class RNNLM(nn.Module):
    """Token ids (B, T) and a state -> logits (T, B, V), time-major, and the final state."""

    model: ModelSpec
    vocab_size: int
    unroll: int = 1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, X, state: State, train: bool = False):
        ids = X.T
        if self.model.input == "embedding":
            xs = Embedding(self.vocab_size, self.model.embed_size, self.dtype, name="embed")(ids)
        else:
            xs = jax.nn.one_hot(ids, self.vocab_size, dtype=self.dtype)
        tops, final = Stack(self.model, self.unroll, self.dtype, name="rnn")(xs, state, train)
        return Dense(self.vocab_size, self.dtype, name="dense")(tops), final


def zero_state(model: ModelSpec, batch: int, dtype) -> State:
    """Zeros shaped like `common.reference.zero_state`."""
    shape = (model.num_layers * model.num_directions, batch, model.num_hiddens)
    return tuple(jnp.zeros(shape, dtype) for _ in range(2 if model.cell == "lstm" else 1))
