"""A fused recurrent layer whose weights live in ONE flat Gluon Parameter, laid out as
MXNet's fused `RNN` operator reads them, and canonical views into it.

Why: Gluon's `rnn.LSTM`/`GRU`/`RNN` keep one Parameter per tensor and, on every call,
concatenate them all into the operator's flat buffer (`_rnn_param_concat`) and split
the gradient back, a sizeable share of a training step (docs/performance.md). Here the operator
reads the Parameter itself, so a step does no re-packing; the trainer and clipping
work on the flat buffer, and `FlatView`s (slices of it, no copies) give the canonical
tensors to get/set parameters and read gradients.
"""

from __future__ import annotations

from backends.mxnet_gluon._environment import gluon, mx, nd
from common.params import layer_input_size, rnn_key
from common.specs import ModelSpec
from common.state import state_count, state_shape

OP_MODES = {"lstm": "lstm", "gru": "gru", "rnn": "rnn_tanh"}


def flat_layout(m: ModelSpec, vocab_size: int) -> dict[str, tuple[int, tuple[int, ...]]]:
    """Canonical recurrent tensor name -> (offset, shape) in the operator's buffer:
    all weights (layer, direction, w_ih then w_hh), then all biases (b_ih, b_hh), each
    a row-major block, gates in cuDNN's order (the canonical order too)."""
    gh, h, out, offset = m.gates * m.num_hiddens, m.num_hiddens, {}, 0
    for kind in ("w", "b"):
        for layer in range(m.num_layers):
            for d in range(m.num_directions):
                for src, width in (("ih", layer_input_size(m, vocab_size, layer)), ("hh", h)):
                    shape = (gh, width) if kind == "w" else (gh,)
                    out[rnn_key(layer, d, f"{kind}_{src}")] = (offset, shape)
                    offset += gh * (width if kind == "w" else 1)
    return out


class _UniformWeightsZeroBiases(mx.init.Initializer):
    """Gluon's defaults for its fused layers: weights U(-0.07, 0.07), biases zero."""

    def __init__(self, bias_start: int):
        super().__init__()
        self._bias_start = bias_start

    def _init_weight(self, _, arr):
        arr[:] = nd.random.uniform(-0.07, 0.07, shape=arr.shape, dtype=arr.dtype, ctx=arr.context)
        arr[self._bias_start:] = 0

    _init_default = _init_weight


class FlatRNN(gluon.HybridBlock):
    """The fused multi-layer `RNN` operator on one flat Parameter (`flat`): the same
    maths, state layout (layers*dirs, B, h) and call `(inputs, states)` as Gluon's
    fused layer with layout TNC."""

    def __init__(self, m: ModelSpec, vocab_size: int, dtype: str):
        super().__init__()
        self._m = m
        self.layout = flat_layout(m, vocab_size)
        last_offset, last_shape = list(self.layout.values())[-1]
        size = last_offset + last_shape[0]
        bias_start = self.layout[rnn_key(0, 0, "b_ih")][0]
        with self.name_scope():
            self.flat = self.params.get("flat", shape=(size,), dtype=dtype,
                                        init=_UniformWeightsZeroBiases(bias_start))

    def begin_state(self, batch_size: int, ctx, dtype: str) -> list:
        shape = state_shape(self._m, batch_size)
        return [nd.zeros(shape, ctx=ctx, dtype=dtype) for _ in range(state_count(self._m))]

    def hybrid_forward(self, F, inputs, states, flat):
        m = self._m
        out = F.RNN(inputs, flat, *states, state_size=m.num_hiddens, num_layers=m.num_layers,
                    mode=OP_MODES[m.cell], bidirectional=m.bidirectional, p=m.dropout, state_outputs=True)
        return out[0], list(out[1:])

    def views(self) -> dict[str, "FlatView"]:
        """Canonical name -> view of its block of `flat`, in canonical order (per layer
        and direction: w_ih, w_hh, b_ih, b_hh)."""
        m, order = self._m, ("w_ih", "w_hh", "b_ih", "b_hh")
        names = [rnn_key(layer, d, t) for layer in range(m.num_layers) for d in range(m.num_directions) for t in order]
        return {name: FlatView(self.flat, *self.layout[name]) for name in names}


class FlatView:
    """One canonical tensor inside a flat Parameter, with the Parameter calls the model
    uses (`data`, `grad`, `set_data`); reads and writes go through slices, no copies."""

    def __init__(self, param: gluon.Parameter, offset: int, shape: tuple[int, ...]):
        self._param, self._begin, self.shape = param, offset, shape
        self._end = offset + (shape[0] * shape[1] if len(shape) == 2 else shape[0])

    def data(self, ctx=None):
        return self._param.data(ctx)[self._begin:self._end].reshape(self.shape)

    def grad(self, ctx=None):
        return self._param.grad(ctx)[self._begin:self._end].reshape(self.shape)

    def set_data(self, value) -> None:
        for arr in self._param.list_data():
            arr[self._begin:self._end] = value.reshape((-1,)).as_in_context(arr.context)
