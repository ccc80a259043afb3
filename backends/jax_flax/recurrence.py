"""One direction of one recurrent layer, with backpropagation through time written out.

`run_direction` is a `jax.custom_vjp`. Forward: the input projection of all time steps
as one matmul, then `lax.scan` doing `h @ w_hh^T` and the cell's pointwise maths, saving
each step's activations. Backward: a reverse `lax.scan` with the cell's derivative
formulas (those of `common/reference.py`, no transcendental functions), then the weight
gradients as single matmuls over all T*B rows.

Why not plain autodiff: on XLA:CPU, `jax.grad` of the scan (a) accumulates
`dW_hh += dgates_t^T h_t` inside the loop, a small matmul contracting over the batch
axis of both operands, which XLA:CPU runs 2-4x slower than an ordinary one, plus a
(G*h, h) read-modify-write per step; and (b) recomputes or stores many intermediate
transcendentals (the written-out pass is ~20% faster: docs/performance.md). The parity tests hold it to the numpy
reference (float64 to 1e-9).

Gates use sigmoid(x) = (tanh(x/2) + 1) / 2, the reference's formula; for the LSTM all
four gates go through one tanh over the (B, 4h) block.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def _tdot(a: jax.Array, b: jax.Array) -> jax.Array:
    """a^T @ b for a (N, p), b (N, q). The transpose is materialised behind an
    optimization barrier so XLA:CPU runs an ordinary (fast) matmul instead of folding
    the transpose into a slow contraction over the leading axis of both operands."""
    return jax.lax.optimization_barrier(a.T) @ b


def _flat(a: jax.Array) -> jax.Array:
    return a.reshape(-1, a.shape[-1])


# ---- per-cell forward and backward steps ----------------------------------------------

def _lstm_gates(z: jax.Array) -> jax.Array:
    """sigmoid(i), sigmoid(f), tanh(g), sigmoid(o) of the (B, 4h) pre-activations, one tanh."""
    is_sigmoid = jnp.arange(z.shape[-1]) // (z.shape[-1] // 4) != 2  # blocks i, f, o but not g
    scale = jnp.where(is_sigmoid, 0.5, 1.0).astype(z.dtype)
    shift = jnp.where(is_sigmoid, 0.5, 0.0).astype(z.dtype)
    return jnp.tanh(z * scale) * scale + shift


def _forward_step(cell: str, ax, ah, h, c):
    """One step from the projections ax = x W_ih^T + b_ih and ah = h W_hh^T + b_hh.
    Returns (h_new, c_new, saved): `saved` is what `_backward_step` needs."""
    if cell == "rnn":
        h_new = jnp.tanh(ax + ah)
        return h_new, c, (h_new,)
    if cell == "lstm":
        gates = _lstm_gates(ax + ah)
        i, f, g, o = jnp.split(gates, 4, axis=-1)
        c_new = f * c + i * g
        tc = jnp.tanh(c_new)
        return o * tc, c_new, (gates, tc, c)
    xr, xz, xn = jnp.split(ax, 3, axis=-1)
    hr, hz, hn = jnp.split(ah, 3, axis=-1)
    r = 0.5 * jnp.tanh(0.5 * (xr + hr)) + 0.5
    z = 0.5 * jnp.tanh(0.5 * (xz + hz)) + 0.5
    n = jnp.tanh(xn + r * hn)  # cuDNN's GRU: the reset gate scales (W_hn h + b_hn)
    return (1.0 - z) * n + z * h, c, (r, z, n, hn)


def _backward_step(cell: str, saved, h_prev, dh, dc):
    """Gradients of one step: (d ax, d ah, the part of dh_prev not through W_hh, dc_prev)."""
    if cell == "rnn":
        (h_new,) = saved
        da = dh * (1.0 - h_new * h_new)
        return da, da, 0.0, dc
    if cell == "lstm":
        gates, tc, c_prev = saved
        i, f, g, o = jnp.split(gates, 4, axis=-1)
        dc = dc + dh * o * (1.0 - tc * tc)
        da = jnp.concatenate([dc * g * i * (1.0 - i), dc * c_prev * f * (1.0 - f),
                              dc * i * (1.0 - g * g), dh * tc * o * (1.0 - o)], axis=-1)
        return da, da, 0.0, dc * f
    r, z, n, hn = saved
    dn = dh * (1.0 - z) * (1.0 - n * n)
    dr = dn * hn * r * (1.0 - r)
    dz = dh * (h_prev - n) * z * (1.0 - z)
    return (jnp.concatenate([dr, dz, dn], axis=-1), jnp.concatenate([dr, dz, dn * r], axis=-1),
            dh * z, dc)


# ---- the direction --------------------------------------------------------------------

def _scan_forward(cell, reverse, unroll, w_hh, b_hh, ax, h0, c0):
    """Final (h, c) and per step (output, saved activations, h_prev), in time order."""
    w_hh_t = w_hh.T

    def step(carry, ax_t):
        h, c = carry
        h_new, c_new, saved = _forward_step(cell, ax_t, h @ w_hh_t + b_hh, h, c)
        return (h_new, c_new), (h_new, saved, h)

    return jax.lax.scan(step, (h0, c0), ax, reverse=reverse, unroll=unroll)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def run_direction(cell: str, reverse: bool, unroll: int, xs, w_ih, b_ih, w_hh, b_hh, h0, c0):
    """Inputs xs (T, B, in) -> outputs (T, B, h) in time order, final h, final c (LSTM)
    or None. `reverse` runs from the last time step to the first (the backward
    direction of a bidirectional layer)."""
    return _forward(cell, reverse, unroll, xs, w_ih, b_ih, w_hh, b_hh, h0, c0)[0]


def _forward(cell, reverse, unroll, xs, w_ih, b_ih, w_hh, b_hh, h0, c0):
    ax = xs @ w_ih.T + b_ih  # every time step's input projection in one matmul
    (h, c), (ys, saved, h_prevs) = _scan_forward(cell, reverse, unroll, w_hh, b_hh, ax, h0, c0)
    return (ys, h, c), (xs, w_ih, w_hh, saved, h_prevs)


def _backward(cell, reverse, unroll, residuals, cotangents):
    xs, w_ih, w_hh, saved, h_prevs = residuals
    dys, dh_T, dc_T = cotangents

    def step(carry, inputs):
        dh, dc = carry
        dy, saved_t, h_prev = inputs
        dax, dah, dh_direct, dc = _backward_step(cell, saved_t, h_prev, dh + dy, dc)
        return (dh_direct + dah @ w_hh, dc), (dax, dah)

    (dh0, dc0), (dax, dah) = jax.lax.scan(step, (dh_T, dc_T), (dys, saved, h_prevs), reverse=not reverse,
                                          unroll=unroll)
    d_w_ih, d_w_hh = _tdot(_flat(dax), _flat(xs)), _tdot(_flat(dah), _flat(h_prevs))
    return dax @ w_ih, d_w_ih, dax.sum(axis=(0, 1)), d_w_hh, dah.sum(axis=(0, 1)), dh0, dc0


run_direction.defvjp(_forward, _backward)
