"""The built models: `GluonModel` (the imperative, hybridized and out-of-box `gluon`
modes, no host sync in an epoch) and `BookModel` (d2l 0.17's own MXNet training loop)."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from backends import base
from backends.mxnet_gluon._environment import autograd, mx, nd
from backends.mxnet_gluon.nets import BookLoss, BookNet, LossNet, Net, rnn_params, uses_native_rnn_kernel
from backends.mxnet_gluon.optim import book_grad_clipping, make_trainer, make_update
from common.params import Params, check_params, param_shapes
from common.specs import RunSpec


class Accumulator:
    """d2l's `Accumulator`: sums n running values in Python floats."""

    def __init__(self, n: int):
        self.data = [0.0] * n

    def add(self, *args) -> None:
        self.data = [a + float(b) for a, b in zip(self.data, args, strict=True)]

    def __getitem__(self, idx: int) -> float:
        return self.data[idx]


class GluonModel(base.LanguageModel):
    """The `imperative`, `hybridized` and `gluon` modes: no host sync inside an epoch."""

    def __init__(self, spec: RunSpec, vocab_size: int, ctx, params: Params | None, mode: str, settings):
        self.spec, self.mode, self.vocab_size, self.ctx = spec, mode, vocab_size, ctx
        self.settings = settings  # backend.MODES[mode]
        self.dtype = spec.train.dtype
        self.lr = spec.train.lr  # until _set_learning_rate
        library_clip = settings.library and spec.train.dtype == "float32" and spec.train.clip > 0
        self.clip_epsilon = 1e-8 if library_clip else 0.0  # gluon.utils.clip_global_norm: clip / (norm + 1e-8)
        self.net = self._build_net()
        self._params = self._param_map()
        self._zero_states: dict[int, list] = {}
        mx.random.seed(spec.train.seed)  # Gluon's own init (and dropout) reproducible per seed
        self.net.initialize(ctx=ctx)
        if params is None:
            self._make_update()
        else:
            self.set_params(params)

    def _build_net(self):
        net = Net(self.spec, self.vocab_size, self.dtype, uses_native_rnn_kernel(self.ctx, self.dtype),
                  library=self.settings.library)
        self.loss_net = LossNet(net)
        if self.settings.hybridize:
            self.loss_net.hybridize(static_alloc=True, static_shape=True)
        return net

    def _param_map(self) -> dict[str, Any]:
        """Canonical name -> Gluon Parameter or FlatView (`data`, `grad`, `set_data`), in
        canonical order. Shapes and gate order (i,f,g,o / r,z,n) are cuDNN's in both."""
        net, m = self.net, self.spec.model
        out = {"embed.w": net.embed.weight} if net.embed is not None else {}
        out.update(rnn_params(net.rnn, m, self.vocab_size))
        out["dense.w"], out["dense.b"] = net.dense.weight, net.dense.bias
        assert list(out) == list(param_shapes(m, self.vocab_size)), "parameter map out of canonical order"
        return out

    # -- helpers

    def _ids(self, ids: np.ndarray):
        return nd.array(ids, ctx=self.ctx, dtype=np.int32)

    def _zeros(self, batch: int) -> list:
        """Zero state for `batch` rows (cached: the recurrent op never writes its inputs)."""
        if batch not in self._zero_states:
            self._zero_states[batch] = self.net.rnn.begin_state(batch_size=batch, ctx=self.ctx, dtype=self.dtype)
        return self._zero_states[batch]

    def _loss(self, X: np.ndarray, Y: np.ndarray, state: list):
        """Mean loss (a device scalar) and the new state."""
        loss, *new_state = self.loss_net(self._ids(X), self._ids(Y), *state)
        return loss, new_state

    def _last_logits(self, ids, state: list):
        """Logits (B, V) at the last position of `ids` (an int32 NDArray) and the new state."""
        logits, *new_state = self.net(ids, *state)
        return logits[-1], new_state

    def _grads(self) -> list:
        """The trained arrays' gradients (the flat buffer whole, not its views)."""
        return [p.grad(self.ctx) for p in self.net.collect_params().values() if p.grad_req != "null"]

    # -- the interface

    def _train_epoch(self, batches: Iterable[base.Batch]) -> base.EpochStats:
        carry, grads = self.spec.train.carries_state, self._grads()
        total, tokens, state = nd.zeros((1,), ctx=self.ctx, dtype=np.float64), 0, self._epoch_start_state()
        for X, Y in batches:
            if state is None or not carry or state[0].shape[1] != X.shape[0]:
                state = self._zeros(X.shape[0])
            with autograd.record():
                loss, state = self._loss(X, Y, state)
            loss.backward()
            self.update(grads)
            state = [s.detach() for s in state]
            total = total + loss.astype(np.float64) * Y.size
            tokens += Y.size
        self._epoch_end_state(state)
        mx.nd.waitall()
        return base.EpochStats(loss_sum=float(total.asnumpy()[0]), tokens=int(tokens))

    def _evaluate(self, batches: Iterable[base.Batch]) -> base.EpochStats:
        total, tokens, state = nd.zeros((1,), ctx=self.ctx, dtype=np.float64), 0, None
        for X, Y in batches:
            if state is None or not self.spec.train.carries_state:
                state = self._zeros(X.shape[0])
            loss, state = self._loss(X, Y, state)
            total = total + loss.astype(np.float64) * Y.size
            tokens += Y.size
        mx.nd.waitall()
        return base.EpochStats(loss_sum=float(total.asnumpy()[0]), tokens=int(tokens))

    def _predict(self, prefix_ids: list[int], num_preds: int) -> list[int]:
        """Greedy; the chosen ids stay on the device and are read once at the end."""
        prefix = np.asarray([prefix_ids], dtype=np.int32)
        last, state = self._last_logits(self._ids(prefix), self._zeros(1))
        chosen = [nd.argmax(last, axis=-1)]
        for _ in range(num_preds - 1):
            last, state = self._last_logits(chosen[-1].reshape((1, 1)).astype(np.int32), state)
            chosen.append(nd.argmax(last, axis=-1))
        return [int(i) for i in nd.concat(*chosen, dim=0).asnumpy()]

    def _recurrent_pass(self, X: np.ndarray, grads: bool) -> tuple[float, Params | None]:
        ids, net = nd.transpose(self._ids(X)), self.net
        xs = net.embed(ids) if net.embed is not None else nd.one_hot(ids, self.vocab_size, dtype=self.dtype)
        with autograd.record():
            out, _ = net.rnn(xs, self._zeros(X.shape[0]))
        out.backward()  # a cotangent of ones: the gradient of the outputs' sum
        mx.nd.waitall()
        found = {name: p.grad(self.ctx).asnumpy() for name, p in self._params.items()
                 if name.startswith("rnn.")} if grads else None
        return float(out.sum().asnumpy()[0]), found

    def get_params(self) -> Params:
        return {name: p.data(self.ctx).asnumpy() for name, p in self._params.items()}

    def set_params(self, params: Params) -> None:
        check_params(params, self.spec.model, self.vocab_size)
        for name, p in self._params.items():
            p.set_data(nd.array(np.asarray(params[name]), ctx=self.ctx, dtype=self.dtype))
        self._make_update()  # fresh optimizer state
        self._run_state = None  # a fresh start carries no state over either

    def _make_update(self) -> None:
        self.update = make_update(self.spec, self.net.collect_params(), self.lr, library=self.settings.library)

    def _set_learning_rate(self, lr: float) -> None:
        """Later steps use `lr` (kept by set_params, which resets the optimizer state)."""
        self.lr = float(lr)
        self.update.set_learning_rate(self.lr)

    def _loss_and_grads(self, X: np.ndarray, Y: np.ndarray) -> tuple[float, Params]:
        with autograd.record():
            loss, _ = self._loss(X, Y, self._zeros(X.shape[0]))
        loss.backward()
        grads = {name: p.grad(self.ctx).asnumpy() for name, p in self._params.items()}
        return float(loss.asnumpy()[0]), grads


class BookModel(GluonModel):
    """The `book` mode: d2l 0.17's MXNet `RNNModel` and `train_epoch_ch8`, step by step.

    Kept as the book wrote it (imperative Block around Gluon's own `rnn.LSTM/GRU/RNN`,
    float32 ids as `d2l.tensor` made them, the `grad_clipping` and
    `metric.add(float(...))` host syncs every step) so that it measures the book's own
    loop. Departures: the book's `mx.np` interface becomes the equivalent `mx.nd` calls
    (same operators); its `s.detach()` (whose result it discards) is assigned, so the
    graph is cut where the book meant it to be; its loss object computes the
    cross-entropy without `log_softmax` (see `token_nll`: a few elementwise operators
    more than Gluon's fused loss, kept for the reference's accuracy); clip = 0 disables
    clipping; a stack of single-layer Gluon layers replaces the two-layer one only where
    MXNet's native CPU kernel is wrong (float64, see uses_native_rnn_kernel).
    """

    def _make_update(self) -> None:
        self.trainer = make_trainer(self.spec, self.net.collect_params(), self.lr)  # the book's Trainer

    def _set_learning_rate(self, lr: float) -> None:
        self.lr = float(lr)
        self.trainer.set_learning_rate(self.lr)

    def _build_net(self):
        self.loss = BookLoss()
        return BookNet(self.spec, self.vocab_size, self.dtype, uses_native_rnn_kernel(self.ctx, self.dtype))

    def _ids(self, ids: np.ndarray):
        return nd.array(ids, ctx=self.ctx)  # float32, like d2l.tensor

    def _loss(self, X: np.ndarray, Y: np.ndarray, state: list):
        y_hat, new_state = self.net(self._ids(X), state)
        return self.loss(y_hat, self._ids(Y).T.reshape((-1,))).mean(), new_state

    def _last_logits(self, ids, state: list):
        out, new_state = self.net(ids, state)
        return out[-ids.shape[0]:], new_state

    def _train_epoch(self, batches: Iterable[base.Batch]) -> base.EpochStats:
        state, metric = self._epoch_start_state(), Accumulator(2)  # loss sum, tokens
        for X, Y in batches:
            if state is None or not self.spec.train.carries_state or state[0].shape[1] != X.shape[0]:
                state = self.net.rnn.begin_state(batch_size=X.shape[0], ctx=self.ctx, dtype=self.dtype)
            else:  # the book writes `for s in state: s.detach()`, which discards the
                state = [s.detach() for s in state]  # detached copies; kept here
            y = nd.array(Y).T.reshape((-1,))
            X, y = nd.array(X).as_in_context(self.ctx), y.as_in_context(self.ctx)
            with autograd.record():
                y_hat, state = self.net(X, state)
                l = self.loss(y_hat, y).mean()  # noqa: E741 (the book's name)
            l.backward()
            book_grad_clipping(self.net, self.spec.train.clip)
            self.trainer.step(batch_size=1)
            metric.add((l * y.size).asscalar(), y.size)  # the book's float(l * size): a sync
        self._epoch_end_state(state)
        mx.nd.waitall()
        return base.EpochStats(loss_sum=metric[0], tokens=int(metric[1]))
