"""The networks: a fused recurrent layer (flat.FlatRNN, Gluon's own, or a stack of Gluon's) between
one-hot/embedding input and a dense output, the loss, d2l 0.17's `RNNModel`, and the
parameter names they use."""

from __future__ import annotations

import os

from backends.mxnet_gluon._environment import gluon, mx, nd, nn, rnn
from backends.mxnet_gluon.flat import FlatRNN
from common.params import layer_input_size, rnn_key
from common.specs import RunSpec
from common.state import state_count, state_shape

GLUON_DIRS = ("l", "r")  # Gluon's names for the forward/backward direction
GLUON_TENSORS = {"w_ih": "i2h_weight", "w_hh": "h2h_weight", "b_ih": "i2h_bias", "b_hh": "h2h_bias"}


def fused_layer(spec: RunSpec, num_layers: int, input_size: int, dtype: str):
    """Gluon's fused layer (the RNN cell is tanh: Gluon's default is relu)."""
    m = spec.model
    kwargs = dict(num_layers=num_layers, layout="TNC", dropout=m.dropout, bidirectional=m.bidirectional,
                  input_size=input_size, dtype=dtype)
    if m.cell == "rnn":
        return rnn.RNN(m.num_hiddens, activation="tanh", **kwargs)
    return {"lstm": rnn.LSTM, "gru": rnn.GRU}[m.cell](m.num_hiddens, **kwargs)


def uses_native_rnn_kernel(ctx, dtype: str) -> bool:
    """Whether MXNet runs its own CPU RNN kernel rather than oneDNN's (float32 only).

    That kernel (1.9.1) returns zero gradients for every layer below the top one when
    the layer input needs no gradient (one-hot input): apache/mxnet#17898. A stack of
    single-layer fused layers avoids it.
    """
    if ctx.device_type != "cpu":
        return False
    onednn = mx.runtime.Features().is_enabled("MKLDNN") and os.environ.get("MXNET_USE_MKLDNN_RNN", "1") != "0"
    return dtype != "float32" or not onednn


class LayerStack(gluon.HybridBlock):
    """Single-layer fused layers, one per layer (dropout between, as the fused op):
    the same maths, state layout (layers*dirs, B, h) and call as one fused layer."""

    def __init__(self, spec: RunSpec, vocab_size: int, dtype: str):
        super().__init__()
        m = spec.model
        self._m, self._dtype = m, dtype
        self._layers = []
        with self.name_scope():
            for layer in range(m.num_layers):
                block = fused_layer(spec, 1, layer_input_size(m, vocab_size, layer), dtype)
                self.register_child(block, f"layer{layer}")
                self._layers.append(block)

    def begin_state(self, batch_size: int, ctx, dtype: str) -> list:
        shape = state_shape(self._m, batch_size)
        return [nd.zeros(shape, ctx=ctx, dtype=dtype) for _ in range(state_count(self._m))]

    def hybrid_forward(self, F, inputs, states):
        dirs, out, finals = self._m.num_directions, inputs, [[] for _ in states]
        for i, layer in enumerate(self._layers):
            if i > 0 and self._m.dropout > 0:
                out = F.Dropout(out, p=self._m.dropout)
            out, new = layer(out, [F.slice_axis(s, axis=0, begin=i * dirs, end=(i + 1) * dirs) for s in states])
            for final, state in zip(finals, new, strict=True):
                final.append(state)
        return out, [F.concat(*final, dim=0) for final in finals]

    def param(self, layer: int, direction: str, name: str):
        return getattr(self._layers[layer], f"{direction}0_{name}")


def recurrent_layer(spec: RunSpec, vocab_size: int, dtype: str, stacked: bool, library: bool = False):
    """The per-layer stack (see uses_native_rnn_kernel; and with dropout, which MXNet's
    fused CPU op ignores in training), else one fused multi-layer layer: Gluon's own
    (`library`: `rnn.LSTM/GRU/RNN`, which re-packs its parameters into the operator's
    buffer every call) or this project's on a single flat parameter buffer (FlatRNN)."""
    if (stacked or spec.model.dropout > 0) and spec.model.num_layers > 1:
        return LayerStack(spec, vocab_size, dtype)
    if library:
        return fused_layer(spec, spec.model.num_layers, layer_input_size(spec.model, vocab_size, 0), dtype)
    return FlatRNN(spec.model, vocab_size, dtype)


def rnn_params(block, model, vocab_size: int) -> dict:
    """Canonical recurrent name -> Gluon Parameter (stack, Gluon's fused layer) or
    FlatView (flat layer)."""
    if isinstance(block, FlatRNN):
        return block.views()
    if isinstance(block, LayerStack):
        return {rnn_key(layer, d, tensor): block.param(layer, GLUON_DIRS[d], gluon_name)
                for layer in range(model.num_layers) for d in range(model.num_directions)
                for tensor, gluon_name in GLUON_TENSORS.items()}
    return {rnn_key(layer, d, tensor): getattr(block, f"{GLUON_DIRS[d]}{layer}_{gluon_name}")
            for layer in range(model.num_layers) for d in range(model.num_directions)
            for tensor, gluon_name in GLUON_TENSORS.items()}


class Net(gluon.HybridBlock):
    """Token ids (B, T) and state -> logits (T, B, V) and the new state; the recurrent
    layer is Gluon's own with `library`, else FlatRNN (see recurrent_layer)."""

    def __init__(self, spec: RunSpec, vocab_size: int, dtype: str, stacked: bool, library: bool = False):
        super().__init__()
        m = spec.model
        self._vocab_size, self._dtype = vocab_size, dtype
        with self.name_scope():
            self.embed = nn.Embedding(vocab_size, m.embed_size, dtype=dtype) if m.input == "embedding" else None
            self.rnn = recurrent_layer(spec, vocab_size, dtype, stacked, library)
            self.dense = nn.Dense(vocab_size, flatten=False, in_units=m.num_hiddens * m.num_directions,
                                  dtype=dtype)

    def hybrid_forward(self, F, X, *state):
        ids = F.transpose(X)
        xs = self.embed(ids) if self.embed is not None else F.one_hot(ids, self._vocab_size, dtype=self._dtype)
        out, new_state = self.rnn(xs, list(state))
        return (self.dense(out), *new_state)


class LossNet(gluon.HybridBlock):
    """Mean softmax cross-entropy over all B*T tokens (d2l: `loss(...).mean()`) and the state."""

    def __init__(self, net: Net):
        super().__init__()
        with self.name_scope():
            self.net = net

    def hybrid_forward(self, F, X, Y, *state):
        logits, *new_state = self.net(X, *state)
        return (F.mean(token_nll(F, logits, F.transpose(Y))), *new_state)


def token_nll(F, logits, labels):
    """Per-token cross-entropy log(sum(exp(z - max))) - (z_y - max), as the reference.

    Not `F.log_softmax` (nor Gluon's SoftmaxCrossEntropyLoss, built on it): MXNet's
    float32 CPU kernel is ~15x less accurate (1.5e-6 relative vs 9e-8 composed), enough
    to push a 20-step float32 trajectory off the reference. The max is a constant shift
    the loss does not depend on, so no gradient flows through it.
    """
    shifted = F.broadcast_sub(logits, F.stop_gradient(F.max(logits, axis=-1, keepdims=True)))
    return F.log(F.sum(F.exp(shifted), axis=-1)) - F.pick(shifted, labels, axis=-1)


class BookLoss(gluon.loss.Loss):
    """Gluon's `SoftmaxCrossEntropyLoss()` (sparse labels) as the book calls it, computed
    by `token_nll` for its accuracy; per-example losses, the caller takes the mean."""

    def __init__(self):
        super().__init__(weight=None, batch_axis=0)

    def hybrid_forward(self, F, pred, label):
        return token_nll(F, pred, label)


class BookNet(gluon.Block):
    """d2l 0.17's MXNet `RNNModel`: one-hot of `inputs.T`, the layer, Dense on (T*B, h).
    The layer is the book's, Gluon's `rnn.LSTM/GRU/RNN` (a stack of single-layer ones
    only where MXNet's native CPU kernel would give wrong gradients, see
    uses_native_rnn_kernel), never this project's FlatRNN."""

    def __init__(self, spec: RunSpec, vocab_size: int, dtype: str, stacked: bool):
        super().__init__()
        m = spec.model
        self.vocab_size, self._dtype = vocab_size, dtype
        with self.name_scope():
            self.embed = nn.Embedding(vocab_size, m.embed_size, dtype=dtype) if m.input == "embedding" else None
            self.rnn = recurrent_layer(spec, vocab_size, dtype, stacked, library=True)
            self.dense = nn.Dense(vocab_size, in_units=m.num_hiddens * m.num_directions, dtype=dtype)

    def forward(self, inputs, state):
        X = self.embed(inputs.T) if self.embed is not None else nd.one_hot(inputs.T, self.vocab_size,
                                                                           dtype=self._dtype)
        Y, state = self.rnn(X, state)
        return self.dense(Y.reshape((-1, Y.shape[-1]))), state
