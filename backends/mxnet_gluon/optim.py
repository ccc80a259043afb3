"""Optimizers through `gluon.Trainer` with the reference's exact formulas, and global
gradient-norm clipping: on the device (no host sync), or the book's way (a sync).
`make_update` gives the clip-then-step the GluonModel runs each batch."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from backends.mxnet_gluon._environment import gluon, mx, nd
from common.specs import RunSpec


class Adam(mx.optimizer.Adam):
    """MXNet's Adam with the reference's (PyTorch's) epsilon placement.

    MXNet folds the bias corrections into the learning rate, which leaves epsilon
    outside the corrected sqrt(v): lr*sqrt(c2)/c1 * m / (sqrt(v) + eps), 2% off the
    reference on near-zero gradients. Passing eps*sqrt(c2) gives exactly
    lr/c1 * m / (sqrt(v)/sqrt(c2) + eps) through the same fused `adam_update` kernel.
    That kernel takes lr, betas and eps as float32 (0.999 -> 0.99900001), ~1e-6 off in
    float64, so float64 weights take the same formula in float64 NDArray operations.
    """

    def update(self, index, weight, grad, state):
        if weight.dtype == np.float64:
            return self._update_float64(index, weight, grad, state)
        t = self._index_update_count.get(index, self.begin_num_update) + 1
        eps = self.epsilon
        self.epsilon = eps * math.sqrt(1.0 - self.beta2**t)
        try:
            super().update(index, weight, grad, state)
        finally:
            self.epsilon = eps

    def _update_float64(self, index, weight, grad, state):
        self._update_count(index)
        t, lr, (mean, var) = self._index_update_count[index], self._get_lr(index), state
        assert self._get_wd(index) == 0 and not self.clip_gradient, "rnnbench's Adam has no wd or clipping"
        g = grad * self.rescale_grad
        mean[:] = self.beta1 * mean + (1.0 - self.beta1) * g
        var[:] = self.beta2 * var + (1.0 - self.beta2) * nd.square(g)
        m_hat, v_hat = mean / (1.0 - self.beta1**t), var / (1.0 - self.beta2**t)
        weight[:] = weight - lr * m_hat / (nd.sqrt(v_hat) + self.epsilon)


class SGD64(mx.optimizer.Optimizer):
    """Plain SGD in float64 operations: MXNet's `sgd_update` takes lr as float32."""

    def create_state(self, index, weight):
        return None

    def update(self, index, weight, grad, state):
        self._update_count(index)
        weight[:] = weight - self._get_lr(index) * (grad * self.rescale_grad)


def make_trainer(spec: RunSpec, params, lr: float | None = None) -> gluon.Trainer:
    """Plain SGD (no momentum, no weight decay) or Adam at `lr` (default: the spec's);
    `step(1)`: the loss is a mean."""
    lr = spec.train.lr if lr is None else lr
    if spec.train.optimizer == "adam":
        return gluon.Trainer(params, Adam(learning_rate=lr))
    if spec.train.dtype == "float64":
        return gluon.Trainer(params, SGD64(learning_rate=lr))
    return gluon.Trainer(params, "sgd", {"learning_rate": lr, "momentum": 0.0, "wd": 0.0})


PIECE = 16384  # elements per partial sum of squares (see `pieces`): 4.5e-7 of the norm at worst here
_PIECES: dict[tuple[int, ...], tuple[list, list]] = {}


def pieces(grads: list) -> list:
    """`grads` as flat views of at most PIECE elements each, made once per list of
    arrays. `multi_sum_sq` accumulates each array in one float32 sum, which loses the
    small squares of a big array (a 10k-word embedding: up to 1e-3 of the norm, enough
    to make clipped steps drift from the reference); summed in pieces, each partial sum
    stays exact to float32 rounding."""
    key = tuple(id(g) for g in grads)
    if key not in _PIECES:
        flat = [g.reshape((-1,)) for g in grads]
        views = [f[i:min(i + PIECE, f.size)] for f in flat for i in range(0, f.size, PIECE)]
        _PIECES.clear()  # one model's gradients at a time
        _PIECES[key] = (list(grads), views)  # the arrays are kept, so their ids stay theirs
    return _PIECES[key][1]


def clip_scale(grads: list, clip: float):
    """min(1, clip / global norm of `grads`) as a (1,) device array, without a host sync.

    float32 sums its squares piece by piece in `multi_sum_sq` (see `pieces`); float64
    keeps float64 sums (that op returns float32)."""
    if grads[0].dtype == np.float32:
        views = pieces(grads)
        sq = nd.sum(nd.multi_sum_sq(*views, num_arrays=len(views)))
    else:
        sq = nd.add_n(*[nd.sum(nd.square(g)) for g in grads])
    return nd.minimum(clip / nd.sqrt(sq), 1.0)  # exactly 1.0 when the norm is within clip


class ClippedSGD:
    """Plain float32 SGD with the clip folded into the learning rate: one
    `preloaded_multi_sgd_update` per step takes lr * scale as a device array, so the
    gradients are never rescaled in place. Why: rescaling them took longer than the
    update itself (docs/performance.md). The result is the reference's
    w - lr * (scale * g) up to float32 rounding of lr * scale."""

    def __init__(self, params: list, lr: float, clip: float):
        self.weights = [p.data() for p in params]
        self.clip = clip
        self.wds = nd.zeros((len(params),), ctx=self.weights[0].context, dtype=np.float32)
        self.set_learning_rate(lr)

    def set_learning_rate(self, lr: float) -> None:
        self.lr = lr
        self.lrs = nd.full((len(self.weights),), lr, ctx=self.weights[0].context, dtype=np.float32)

    def __call__(self, grads: list) -> None:
        lrs = self.lrs if self.clip <= 0 else nd.broadcast_mul(self.lrs, clip_scale(grads, self.clip))
        data = [a for pair in zip(self.weights, grads, strict=True) for a in pair] + [lrs, self.wds]
        nd.preloaded_multi_sgd_update(*data, num_weights=len(grads), out=self.weights)


class TrainerUpdate:
    """Clip, then `trainer.step(1)`: with the project's `clip_on_device`, or (`library`)
    Gluon's own `gluon.utils.clip_global_norm` (check_isfinite=False: no host sync; it
    divides by norm + 1e-8, and needs float32 arrays, so float64 clips on the device)."""

    def __init__(self, spec: RunSpec, params, lr: float, library: bool = False):
        self.trainer, self.clip = make_trainer(spec, params, lr), spec.train.clip
        self.library = library and spec.train.dtype == "float32"

    def __call__(self, grads: list) -> None:
        if self.library and self.clip > 0:
            gluon.utils.clip_global_norm(grads, self.clip, check_isfinite=False)
        else:
            clip_on_device(grads, self.clip)
        self.trainer.step(1)

    def set_learning_rate(self, lr: float) -> None:
        self.trainer.set_learning_rate(lr)


def make_update(spec: RunSpec, params, lr: float | None = None, library: bool = False) -> Callable[[list], None]:
    """The per-batch `update(grads)` at `lr` (default: the spec's), with
    `set_learning_rate(lr)` for later steps: clip on the device, then step. float32 SGD
    runs fused (`ClippedSGD`); other optimizers, float64, and `library` (the out-of-box
    mode: a plain `gluon.Trainer` after Gluon's own clipping) step a Trainer."""
    trained = [p for p in params.values() if p.grad_req != "null"]
    t = spec.train
    lr = t.lr if lr is None else lr
    if t.optimizer == "sgd" and t.dtype == "float32" and not library:
        return ClippedSGD(trained, lr, t.clip)
    return TrainerUpdate(spec, params, lr, library)


def clip_on_device(grads: list, clip: float) -> None:
    """Scale `grads` in place by `clip_scale`; clip <= 0 disables clipping."""
    if clip <= 0:
        return
    scale = clip_scale(grads, clip)
    for g in grads:
        nd.broadcast_mul(g, scale, out=g)


def book_grad_clipping(net: gluon.Block, theta: float) -> None:
    """d2l 0.17's MXNet `grad_clipping`: the norm comes to the host (a sync) every step."""
    if theta <= 0:  # the spec's "clip = 0 disables clipping"; the book always clipped
        return
    params = [p.data() for p in net.collect_params().values()]
    norm = math.sqrt(sum((p.grad**2).sum() for p in params).asscalar())  # mx.np: float(); nd: asscalar
    if norm > theta:
        for param in params:
            param.grad[:] *= theta / norm
