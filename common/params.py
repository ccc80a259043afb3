"""Canonical parameters: one framework-free layout every backend loads and exports.

The layout is cuDNN's (PyTorch and MXNet use it natively): for each layer `l` and
direction (`fwd`, `bwd`), `w_ih (G*h, in)`, `w_hh (G*h, h)`, `b_ih (G*h)`, `b_hh (G*h)`
with gate blocks i,f,g,o (LSTM), r,z,n (GRU) or one block (tanh RNN); then the output
layer `dense.w (V, h*dirs)`, `dense.b (V)`; `embed.w (V, e)` first when the input is an
embedding. Initial values come from one seeded numpy draw (in float64, then cast), so
every framework, and both dtypes, start from the same point.
"""

from __future__ import annotations

import numpy as np

from common.errors import SpecError
from common.specs import ModelSpec

Params = dict[str, np.ndarray]
DIRECTIONS = ("fwd", "bwd")


def rnn_key(layer: int, direction: int, tensor: str) -> str:
    return f"rnn.l{layer}.{DIRECTIONS[direction]}.{tensor}"


def layer_input_size(model: ModelSpec, vocab_size: int, layer: int) -> int:
    if layer > 0:
        return model.num_hiddens * model.num_directions
    return model.embed_size if model.input == "embedding" else vocab_size


def param_shapes(model: ModelSpec, vocab_size: int) -> dict[str, tuple[int, ...]]:
    """Names and shapes, in the canonical order."""
    h, gh = model.num_hiddens, model.gates * model.num_hiddens
    shapes: dict[str, tuple[int, ...]] = {}
    if model.input == "embedding":
        shapes["embed.w"] = (vocab_size, model.embed_size)
    for layer in range(model.num_layers):
        n_in = layer_input_size(model, vocab_size, layer)
        for d in range(model.num_directions):
            shapes[rnn_key(layer, d, "w_ih")] = (gh, n_in)
            shapes[rnn_key(layer, d, "w_hh")] = (gh, h)
            shapes[rnn_key(layer, d, "b_ih")] = (gh,)
            shapes[rnn_key(layer, d, "b_hh")] = (gh,)
    shapes["dense.w"] = (vocab_size, h * model.num_directions)
    shapes["dense.b"] = (vocab_size,)
    return shapes


def init_params(model: ModelSpec, vocab_size: int, seed: int, dtype: str = "float32") -> Params:
    """Seeded initial parameters.

    `uniform` (PyTorch's default): recurrent tensors U(+-1/sqrt(h)), output layer
    U(+-1/sqrt(fan_in)), embedding N(0, 1); with `init_scale` s > 0, U(-s, s) for every
    parameter, embedding and biases included (Zaremba et al.). `normal` or `normal:S` (the book's MXNet
    code, `init.Normal(0.01)`): weights N(0, S), S 0.01 by default, biases zero. `framework` has no canonical
    draw: each backend keeps its own initialisation, so it is refused here.
    """
    if model.init == "framework":
        raise SpecError("init='framework' keeps each framework's own initialisation; no canonical draw")
    rng = np.random.RandomState(seed)
    params: Params = {}
    for name, shape in param_shapes(model, vocab_size).items():
        params[name] = _draw(rng, model, name, shape).astype(dtype)
    return params


def _draw(rng: np.random.RandomState, model: ModelSpec, name: str, shape: tuple[int, ...]) -> np.ndarray:
    is_bias = name.rsplit(".", 1)[-1].startswith("b")
    if model.init.split(":")[0] == "normal":
        return np.zeros(shape) if is_bias else rng.normal(0.0, model.init_std, size=shape)
    if model.init_scale:
        return rng.uniform(-model.init_scale, model.init_scale, size=shape)
    if name == "embed.w":
        return rng.normal(0.0, 1.0, size=shape)
    fan_in = model.num_hiddens * (model.num_directions if name.startswith("dense") else 1)
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape)


def check_params(params: Params, model: ModelSpec, vocab_size: int) -> None:
    """Raise SpecError unless `params` has exactly the canonical names and shapes."""
    expected = param_shapes(model, vocab_size)
    missing, extra = set(expected) - set(params), set(params) - set(expected)
    if missing or extra:
        raise SpecError(f"parameters do not fit the spec: missing {sorted(missing)}, unexpected {sorted(extra)}")
    for name, shape in expected.items():
        if tuple(params[name].shape) != shape:
            raise SpecError(f"parameter {name} has shape {tuple(params[name].shape)}, expected {shape}")


def num_params(params: Params) -> int:
    return int(sum(p.size for p in params.values()))
