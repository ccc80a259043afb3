"""The language model as Flax linen modules, in the canonical cuDNN layout.

Parameters are declared with the canonical names and shapes of `common.params`
(`w_ih (G*h, in)`, `w_hh (G*h, h)`, `b_ih`, `b_hh`; gates i,f,g,o / r,z,n), nested as
`rnn -> l{k} -> fwd|bwd`, `dense`, `embed`, so the linen parameter tree flattened with
"." *is* the canonical dict. Flax's own `LSTMCell`/`GRUCell` keep one bias per gate
where cuDNN has two (`b_ih` and `b_hh`): the same function, but trained as their own
parameters SGD would move the merged bias half as fast (each of cuDNN's two biases gets
the full gradient). The out-of-box `flax` mode (`library.py`) therefore trains the
canonical parameters and maps them into Flax's layout inside each step; these cells
hold the canonical layout themselves, for the tuned modes.

The recurrence itself (input projection of all steps in one matmul, then `lax.scan`,
and its hand-written backward) is `recurrence.run_direction`, one layer and direction
at a time; or, in the "wavefront" mode, `wavefront.run_stack` for the whole stack
(unidirectional, >= 2 layers, no dropout; other stacks run per layer in that mode too).
Everything is time-major.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from backends.jax_flax.recurrence import run_direction
from backends.jax_flax.wavefront import run_stack
from common.params import DIRECTIONS
from common.specs import ModelSpec
from common.state import state_count, state_shape

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

class Weights(nn.Module):
    """The canonical parameters of one direction of one layer, `(w_ih, b_ih, w_hh, b_hh)`."""

    hidden: int
    gates: int
    dtype: Any

    @nn.compact
    def __call__(self, n_in: int):
        gh = self.gates * self.hidden
        w_ih = self.param("w_ih", _lecun_rows, (gh, n_in), self.dtype)
        w_hh = self.param("w_hh", _orthogonal_blocks(self.gates), (gh, self.hidden), self.dtype)
        b_ih = self.param("b_ih", nn.initializers.zeros, (gh,), self.dtype)
        b_hh = self.param("b_hh", nn.initializers.zeros, (gh,), self.dtype)
        return w_ih, b_ih, w_hh, b_hh


class LayerWeights(nn.Module):
    """One layer's parameters, one `Weights` per direction (named `fwd`, `bwd`)."""

    model: ModelSpec
    dtype: Any

    @nn.compact
    def __call__(self, n_in: int):
        m = self.model
        return [Weights(m.num_hiddens, m.gates, self.dtype, name=DIRECTIONS[d])(n_in)
                for d in range(m.num_directions)]


def wavefront_supported(model: ModelSpec) -> bool:
    """Whether `wavefront.run_stack` can run the stack: unidirectional, >= 2 layers, no dropout."""
    return model.num_directions == 1 and model.num_layers >= 2 and model.dropout == 0


class Stack(nn.Module):
    """The stacked recurrent layers, with dropout between layers (not after the last).

    `recurrence` "scan" runs each layer (and direction) as its own `lax.scan`
    (`recurrence.run_direction`); "wavefront" runs the whole stack as one
    (`wavefront.run_stack`) when `wavefront_supported`, else silently the per-layer path.
    """

    model: ModelSpec
    unroll: int
    dtype: Any
    recurrence: str = "scan"

    @nn.compact
    def __call__(self, xs, state: State, train: bool):
        m = self.model
        if self.recurrence == "wavefront" and wavefront_supported(m):
            return self._wavefront(xs, state)
        lstm, D, finals_h, finals_c = m.cell == "lstm", m.num_directions, [], []
        for layer in range(m.num_layers):
            weights = LayerWeights(m, self.dtype, name=f"l{layer}")(xs.shape[-1])
            outs = []
            for d in range(D):
                c0 = state[1][layer * D + d] if lstm else None
                ys, h, c = run_direction(m.cell, d == 1, self.unroll, xs, *weights[d], state[0][layer * D + d], c0)
                outs.append(ys)
                finals_h.append(h)
                finals_c.append(c)
            xs = jnp.concatenate(outs, axis=-1) if D > 1 else outs[0]
            if m.dropout > 0 and layer < m.num_layers - 1:
                xs = nn.Dropout(m.dropout, deterministic=not train)(xs)
        final = (jnp.stack(finals_h),) + ((jnp.stack(finals_c),) if lstm else ())
        return xs, final

    def _wavefront(self, xs, state: State):
        """The whole stack as one `wavefront.run_stack`, under the same parameter names."""
        m = self.model
        n_in = [xs.shape[-1]] + [m.num_hiddens] * (m.num_layers - 1)
        weights = tuple(tuple(LayerWeights(m, self.dtype, name=f"l{k}")(n)[0]) for k, n in enumerate(n_in))
        c0s = tuple(state[1]) if m.cell == "lstm" else None
        ys, hs, cs = run_stack(m.cell, self.unroll, xs, weights, tuple(state[0]), c0s)
        return ys, (jnp.stack(hs),) + (() if cs is None else (jnp.stack(cs),))


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
    recurrence: str = "scan"

    @nn.compact
    def __call__(self, X, state: State, train: bool = False):
        ids = X.T
        if self.model.input == "embedding":
            xs = Embedding(self.vocab_size, self.model.embed_size, self.dtype, name="embed")(ids)
        else:
            xs = jax.nn.one_hot(ids, self.vocab_size, dtype=self.dtype)
        tops, final = Stack(self.model, self.unroll, self.dtype, self.recurrence, name="rnn")(xs, state, train)
        return Dense(self.vocab_size, self.dtype, name="dense")(tops), final


def zero_state(model: ModelSpec, batch: int, dtype) -> State:
    """Zeros shaped like `common.reference.zero_state`."""
    return tuple(jnp.zeros(state_shape(model, batch), dtype) for _ in range(state_count(model)))
