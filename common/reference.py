"""The numpy reference model: the judge of every backend's numbers.

A plain forward pass and backpropagation through time for the tanh RNN, GRU and LSTM
in the canonical (cuDNN) layout, stacked and optionally bidirectional, with one-hot or
embedding input and a dense output layer; loss is the mean cross-entropy over all
B*T tokens, as d2l's `train_ch8`. It computes in the dtype of the parameters, so
float64 gives a reference precise enough to check backends' float32 and float64 runs.
Its own gradients are checked against finite differences in the tests.

State is a tuple of arrays shaped (layers*directions, B, h): `(h,)` or `(h, c)` for
the LSTM, index `layer*directions + direction`, as PyTorch/cuDNN lay it out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.params import Params, rnn_key
from common.specs import ModelSpec
from common.state import state_count, state_shape

State = tuple[np.ndarray, ...]

# How close a backend must come to this reference (largest relative error).
PARITY_TOLERANCE = {"float32": 1e-4, "float64": 1e-9}


# Elementwise (rtol, atol) for float32 gradients against this float64 reference: every
# entry within atol + rtol * |reference entry|, as np.allclose, so a small entry far off
# cannot hide under a tensor's large ones (as it can under relative_error). atol is in
# gradient units: a gradient of the mean loss over B*T tokens (1,120 at d2l-deep-lstm's
# shape) sums O(1) terms that cancel (softmax minus one-hot), whose float32 rounding
# leaves ~1e-10 after the mean; 1e-9 covers entries at that level, and every larger
# entry must be within 0.1%.
ELEMENTWISE_TOLERANCE = {"float32": (1e-3, 1e-9)}


def elementwise_excess(got, want, rtol: float, atol: float) -> float:
    """max over entries of |got - want| / (atol + rtol * |want|): at most 1 when every
    entry passes np.allclose(got, want, rtol, atol), however small the entry."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want) / (atol + rtol * np.abs(want)))) if want.size else 0.0


def relative_error(got, want) -> float:
    """Largest absolute difference over the largest magnitude of `want`."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


def zero_state(model: ModelSpec, batch: int, dtype) -> State:
    return tuple(np.zeros(state_shape(model, batch), dtype=dtype) for _ in range(state_count(model)))


@dataclass
class _DirCache:
    """What one direction of one layer keeps for its backward pass."""

    xs: np.ndarray  # (T, B, in)
    hs: np.ndarray  # (T+1, B, h): initial state then every step's output
    acts: list  # per step: the cell's activations


def _step(cell: str, ax: np.ndarray, h: np.ndarray, c, w_hh, b_hh):
    """One time step from the input projection `ax` (x W_ih^T + b_ih)."""
    ah = h @ w_hh.T + b_hh
    if cell == "rnn":
        h_new = np.tanh(ax + ah)
        return h_new, None, (h_new,)
    if cell == "lstm":
        i, f, g, o = np.split(ax + ah, 4, axis=1)
        i, f, g, o = _sigmoid(i), _sigmoid(f), np.tanh(g), _sigmoid(o)
        c_new = f * c + i * g
        tc = np.tanh(c_new)
        return o * tc, c_new, (i, f, g, o, c, tc)
    xr, xz, xn = np.split(ax, 3, axis=1)
    hr, hz, hn = np.split(ah, 3, axis=1)
    r, z = _sigmoid(xr + hr), _sigmoid(xz + hz)
    n = np.tanh(xn + r * hn)
    return (1.0 - z) * n + z * h, None, (r, z, n, hn)


def _step_back(cell: str, acts, h_prev, dh, dc):
    """Gradients of one step.

    Returns (d input projection, d hidden projection, direct dh_prev, dc_prev); the
    caller adds `d hidden projection @ w_hh` to the direct part of dh_prev.
    """
    if cell == "rnn":
        (h_new,) = acts
        da = dh * (1.0 - h_new**2)
        return da, da, 0.0, None
    if cell == "lstm":
        i, f, g, o, c_prev, tc = acts
        dc = dc + dh * o * (1.0 - tc**2)
        da = np.concatenate(
            [dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g**2), dh * tc * o * (1 - o)],
            axis=1,
        )
        return da, da, 0.0, dc * f
    r, z, n, hn = acts
    dn = dh * (1.0 - z) * (1.0 - n**2)
    dr = dn * hn * r * (1.0 - r)
    dz = dh * (h_prev - n) * z * (1.0 - z)
    dax = np.concatenate([dr, dz, dn], axis=1)
    return dax, np.concatenate([dr, dz, dn * r], axis=1), dh * z, None


def _run_direction(cell, params, key, xs, h0, c0, reverse):
    """Run one direction over time; outputs (T, B, h) in forward time order."""
    w_ih, w_hh, b_hh = params[key("w_ih")], params[key("w_hh")], params[key("b_hh")]
    ax_all = xs @ w_ih.T + params[key("b_ih")]  # all time steps in one matmul
    order = range(len(xs) - 1, -1, -1) if reverse else range(len(xs))
    h, c = h0, c0
    hs, acts, outs = [h0], [], [None] * len(xs)
    for t in order:
        h, c, a = _step(cell, ax_all[t], h, c, w_hh, b_hh)
        hs.append(h)
        acts.append(a)
        outs[t] = h
    return np.stack(outs), h, c, _DirCache(xs, np.stack(hs), acts)


def _back_direction(cell, params, key, cache: _DirCache, douts, dhT, dcT, reverse, grads):
    """Backprop one direction: adds its parameter grads to `grads`, returns (dxs, dh0, dc0)."""
    w_ih, w_hh = params[key("w_ih")], params[key("w_hh")]
    T = len(cache.xs)
    order = list(range(T - 1, -1, -1) if reverse else range(T))
    dax_all = np.zeros((T, douts.shape[1], w_hh.shape[0]), dtype=douts.dtype)
    dW_hh, db_hh = np.zeros_like(w_hh), np.zeros_like(params[key("b_hh")])
    dh, dc = dhT, dcT
    for k in range(T - 1, -1, -1):  # k: position in processing order
        t, h_prev = order[k], cache.hs[k]
        dax, dah, dh_direct, dc = _step_back(cell, cache.acts[k], h_prev, dh + douts[t], dc)
        dax_all[t] = dax
        dW_hh += dah.T @ h_prev
        db_hh += dah.sum(axis=0)
        dh = dh_direct + dah @ w_hh
    flat_dax = dax_all.reshape(-1, dax_all.shape[-1])
    grads[key("w_ih")] = flat_dax.T @ cache.xs.reshape(-1, cache.xs.shape[-1])
    grads[key("b_ih")] = flat_dax.sum(axis=0)
    grads[key("w_hh")], grads[key("b_hh")] = dW_hh, db_hh
    return dax_all @ w_ih, dh, dc


def _embed(params: Params, model: ModelSpec, X: np.ndarray, vocab_size: int, dtype) -> np.ndarray:
    """Time-major layer-0 inputs (T, B, in) from token ids (B, T)."""
    ids = X.T
    if model.input == "embedding":
        return params["embed.w"][ids]
    return np.eye(vocab_size, dtype=dtype)[ids]


@dataclass
class Forward:
    logits: np.ndarray  # (B, T, V)
    state: State
    caches: list  # per layer, per direction: _DirCache
    tops: np.ndarray  # (T, B, h*dirs): last layer's outputs


def forward(params: Params, model: ModelSpec, X: np.ndarray, state: State | None = None) -> Forward:
    """Logits for every position of X (B, T) and the final state."""
    vocab_size, dtype = params["dense.b"].shape[0], params["dense.b"].dtype
    state = zero_state(model, X.shape[0], dtype) if state is None else state
    D, lstm = model.num_directions, model.cell == "lstm"
    xs = _embed(params, model, X, vocab_size, dtype)
    finals: list[list[np.ndarray]] = [[] for _ in state]
    caches = []
    for layer in range(model.num_layers):
        outs, layer_caches = [], []
        for d in range(D):
            idx = layer * D + d
            key = lambda name, layer=layer, d=d: rnn_key(layer, d, name)  # noqa: E731
            c0 = state[1][idx] if lstm else None
            out, hT, cT, cache = _run_direction(model.cell, params, key, xs, state[0][idx], c0, d == 1)
            outs.append(out)
            layer_caches.append(cache)
            finals[0].append(hT)
            if lstm:
                finals[1].append(cT)
        xs = np.concatenate(outs, axis=2) if D == 2 else outs[0]
        caches.append(layer_caches)
    logits = xs @ params["dense.w"].T + params["dense.b"]
    return Forward(logits.transpose(1, 0, 2), tuple(np.stack(f) for f in finals), caches, xs)


def _softmax_xent(logits: np.ndarray, Y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy over all tokens and its gradient w.r.t. the logits."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    probs = exp / exp.sum(axis=-1, keepdims=True)
    picked = np.take_along_axis(shifted, Y[..., None], axis=-1)[..., 0]
    loss = float(np.mean(np.log(exp.sum(axis=-1)) - picked))
    dlogits = probs
    np.put_along_axis(dlogits, Y[..., None], np.take_along_axis(probs, Y[..., None], axis=-1) - 1.0, axis=-1)
    return loss, dlogits / Y.size


def loss_and_grads(
    params: Params, model: ModelSpec, X: np.ndarray, Y: np.ndarray, state: State | None = None
) -> tuple[float, Params, State]:
    """Mean loss, gradients in the canonical layout, and the final state."""
    fwd = forward(params, model, X, state)
    loss, dlogits = _softmax_xent(fwd.logits, Y)
    dlogits_t = dlogits.transpose(1, 0, 2)  # (T, B, V)
    flat_top = fwd.tops.reshape(-1, fwd.tops.shape[-1])
    grads: Params = {
        "dense.w": dlogits_t.reshape(-1, dlogits_t.shape[-1]).T @ flat_top,
        "dense.b": dlogits_t.sum(axis=(0, 1)),
    }
    dxs = _back_layers(params, model, fwd, dlogits_t @ params["dense.w"], grads)
    if model.input == "embedding":
        grads["embed.w"] = np.zeros_like(params["embed.w"])
        np.add.at(grads["embed.w"], X.T, dxs)
    return loss, {name: grads[name].astype(params[name].dtype) for name in params}, fwd.state


def recurrent_grads(params: Params, model: ModelSpec, X: np.ndarray) -> tuple[float, Params]:
    """The sum of the top layer's outputs from a zero state and its gradients to the
    recurrent weights (`rnn.*`): what `LanguageModel.recurrent_pass` computes."""
    fwd = forward(params, model, X)
    grads: Params = {}
    _back_layers(params, model, fwd, np.ones_like(fwd.tops), grads)
    return float(fwd.tops.sum()), grads


def _back_layers(params: Params, model: ModelSpec, fwd: Forward, dtops: np.ndarray, grads: Params) -> np.ndarray:
    """Backpropagate d(loss)/d(top outputs) through every layer from a zero final-state
    gradient, adding the recurrent weights' gradients to `grads`; returns d(inputs)."""
    D, H, dxs = model.num_directions, model.num_hiddens, dtops
    for layer in range(model.num_layers - 1, -1, -1):
        dx_in = 0.0
        for d in range(D):
            key = lambda name, layer=layer, d=d: rnn_key(layer, d, name)  # noqa: E731
            zeros = np.zeros_like(fwd.state[0][0])
            dcT = zeros if model.cell == "lstm" else None
            douts = dxs[..., d * H : (d + 1) * H]
            dx, _, _ = _back_direction(model.cell, params, key, fwd.caches[layer][d], douts, zeros, dcT, d == 1, grads)
            dx_in = dx_in + dx
        dxs = dx_in
    return dxs


def clip_global_norm(grads: Params, clip: float, eps: float = 0.0) -> tuple[Params, float]:
    """Scale all gradients by min(1, clip / (global norm + eps)), as d2l's `grad_clipping`
    (eps 0); libraries' own clipping adds an eps (`clip_epsilon` of a model that uses one)."""
    norm = float(np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values())))
    if clip <= 0 or norm + eps <= clip:
        return grads, norm
    scale = clip / (norm + eps)
    return {k: (g * scale).astype(g.dtype) for k, g in grads.items()}, norm


class Optimizer:
    """SGD or Adam (PyTorch's formulas: bias-corrected moments, eps outside the sqrt)."""

    def __init__(self, kind: str, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.kind, self.lr, self.betas, self.eps = kind, lr, betas, eps
        self.t, self.m, self.v = 0, {}, {}

    def step(self, params: Params, grads: Params) -> Params:
        if self.kind == "sgd":
            return {k: p - self.lr * grads[k] for k, p in params.items()}
        self.t += 1
        b1, b2 = self.betas
        out = {}
        for k, p in params.items():
            self.m[k] = b1 * self.m.get(k, 0.0) + (1 - b1) * grads[k]
            self.v[k] = b2 * self.v.get(k, 0.0) + (1 - b2) * grads[k] ** 2
            m_hat = self.m[k] / (1 - b1**self.t)
            v_hat = self.v[k] / (1 - b2**self.t)
            out[k] = (p - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)).astype(p.dtype)
        return out


def train_trajectory(params: Params, model: ModelSpec, train, batches,
                     clip_eps: float = 0.0) -> tuple[list[float], Params]:
    """Losses of successive training steps (clip, then update) from `params`; `clip_eps`
    as in `clip_global_norm`.

    The state is carried across batches when the sampling carries it (`sequential`),
    and starts from zeros otherwise, as the backends' `train_epoch` does.
    """
    opt, state, losses = Optimizer(train.optimizer, train.lr), None, []
    for X, Y in batches:
        loss, grads, final = loss_and_grads(params, model, X, Y, state if train.carries_state else None)
        grads, _ = clip_global_norm(grads, train.clip, clip_eps)
        params = opt.step(params, grads)
        state, losses = final, losses + [loss]
    return losses, params


def predict(params: Params, model: ModelSpec, prefix_ids: list[int], num_preds: int) -> list[int]:
    """Greedy continuation of a prefix (d2l's `predict_ch8`): the ids after the prefix."""
    if num_preds <= 0:
        return []
    fwd = forward(params, model, np.asarray([prefix_ids]))
    out = [int(fwd.logits[0, -1].argmax())]
    state = fwd.state
    for _ in range(num_preds - 1):
        fwd = forward(params, model, np.asarray([[out[-1]]]), state)
        out.append(int(fwd.logits[0, -1].argmax()))
        state = fwd.state
    return out
