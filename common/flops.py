"""Model FLOPs per token, the yardstick for utilisation.

Forward, per token, counting a multiply-add as 2 FLOPs and only the matrix products
(elementwise gate maths is O(G*h), under 1% at the book's sizes):

    sum over layers and directions of  2 * G*h * (in_l + h)     (input and hidden projections)
    + 2 * V * h*D                                                (dense output layer)

with G gate blocks (LSTM 4, GRU 3, RNN 1), h hidden units, D directions, in_0 = V for
one-hot input (the frameworks multiply the materialised one-hot matrix, so that is the
work they do) or the embedding size, in_l = h*D above.

Training counts the products the model needs (the MFU convention of PaLM, appendix B):
the forward products, the weight gradient of each (one product each), and the input
gradient of each (one product each) except the first layer's input product when the
input is one-hot ids, whose gradient nothing needs (XLA drops it, the written-out
PyTorch layers skip it). So training = 3 x forward - 2 * G*h * V * D for one-hot input.
Generation is forward only. The recurrent layers alone (the micro-benchmarks'
`recurrent` kind) count the same way over their share of the forward pass.
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


def unneeded_input_grad_flops(model: ModelSpec, vocab_size: int) -> int:
    """The first layer's input-gradient product for one-hot input: nothing needs it."""
    return 2 * model.gates * model.num_hiddens * vocab_size * model.num_directions if model.input == "one_hot" else 0


def train_flops_per_token(model: ModelSpec, vocab_size: int) -> int:
    return 3 * forward_flops_per_token(model, vocab_size) - unneeded_input_grad_flops(model, vocab_size)


def recurrent_train_flops_per_token(model: ModelSpec, vocab_size: int) -> int:
    """The recurrent layers' forward and backward alone (the `recurrent` micro-benchmark)."""
    return 3 * recurrent_forward_flops_per_token(model, vocab_size) - unneeded_input_grad_flops(model, vocab_size)
