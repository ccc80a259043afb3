"""Model FLOPs per token, the yardstick for utilisation.

Forward, per token, counting a multiply-add as 2 FLOPs and only the matrix products
(elementwise gate maths is O(G*h), under 1% at the book's sizes):

    sum over layers and directions of  2 * G*h * (in_l + h)     (input and hidden projections)
    + 2 * V * h*D                                                (dense output layer)

with G gate blocks (LSTM 4, GRU 3, RNN 1), h hidden units, D directions, in_0 = V for
one-hot input (the frameworks multiply the materialised one-hot matrix, so that is the
work they do) or the embedding size, in_l = h*D above. Training is forward + backward,
the backward pass costing two products for each forward one (gradients of inputs and
of weights): 3 x forward. Generation is forward only.
"""

from __future__ import annotations

from common.params import layer_input_size
from common.specs import ModelSpec


def forward_flops_per_token(model: ModelSpec, vocab_size: int) -> int:
    gh, h, D = model.gates * model.num_hiddens, model.num_hiddens, model.num_directions
    recurrent = sum(2 * gh * (layer_input_size(model, vocab_size, layer) + h) * D
                    for layer in range(model.num_layers))
    return recurrent + 2 * vocab_size * h * D


def train_flops_per_token(model: ModelSpec, vocab_size: int) -> int:
    return 3 * forward_flops_per_token(model, vocab_size)
