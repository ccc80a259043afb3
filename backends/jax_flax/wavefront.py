"""A whole stack of unidirectional layers as one wavefront recurrence (the "wavefront" mode).

`run_stack` is a `jax.custom_vjp` over all L layers. Scan step s computes layer l at
time t = s - l for every layer, so the carry h_k (layer k's latest output, h_k(s-k-1))
feeds both its own recurrence and the next layer's input projection in ONE matmul:
h_k @ [W_hh_k^T | W_ih_{k+1}^T], (B, h) @ (h, 2*G*h). Layer 0's input projection stays
one matmul over all time steps. The backward pass is the same wavefront in reverse
(dh_prev of carry k = da_h_k @ W_hh_k + da_x_{k+1} @ W_ih_{k+1}); the weight and bias
gradients are big matmuls after the scans (`recurrence._tdot`). The cell maths are
`recurrence._forward_step` / `_backward_step`, so the numbers are those of the
per-layer path (tests/test_backend_jax.py holds both to the numpy reference).

Ramp-up and ramp-down (the first and last L-1 steps, where only some layers are
active) are separate short scans, each with its own static set of active layers, so
no matmul or cell step is wasted; the steady part (all layers active) is one scan.

Why: one loop of T+L-1 steps instead of L loops of T steps; wider matmuls per step;
and no (T, B, G*h) input projection of the upper layers written and read back. The
choices below (one matmul per carry, two in the backward, transposed weights made once
outside the scans, weight gradients per scan segment, no unrolling) were each measured
against the alternatives: docs/performance.md.

Not handled here (`cells.Stack` runs these per layer even in the "wavefront" mode):
bidirectional stacks, dropout between layers, and single layers.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from backends.jax_flax.recurrence import _backward_step, _flat, _forward_step, _tdot


def segments(T: int, L: int) -> list[tuple[int, int, int, int]]:
    """Steps 0..T+L-2 grouped into runs with the same active layers: (start, stop, lo, hi)
    where layers lo..hi are active (layer l at step s computes time s - l)."""
    runs: list[list[int]] = []
    for s in range(T + L - 1):
        lo, hi = max(0, s - T + 1), min(L - 1, s)
        if runs and runs[-1][2:] == [lo, hi]:
            runs[-1][1] = s + 1
        else:
            runs.append([s, s + 1, lo, hi])
    return [tuple(r) for r in runs]


def _roles(k: int, lo: int, hi: int) -> tuple[bool, bool]:
    """Whether carry k feeds its own layer (active) and the layer above (active) this step."""
    return lo <= k <= hi, lo <= k + 1 <= hi


# ---- forward ------------------------------------------------------------------------

def _fused(weights):
    """Per carry k, made once outside the loops (a transpose left inside the scan body
    costs XLA:CPU a slower matmul every step): (W_hh_k^T, W_ih_{k+1}^T, the fused
    [W_hh_k^T | W_ih_{k+1}^T], [b_hh_k | b_ih_{k+1}]); the top layer's are its own."""
    L, out = len(weights), []
    for k, (_, _, w_hh, b_hh) in enumerate(weights):
        if k + 1 < L:
            w_ih, b_ih = weights[k + 1][0], weights[k + 1][1]
            out.append((w_hh.T, w_ih.T, jnp.concatenate([w_hh.T, w_ih.T], axis=1), jnp.concatenate([b_hh, b_ih])))
        else:
            out.append((w_hh.T, None, w_hh.T, b_hh))
    return out


def _projections(lo, hi, weights, fused, hs, ax0):
    """(ax, ah) per active layer for one step; one matmul per carry that feeds both."""
    gh = weights[0][2].shape[0]
    ax, ah = {0: ax0}, {}
    for k in range(max(lo - 1, 0), hi + 1):
        own, feeds = _roles(k, lo, hi)
        hh_t, ih_t, both_t, both_b = fused[k]
        if own and feeds:
            p = hs[k] @ both_t + both_b
            ah[k], ax[k + 1] = p[:, :gh], p[:, gh:]
            continue
        if own:
            ah[k] = hs[k] @ hh_t + weights[k][3]
        if feeds:
            ax[k + 1] = hs[k] @ ih_t + weights[k + 1][1]
    return ax, ah


def _forward_segment(cell, unroll, seg, weights, fused, carry, ax0):
    """One run of steps with static active layers lo..hi: new carry and per step
    (carries before the step, saved activations of lo..hi, top output or None)."""
    start, stop, lo, hi = seg
    L = len(weights)

    def step(carry, ax0_t):
        hs, cs = carry
        ax, ah = _projections(lo, hi, weights, fused, hs, ax0_t)
        new_h, new_c, saved = list(hs), None if cs is None else list(cs), []
        for j in range(lo, hi + 1):
            h, c, s = _forward_step(cell, ax[j], ah[j], hs[j], None if cs is None else cs[j])
            new_h[j] = h
            if cs is not None:
                new_c[j] = c
            saved.append(s)
        top = new_h[L - 1] if hi == L - 1 else None
        return (tuple(new_h), None if cs is None else tuple(new_c)), (hs, tuple(saved), top)

    return jax.lax.scan(step, carry, ax0, length=stop - start, unroll=min(unroll, stop - start))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def run_stack(cell: str, unroll: int, xs, weights, h0s, c0s):
    """Inputs xs (T, B, in) through L layers -> top outputs (T, B, h), final hs (tuple of
    L (B, h)), final cs (tuple, LSTM) or None. `weights` is per layer (w_ih, b_ih, w_hh,
    b_hh) in the canonical layout; h0s, c0s per layer (c0s None unless LSTM)."""
    return _forward(cell, unroll, xs, weights, h0s, c0s)[0]


def _forward(cell, unroll, xs, weights, h0s, c0s):
    """`run_stack`'s outputs and residuals: per segment the carries before each step
    and the active layers' saved activations."""
    T, L = xs.shape[0], len(weights)
    fused = _fused(weights)
    w_ih0, b_ih0 = weights[0][0], weights[0][1]
    carry, per_segment, tops = (tuple(h0s), None if c0s is None else tuple(c0s)), [], []
    for seg in segments(T, L):
        start, stop, lo, hi = seg
        ax0 = xs[start:stop] @ w_ih0.T + b_ih0 if lo == 0 else None
        carry, (hs_pre, saved, top) = _forward_segment(cell, unroll, seg, weights, fused, carry, ax0)
        per_segment.append((hs_pre, saved))
        if top is not None:
            tops.append(top)
    ys = jnp.concatenate(tops) if len(tops) > 1 else tops[0]
    return (ys, carry[0], carry[1]), (xs, weights, per_segment)


# ---- backward -----------------------------------------------------------------------

def _carry_gradients(lo, hi, weights, g, direct, da_x, da_h):
    """Gradient w.r.t. each carry before the step: dh_direct + da_h_k @ W_hh_k (own layer
    active) + da_x_{k+1} @ W_ih_{k+1} (layer above active). Two matmuls, not one over
    [da_h_k | da_x_{k+1}] @ [W_hh_k ; W_ih_{k+1}]: the same speed here (see the module
    docstring), without a per-step concatenation and a per-call weight concatenation."""
    new_g = []
    for k in range(len(weights)):
        own, feeds = _roles(k, lo, hi)
        new = direct[k] + da_h[k] @ weights[k][2] if own else g[k]
        new_g.append(new + da_x[k + 1] @ weights[k + 1][0] if feeds else new)
    return tuple(new_g)


def _backward_segment(cell, unroll, seg, weights, carry, residuals, dys):
    """Reverse scan over one run of steps: carry (dh, dc per layer) and per step and
    layer (d ax, d ah) for the weight gradients; d ah None unless GRU, both None for an
    inactive layer."""
    start, stop, lo, hi = seg
    L = len(weights)

    def step(carry, inputs):
        g, gc = list(carry[0]), None if carry[1] is None else list(carry[1])
        hs_pre, saved, dy = inputs
        if hi == L - 1:
            g[L - 1] = g[L - 1] + dy
        da_x, da_h, direct = {}, {}, {}
        for j in range(lo, hi + 1):
            da_x[j], da_h[j], direct[j], dc = _backward_step(
                cell, saved[j - lo], hs_pre[j], g[j], None if gc is None else gc[j])
            if gc is not None:
                gc[j] = dc
        new_g = _carry_gradients(lo, hi, weights, g, direct, da_x, da_h)
        rows = tuple((da_x.get(j), da_h.get(j) if cell == "gru" else None) for j in range(L))
        return (new_g, None if gc is None else tuple(gc)), rows

    n = stop - start
    return jax.lax.scan(step, carry, (*residuals, dys), length=n, reverse=True, unroll=min(unroll, n))


def _backward(cell, unroll, residuals, cotangents):
    """The segments' reverse scans, last segment first, then the weight gradients."""
    xs, weights, per_segment = residuals
    dys, dh_T, dc_T = cotangents
    T, L = xs.shape[0], len(weights)
    carry, outputs = (tuple(dh_T), None if dc_T is None else tuple(dc_T)), []
    for seg, res in reversed(list(zip(segments(T, L), per_segment, strict=True))):
        start, stop, lo, hi = seg
        dy = dys[start - (L - 1):stop - (L - 1)] if hi == L - 1 else None
        carry, seg_out = _backward_segment(cell, unroll, seg, weights, carry, res, dy)
        outputs.insert(0, seg_out)
    return (*_weight_gradients(xs, weights, per_segment, outputs), carry[0], carry[1])


def _weight_gradients(xs, weights, per_segment, outputs):
    """d xs and the weight and bias gradients, as one matmul per segment and weight, each
    straight from the segment's scan output (concatenating segments first would fuse the
    concatenation into the transpose copy of `_tdot`, which XLA:CPU then runs ~10x slower)."""
    L = len(weights)
    grads, dxs = [[0.0] * 4 for _ in range(L)], []
    for (start, stop, _, _), (hs_pre, _), rows in zip(segments(xs.shape[0], L), per_segment, outputs, strict=True):
        for j, (dax, dah) in enumerate(rows):
            if dax is None:
                continue
            inputs = xs[start:stop] if j == 0 else hs_pre[j - 1]
            for i, (da, x) in enumerate([(dax, inputs), (dax if dah is None else dah, hs_pre[j])]):
                grads[j][2 * i] = grads[j][2 * i] + _tdot(_flat(da), _flat(x))
                grads[j][2 * i + 1] = grads[j][2 * i + 1] + da.sum(axis=(0, 1))
            if j == 0:
                dxs.append(dax @ weights[0][0])
    return jnp.concatenate(dxs) if len(dxs) > 1 else dxs[0], tuple(tuple(g) for g in grads)


run_stack.defvjp(_forward, _backward)
