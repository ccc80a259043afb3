"""MXNet Gluon backend: the framework d2l's deep-RNN chapter was first written in.

The model is Gluon's fused recurrent layer (`gluon.rnn.LSTM/GRU/RNN`, layout TNC:
oneDNN/MKLDNN on CPU, cuDNN on GPU) between a one-hot or `nn.Embedding` input and a
dense output layer. Three modes share the model and the canonical parameter mapping:
- `imperative`: the Gluon blocks run op by op;
- `hybridized`: the same blocks, with the loss, compiled by
  `hybridize(static_alloc=True, static_shape=True)`;
- `book`: a re-creation of d2l 0.17's own MXNet `train_epoch_ch8` loop (per-step
  `grad_clipping` and loss metric, each a host sync), so the harness can time the
  book's loop on the same machine. Same maths, same numbers.
The training loop of the first two never syncs with the host inside an epoch: the
global gradient norm, the clipping factor and the summed loss stay on the device.
"""

from backends.mxnet_gluon._framework import mx  # first: turns a failing `import mxnet` into one clear error
from backends.mxnet_gluon.backend import BACKEND, MXNetBackend

__all__ = ["BACKEND", "MXNetBackend", "mx"]
