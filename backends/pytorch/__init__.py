"""PyTorch backend: `torch.nn.LSTM` (oneDNN on CPU, cuDNN on GPU), and GRU/RNN layers
that are `torch.nn.GRU/RNN` on a GPU and this package's `recurrence` on the CPU.

PyTorch's layers use the canonical cuDNN layout natively, so parameters map one to one
(`weight_ih_l{k}[_reverse]` <-> `rnn.l{k}.{fwd,bwd}.w_ih`).

Modes (each with a track, see backends.base.TRACKS, and a one-line description in
backend.MODES):
- `eager` (default, track `tuned`): the loss is summed on the device and clipping
  scales by a device tensor, so a training step never waits for the host; one sync per
  epoch. On the CPU, GRU and RNN layers are `recurrence.StackedRecurrent` (PyTorch has
  no fused CPU kernel for them; hand-written BPTT with oneDNN matmuls, faster than
  `nn`'s: see docs/performance.md); the LSTM is `nn.LSTM`, whose fused oneDNN kernel is
  the fastest thing PyTorch has for it.
- `nn` (track `out-of-box`): `nn.LSTM/GRU/RNN` + `torch.optim` +
  `torch.nn.utils.clip_grad_norm_`: what the library alone gives, as its docs teach.
- `compile` (track `tuned`): as `nn` with the project's device-side clipping, with the
  forward pass and loss under `torch.compile` (inductor); the RNN layer itself stays an
  opaque library call, so only the one-hot, output layer and loss around it are
  compiled. Compilation is warm-up.
- `book` (track `book`): d2l 0.17's own `train_epoch_ch8` loop (per-step `float(loss)` for the
  metric, `grad_clipping` that compares the norm on the host) with `nn` layers, the
  baseline the book timed. Same maths, so the same numbers.
"""

from backends.pytorch.backend import BACKEND, TorchBackend

__all__ = ["BACKEND", "TorchBackend"]
