"""The recurrent state's shape, one definition for the reference and every backend.

A state is a tuple of arrays (h,) or, for the LSTM, (h, c), each shaped
(num_layers * num_directions, batch, num_hiddens): cuDNN's layout, which PyTorch and
MXNet use natively and the numpy reference and the JAX backend follow.
"""

from __future__ import annotations

from common.specs import ModelSpec


def state_shape(model: ModelSpec, batch: int) -> tuple[int, int, int]:
    return (model.num_layers * model.num_directions, batch, model.num_hiddens)


def state_count(model: ModelSpec) -> int:
    """Arrays in a state: 2 (h and c) for the LSTM, 1 (h) otherwise."""
    return 2 if model.cell == "lstm" else 1
