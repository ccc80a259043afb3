"""GRU and plain-RNN layers for the CPU, with backpropagation through time written out.

Why: PyTorch has a fused CPU kernel (oneDNN) for the LSTM only. `nn.GRU`/`nn.RNN` on
the CPU run cell by cell through autograd: every step's small matmuls go to MKL, which
on AMD CPUs takes its AVX2 path (about half oneDNN's rate: docs/performance.md), and
the backward accumulates `dW_hh` one step at a time. Here:
- the per-step matmuls `h @ W_hh^T` (forward) and `da @ W_hh` (backward) go to oneDNN
  through `torch.ops.mkldnn._linear_pointwise` with the weight packed once per call;
  the fused `add` post-op folds in the input projection;
- the input projection of all time steps, the weight gradients and the input gradient
  are single large oneDNN matmuls over all T*B rows; the GRU's weight gradients read
  one transposed copy of the pre-activation gradients;
- the backward uses the cell's derivative formulas (those of `common/reference.py`),
  with the step-independent factors computed for all steps at once, so the GRU's BPTT
  takes three operations a step.
float64 (for the parity tests) and builds without oneDNN use `addmm`/`mm` for the
matmuls: the same formulas, the same code path otherwise.

Layout and maths are cuDNN's, as `nn.GRU`: gates r, z, n; the reset gate scales
`(W_hn h + b_hn)`. `StackedRecurrent` keeps `nn.GRU`'s parameter names
(`weight_ih_l0`, `bias_hh_l1_reverse`, ...), so state dicts and the canonical mapping
are the same.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


class PackedLinear:
    """`x @ w^T (+ bias) (+ other)` for a fixed weight `w` (out, in): oneDNN with `w` packed
    once (float32 on the CPU), else `addmm`. Built once per layer and call, then applied
    every time step, where packing pays (docs/performance.md)."""

    def __init__(self, w: torch.Tensor, bias: torch.Tensor | None = None, rows: int | None = None):
        self.bias = bias
        self.onednn = ONEDNN and w.device.type == "cpu" and w.dtype == torch.float32
        self.w = torch.ops.mkldnn._reorder_linear_weight(w.contiguous(), rows) if self.onednn else w.t()

    def __call__(self, x: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
        if self.onednn:
            if other is None:
                return torch.ops.mkldnn._linear_pointwise(x, self.w, self.bias, "none", [], "")
            return torch.ops.mkldnn._linear_pointwise.binary(x, other, self.w, self.bias, "add")
        base = other if self.bias is None else (self.bias if other is None else other + self.bias)
        return x @ self.w if base is None else torch.addmm(base, x, self.w)


def _rows(a: torch.Tensor) -> torch.Tensor:
    return a.reshape(-1, a.shape[-1])


def _rows_t(a: torch.Tensor) -> torch.Tensor:
    """(T, B, n) -> its T*B rows transposed, (n, T*B), contiguous."""
    return _rows(a).t().contiguous()


def _matmul_nt(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """a @ b^T (+ bias) for contiguous (M, K) and (N, K), for the one-off products over
    all T*B rows: on oneDNN with `b` read as a plain weight (packing it costs more than
    it saves once: docs/performance.md), else addmm."""
    if ONEDNN and a.device.type == "cpu" and a.dtype == torch.float32:
        return torch.ops.mkldnn._linear_pointwise(a, b, bias, "none", [], "")
    return a @ b.t() if bias is None else torch.addmm(bias, a, b.t())


def _input_projection(x: torch.Tensor, w_ih: torch.Tensor, b_ih: torch.Tensor) -> torch.Tensor:
    return _matmul_nt(_rows(x), w_ih, b_ih).view(*x.shape[:2], -1)


def _input_grad(ctx, dax: torch.Tensor, w_ih: torch.Tensor, x: torch.Tensor):
    if not ctx.needs_input_grad[0]:
        return None
    return _matmul_nt(_rows(dax), w_ih.t().contiguous()).view_as(x)


def _prev_states(h0: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """The state each step started from: h0, y_0, ..., y_{T-2}."""
    return torch.cat([h0[None], ys[:-1]])


class GRUDirection(torch.autograd.Function):
    """One GRU layer in time order: x (T, B, in), h0 (B, h) -> outputs (T, B, h), h_T."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh):
        T, B, _ = x.shape
        H = w_hh.shape[1]
        ax = _input_projection(x, w_ih, b_ih)
        ax_rz = torch.cat([ax[..., :2 * H], torch.zeros_like(ax[..., 2 * H:])], dim=-1)
        step = PackedLinear(w_hh, b_hh, B)
        ys, gates, news, h = x.new_empty(T, B, H), [], x.new_empty(T, B, H), h0
        for t in range(T):
            g = step(h, ax_rz[t])  # r and z pre-activations; W_hn h + b_hn
            rz = g[:, :2 * H].sigmoid_()
            n = torch.addcmul(ax[t, :, 2 * H:], rz[:, :H], g[:, 2 * H:], out=news[t]).tanh_()
            h = torch.lerp(n, h, rz[:, H:], out=ys[t])
            gates.append(g)
        ctx.save_for_backward(x, h0, w_ih, w_hh, ys, torch.stack(gates), news)
        return ys, h.clone()

    @staticmethod
    def backward(ctx, dys, dh_T):
        x, h0, w_ih, w_hh, ys, gates, n = ctx.saved_tensors
        H = ys.shape[-1]
        h_prev = _prev_states(h0, ys)
        dn_dh, factors = _gru_factors(gates, n, h_prev)
        dah, dhs, dh0 = _gru_bptt(dys, dh_T, gates[..., H:2 * H], factors, w_hh)
        dax_n = dhs.mul_(dn_dh)  # d(loss)/d(W_in x + b_in), all steps
        # the pre-activation gradients transposed, rows [n_x; r; z; n_h]: both weight
        # gradients read one contiguous block of rows each
        grads_t = torch.cat([_rows(dax_n).t(), _rows(dah).t()])
        dw_hh = _matmul_nt(grads_t[H:], _rows_t(h_prev))
        dw_ih_nrz = _matmul_nt(grads_t[:3 * H], _rows_t(x))
        sums = grads_t.sum(1)
        dx = None
        if ctx.needs_input_grad[0]:
            dx = _input_grad(ctx, torch.cat([dah[..., :2 * H], dax_n], dim=-1), w_ih, x)
        return (dx, dh0, torch.cat([dw_ih_nrz[H:], dw_ih_nrz[:H]]), dw_hh,
                torch.cat([sums[H:3 * H], sums[:H]]), sums[H:])


def _gru_factors(gates: torch.Tensor, n: torch.Tensor, h_prev: torch.Tensor):
    """The step-independent factors of the GRU's backward, all steps at once: with dh_t
    the gradient reaching h_t, d(loss)/d(W_in x + b_in) = dh_t * dn_dh and the gradients
    of the three h-side pre-activations [r, z, W_hn h + b_hn] are dh_t * factors (per gate)."""
    H = n.shape[-1]
    r, z, hn = gates[..., :H], gates[..., H:2 * H], gates[..., 2 * H:]
    dn_dh = (1 - n * n).mul_(1 - z)
    factors = torch.empty_like(gates)
    torch.mul(dn_dh, hn, out=factors[..., :H]).mul_(r * (1 - r))
    torch.sub(h_prev, n, out=factors[..., H:2 * H]).mul_(z * (1 - z))
    torch.mul(dn_dh, r, out=factors[..., 2 * H:])
    return dn_dh, factors


def _gru_bptt(dys: torch.Tensor, dh_T, z: torch.Tensor, factors: torch.Tensor, w_hh: torch.Tensor):
    """Backpropagation through time, three operations a step: dah_t = dh_t * factors_t,
    then dh_{t-1} = dah_t @ W_hh + dh_t * z_t + dys_{t-1} (one oneDNN call with its add).
    Returns dah (T, B, 3h), dh_t for every step (T, B, h) and the gradient of h0."""
    T, B, H = dys.shape
    step = PackedLinear(w_hh.t(), rows=B)
    dah = torch.empty_like(factors)
    dah3, factors3 = dah.view(T, B, 3, H), factors.view(T, B, 3, H)
    dh = dys[-1] if dh_T is None else dh_T + dys[-1]
    dhs = []
    for t in reversed(range(T)):
        dhs.append(dh)
        torch.mul(dh.unsqueeze(1), factors3[t], out=dah3[t])
        dh = step(dah[t], torch.addcmul(dys[t - 1], dh, z[t]) if t else dh * z[t])
    return dah, torch.stack(dhs[::-1]), dh


class RNNDirection(torch.autograd.Function):
    """One tanh-RNN layer in time order: x (T, B, in), h0 (B, h) -> outputs (T, B, h), h_T."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh):
        T, B, _ = x.shape
        ax = _input_projection(x, w_ih, b_ih)
        step = PackedLinear(w_hh, b_hh, B)
        ys, h = x.new_empty(T, B, w_hh.shape[1]), h0
        for t in range(T):
            h = ys[t].copy_(step(h, ax[t])).tanh_()
        ctx.save_for_backward(x, h0, w_ih, w_hh, ys)
        return ys, h.clone()

    @staticmethod
    def backward(ctx, dys, dh_T):
        x, h0, w_ih, w_hh, ys = ctx.saved_tensors
        slope = 1 - ys * ys
        step = PackedLinear(w_hh.t(), rows=ys.shape[1])
        da = torch.empty_like(ys)
        dh = torch.zeros_like(h0) if dh_T is None else dh_T
        for t in reversed(range(ys.shape[0])):
            dh = step(torch.mul(dh + dys[t], slope[t], out=da[t]))
        da_t = _rows_t(da)
        db = da_t.sum(1)
        return (_input_grad(ctx, da, w_ih, x), dh, _matmul_nt(da_t, _rows_t(x)),
                _matmul_nt(da_t, _rows_t(_prev_states(h0, ys))), db, db)


DIRECTION = {"gru": GRUDirection, "rnn": RNNDirection}


class StackedRecurrent(nn.Module):
    """A drop-in for `nn.GRU` / `nn.RNN(nonlinearity='tanh')` (time-major, same parameter
    names and initialisation) whose layers are `GRUDirection` / `RNNDirection`."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int,
                 dropout: float = 0.0, bidirectional: bool = False):
        super().__init__()
        self.cell, self.dropout, self.num_layers = cell, dropout, num_layers
        self.hidden_size, self.directions = hidden_size, 2 if bidirectional else 1
        gh = (3 if cell == "gru" else 1) * hidden_size
        for layer in range(num_layers):
            n_in = input_size if layer == 0 else hidden_size * self.directions
            for suffix in ("", "_reverse")[:self.directions]:
                for name, shape in (("weight_ih", (gh, n_in)), ("weight_hh", (gh, hidden_size)),
                                    ("bias_ih", (gh,)), ("bias_hh", (gh,))):
                    self.register_parameter(f"{name}_l{layer}{suffix}", nn.Parameter(torch.empty(shape)))
        bound = 1.0 / math.sqrt(hidden_size)  # nn.GRU's own initialisation
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _weights(self, layer: int, d: int):
        suffix = f"_l{layer}{'_reverse' if d else ''}"
        return [getattr(self, name + suffix) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]

    def forward(self, x: torch.Tensor, h0: torch.Tensor):
        """x (T, B, in), h0 (layers*directions, B, h) -> outputs (T, B, h*directions), h_n."""
        finals = []
        for layer in range(self.num_layers):
            outs = []
            for d in range(self.directions):
                xs = x.flip(0) if d else x
                ys, h = DIRECTION[self.cell].apply(xs, h0[layer * self.directions + d], *self._weights(layer, d))
                outs.append(ys.flip(0) if d else ys)
                finals.append(h)
            x = torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        return x, torch.stack(finals)
