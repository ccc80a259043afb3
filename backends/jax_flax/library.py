"""The `flax` mode's network: Flax's own recurrent cells in `nn.RNN`, and the exact map
between the canonical parameters (common.params) and Flax's layout.

What a Flax user writes from Flax's documentation: `nn.OptimizedLSTMCell` / `nn.GRUCell`
/ `nn.SimpleCell` in `nn.RNN` (batch-major), `nn.Bidirectional` for two directions,
`nn.Dropout` between layers, `nn.Embed` or a one-hot input, `nn.Dense` on top. No code
of this project runs inside the recurrence.

Flax's cells keep one bias where cuDNN has two, so the canonical cell maps in exactly:
- LSTM: per gate g in i,f,g,o: `i{g}.kernel = w_ih[g]^T` (no bias), `h{g}.kernel =
  w_hh[g]^T`, `h{g}.bias = b_ih[g] + b_hh[g]`;
- GRU: `ir.bias = b_ir + b_hr`, `iz.bias = b_iz + b_hz`, `in.bias = b_in`, `hn.bias = b_hn`
  (Flax's GRU has the canonical n gate, r * (W_hn h + b_hn)), `hr`, `hz` no bias;
- tanh RNN: `i.bias = b_ih + b_hh`, `h` no bias.
The map (`to_flax`) is applied inside the compiled step, so autodiff gives each of
b_ih and b_hh the merged bias's gradient, as the reference does; training updates the
canonical parameters (optax on them), so SGD and Adam move both biases as PyTorch and
MXNet do. Every canonical configuration maps; none is refused.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from common.params import DIRECTIONS
from common.specs import ModelSpec

CELLS = {"lstm": nn.OptimizedLSTMCell, "gru": nn.GRUCell, "rnn": nn.SimpleCell}
LSTM_GATES = "ifgo"  # the canonical (cuDNN) order of the LSTM's gate blocks


def cell_name(layer: int, direction: int) -> str:
    return f"l{layer}_{DIRECTIONS[direction]}"


class FlaxStack(nn.Module):
    """The recurrent layers: one `nn.RNN` (or `nn.Bidirectional`) per layer, dropout
    between layers. Inputs (B, T, in); carries per layer as `nn.RNN` takes them."""

    model: ModelSpec
    dtype: Any

    @nn.compact
    def __call__(self, xs, carries, train: bool):
        m, finals = self.model, []
        for layer in range(m.num_layers):
            rnns = [nn.RNN(CELLS[m.cell](m.num_hiddens, param_dtype=self.dtype, name=cell_name(layer, d)))
                    for d in range(m.num_directions)]
            run = nn.Bidirectional(*rnns) if m.bidirectional else rnns[0]
            carry, xs = run(xs, initial_carry=carries[layer], return_carry=True)
            finals.append(carry)
            if m.dropout > 0 and layer < m.num_layers - 1:
                xs = nn.Dropout(m.dropout, deterministic=not train)(xs)
        return xs, finals


class FlaxLM(nn.Module):
    """Token ids (B, T) and per-layer carries -> logits (B, T, V) and the final carries."""

    model: ModelSpec
    vocab_size: int
    dtype: Any

    @nn.compact
    def __call__(self, X, carries, train: bool = False):
        m = self.model
        if m.input == "embedding":
            xs = nn.Embed(self.vocab_size, m.embed_size, param_dtype=self.dtype, name="embed")(X)
        else:
            xs = jax.nn.one_hot(X, self.vocab_size, dtype=self.dtype)
        xs, finals = FlaxStack(m, self.dtype, name="rnn")(xs, carries, train)
        return nn.Dense(self.vocab_size, param_dtype=self.dtype, name="dense")(xs), finals


# ---- the canonical state <-> nn.RNN carries ---------------------------------------------

def to_carries(model: ModelSpec, state: tuple) -> list:
    """Canonical (h,) / (h, c), each (L*D, B, h) -> per layer a carry (LSTM: (c, h)), or
    a (forward, backward) pair of them for a bidirectional layer."""
    D = model.num_directions

    def one(k):
        return (state[1][k], state[0][k]) if model.cell == "lstm" else state[0][k]
    return [tuple(one(layer * D + d) for d in range(D)) if D > 1 else one(layer * D)
            for layer in range(model.num_layers)]


def from_carries(model: ModelSpec, carries: list) -> tuple:
    """The inverse of `to_carries`."""
    flat = [c for layer in carries for c in (layer if model.bidirectional else (layer,))]
    if model.cell == "lstm":
        return jnp.stack([h for _, h in flat]), jnp.stack([c for c, _ in flat])
    return (jnp.stack(flat),)


# ---- canonical parameters <-> Flax's -------------------------------------------------------

def _cell_to_flax(cell: str, w_ih, w_hh, b_ih, b_hh) -> dict:
    h = w_hh.shape[1]
    block = lambda a, j: a[j * h:(j + 1) * h]  # noqa: E731
    if cell == "rnn":
        return {"i": {"kernel": w_ih.T, "bias": b_ih + b_hh}, "h": {"kernel": w_hh.T}}
    if cell == "lstm":
        out = {}
        for j, g in enumerate(LSTM_GATES):
            out[f"i{g}"] = {"kernel": block(w_ih, j).T}
            out[f"h{g}"] = {"kernel": block(w_hh, j).T, "bias": block(b_ih, j) + block(b_hh, j)}
        return out
    out = {f"i{g}": {"kernel": block(w_ih, j).T, "bias": block(b_ih, j) + block(b_hh, j)}
           for j, g in enumerate("rz")}
    out.update({f"h{g}": {"kernel": block(w_hh, j).T} for j, g in enumerate("rz")})
    out["in"] = {"kernel": block(w_ih, 2).T, "bias": block(b_ih, 2)}
    out["hn"] = {"kernel": block(w_hh, 2).T, "bias": block(b_hh, 2)}
    return out


def to_flax(model: ModelSpec, params: dict) -> dict:
    """Nested canonical parameters -> Flax's `params` collection for `FlaxLM`."""
    out = {"dense": {"kernel": params["dense"]["w"].T, "bias": params["dense"]["b"]}, "rnn": stack_to_flax(
        model, params["rnn"])}
    if model.input == "embedding":
        out["embed"] = {"embedding": params["embed"]["w"]}
    return out


def stack_to_flax(model: ModelSpec, rnn: dict) -> dict:
    """The canonical `rnn` subtree -> `FlaxStack`'s parameters."""
    out = {}
    for layer in range(model.num_layers):
        for d in range(model.num_directions):
            p = rnn[f"l{layer}"][DIRECTIONS[d]]
            out[cell_name(layer, d)] = _cell_to_flax(model.cell, p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"])
    return out


def _cell_from_flax(cell: str, f: dict) -> dict:
    """Flax's cell -> canonical; a merged bias goes to b_ih and b_hh gets zeros (exact
    for Flax's initialisation, whose biases are zeros)."""
    if cell == "rnn":
        return {"w_ih": f["i"]["kernel"].T, "w_hh": f["h"]["kernel"].T,
                "b_ih": f["i"]["bias"], "b_hh": jnp.zeros_like(f["i"]["bias"])}
    if cell == "lstm":
        gates = LSTM_GATES
        b_ih = jnp.concatenate([f[f"h{g}"]["bias"] for g in gates])
        b_hh = jnp.zeros_like(b_ih)
    else:
        gates = "rzn"
        zeros = jnp.zeros_like(f["in"]["bias"])
        b_ih = jnp.concatenate([f["ir"]["bias"], f["iz"]["bias"], f["in"]["bias"]])
        b_hh = jnp.concatenate([zeros, zeros, f["hn"]["bias"]])
    return {"w_ih": jnp.concatenate([f[f"i{g}"]["kernel"].T for g in gates]),
            "w_hh": jnp.concatenate([f[f"h{g}"]["kernel"].T for g in gates]), "b_ih": b_ih, "b_hh": b_hh}


def from_flax(model: ModelSpec, flax_params: dict) -> dict:
    """Flax's `params` collection (its own initialisation) -> nested canonical parameters."""
    rnn = {f"l{layer}": {DIRECTIONS[d]: _cell_from_flax(model.cell, flax_params["rnn"][cell_name(layer, d)])
                         for d in range(model.num_directions)} for layer in range(model.num_layers)}
    out = {"rnn": rnn, "dense": {"w": flax_params["dense"]["kernel"].T, "b": flax_params["dense"]["bias"]}}
    if model.input == "embedding":
        out["embed"] = {"w": flax_params["embed"]["embedding"]}
    return out
