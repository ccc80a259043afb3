"""Model FLOPs per token, the yardstick for utilisation.

Forward, per token, counting a multiply-add as 2 FLOPs and only the matrix products
(elementwise gate maths is O(G*h), under 1% at the book's sizes):

    sum over layers and directions of  2 * G*h * (in_l + h)     (input and hidden projections)
    + 2 * V * h*D                                                (dense output layer)

with G gate blocks (LSTM 4, GRU 3, RNN 1), h hidden units, D directions, in_0 = V for
one-hot input (the frameworks multiply the materialised one-hot matrix, so that is the
work they do) or the embedding size, in_l = h*D above. Training is forward + backward,
the backward pass costing two products for each forward one (gradients of inputs and
of weights): 3 x forward. Generation is forward only. The recurrent layers alone
(the micro-benchmarks' `recurrent` kind) count 3 x their share of the forward pass.
"""

from __future__ import annotations

from common.params import layer_input_size
from common.specs import ModelSpec


def recurrent_forward_flops_per_token(model: ModelSpec, vocab_size: int) -> int:
    """The recurrent layers' share of the forward pass (the first sum above)."""
    gh, h, D = model.gates * model.num_hiddens, model.num_hiddens, model.num_directions
    return sum(2 * gh * (layer_input_size(model, vocab_size, layer) + h) * D for layer in range(model.num_layers))


def forward_flops_per_token(model: ModelSpec, vocab_size: int) -> int:
    dense = 2 * vocab_size * model.num_hiddens * model.num_directions
    return recurrent_forward_flops_per_token(model, vocab_size) + dense


def train_flops_per_token(model: ModelSpec, vocab_size: int) -> int:
    return 3 * forward_flops_per_token(model, vocab_size)
