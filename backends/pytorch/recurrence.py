"""GRU and plain-RNN layers for the CPU, with backpropagation through time written out.

Why: PyTorch has a fused CPU kernel (oneDNN) for the LSTM only. `nn.GRU`/`nn.RNN` on
the CPU run cell by cell through autograd: every step's small matmuls go to MKL, which
on this AMD CPU takes its AVX2 path (32x256 @ 256x768: ~80-90 us, ~150 GFLOP/s), and
the backward accumulates `dW_hh` one step at a time. Here:
- the per-step matmuls `h @ W_hh^T` (forward) and `da @ W_hh` (backward) go to oneDNN
  through `torch.ops.mkldnn._linear_pointwise` with the weight packed once per call
  (the same shape: ~45 us, ~270 GFLOP/s); the fused `add` post-op folds in the input
  projection;
- the input projection of all time steps, the weight gradients and the input gradient
  are single large matmuls over all T*B rows;
- the backward uses the cell's derivative formulas (those of `common/reference.py`),
  with the step-independent factors computed for all steps at once.
float64 (for the parity tests) and builds without oneDNN use `addmm` for the per-step
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
    every time step; for the one-off large products the packing costs ~0.2 ms and saves
    ~0.5 ms against MKL's AVX2 path."""

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


def _input_projection(x: torch.Tensor, w_ih: torch.Tensor, b_ih: torch.Tensor) -> torch.Tensor:
    T, B, _ = x.shape
    return PackedLinear(w_ih, b_ih, T * B)(_rows(x)).view(T, B, -1)


def _weight_grads(da: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """sum over steps and batch of da_t^T inputs_t, as one (G*h, T*B) @ (T*B, n) product."""
    return PackedLinear(_rows(inputs).t(), rows=da.shape[-1])(_rows(da).t().contiguous())


def _input_grad(ctx, dax: torch.Tensor, w_ih: torch.Tensor, x: torch.Tensor):
    if not ctx.needs_input_grad[0]:
        return None
    return PackedLinear(w_ih.t(), rows=dax.shape[0] * dax.shape[1])(_rows(dax)).view_as(x)


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
        T, B, H = ys.shape
        r, z, hn = gates[..., :H], gates[..., H:2 * H], gates[..., 2 * H:]
        h_prev = torch.cat([h0[None], ys[:-1]])
        dn_dh = (1 - z) * (1 - n * n)  # the step-independent factors, all steps at once
        dz_dh = (h_prev - n) * z * (1 - z)
        dr_dn = hn * r * (1 - r)
        step = PackedLinear(w_hh.t(), rows=B)
        dax, dah = ys.new_empty(T, B, 3 * H), ys.new_empty(T, B, 3 * H)
        dh = torch.zeros_like(h0) if dh_T is None else dh_T
        for t in reversed(range(T)):
            dh = dh + dys[t]
            dn = torch.mul(dh, dn_dh[t], out=dax[t, :, 2 * H:])
            torch.mul(dn, dr_dn[t], out=dah[t, :, :H])
            torch.mul(dh, dz_dh[t], out=dah[t, :, H:2 * H])
            torch.mul(dn, r[t], out=dah[t, :, 2 * H:])
            dh = step(dah[t], dh * z[t])
        dax[..., :2 * H] = dah[..., :2 * H]
        return (_input_grad(ctx, dax, w_ih, x), dh, _weight_grads(dax, x), _weight_grads(dah, h_prev),
                dax.sum((0, 1)), dah.sum((0, 1)))


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
        h_prev = torch.cat([h0[None], ys[:-1]])
        db = da.sum((0, 1))
        return _input_grad(ctx, da, w_ih, x), dh, _weight_grads(da, x), _weight_grads(da, h_prev), db, db


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
