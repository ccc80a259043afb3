"""MXNet Gluon backend: the framework d2l's deep-RNN chapter was first written in.

The model is MXNet's fused recurrent operator (`RNN`, layout TNC: oneDNN/MKLDNN on
CPU, cuDNN on GPU) between a one-hot or `nn.Embedding` input and a dense output
layer. Four modes (each with a track, backends.base.TRACKS) share the canonical
parameter mapping:
- `imperative` (tuned): the project's FlatRNN (the operator on one flat parameter
  buffer) and a fused clipped SGD update, the blocks run op by op;
- `hybridized` (tuned, default): the same, with the loss, compiled by
  `hybridize(static_alloc=True, static_shape=True)`;
- `gluon` (out-of-box): Gluon's own `rnn.LSTM/GRU/RNN`, hybridized the same way, a
  plain `gluon.Trainer` and `gluon.utils.clip_global_norm`;
- `book` (book): a re-creation of d2l 0.17's own MXNet `RNNModel` and
  `train_epoch_ch8` loop on Gluon's `rnn` layers (per-step `grad_clipping` and loss
  metric, each a host sync), so the harness can time the book's loop on the same
  machine. Same maths, same numbers.
The training loop of the first three never syncs with the host inside an epoch: the
global gradient norm, the clipping factor and the summed loss stay on the device.
"""

from backends.mxnet_gluon._environment import mx  # first: turns a failing `import mxnet` into one clear error
from backends.mxnet_gluon.backend import BACKEND, MXNetBackend

__all__ = ["BACKEND", "MXNetBackend", "mx"]
