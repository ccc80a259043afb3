"""PyTorch internals: the written-out GRU/RNN layers (recurrence.py). Everything the
interface promises is checked for every mode by tests/contract."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from backends import load_backend  # noqa: E402
from backends.pytorch import recurrence  # noqa: E402
from backends.pytorch.recurrence import StackedRecurrent  # noqa: E402
from common.specs import ModelSpec, RunSpec  # noqa: E402


def spec_for(cell: str) -> RunSpec:
    return RunSpec(model=ModelSpec(cell=cell, num_layers=2, num_hiddens=8))


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_eager_runs_gru_and_rnn_written_out(cell):
    """On the CPU, eager's GRU/RNN is the hand-written recurrence, its float32 products on
    oneDNN where this build has it (so the float32 contract tests exercise that path);
    `nn` keeps the library layer, and the LSTM is always the library's."""
    backend = load_backend("pytorch", threads=1)
    eager = backend.build(spec_for(cell), 7, "cpu", None, "eager").net.rnn
    assert isinstance(eager, StackedRecurrent)
    assert isinstance(backend.build(spec_for(cell), 7, "cpu", None, "nn").net.rnn, (nn.GRU, nn.RNN))
    assert isinstance(backend.build(spec_for("lstm"), 7, "cpu", None, "eager").net.rnn, nn.LSTM)
    has_onednn = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    assert recurrence.PackedLinear(torch.ones(4, 4)).onednn == has_onednn
    assert not recurrence.PackedLinear(torch.ones(4, 4, dtype=torch.float64)).onednn


def test_written_out_layer_has_the_library_layers_parameters():
    """Same names and shapes as nn.GRU, so state dicts and the canonical mapping carry over."""
    ours = StackedRecurrent("gru", 5, 4, 2, bidirectional=True)
    lib = nn.GRU(5, 4, 2, bidirectional=True)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in lib.state_dict().items()}


def test_written_out_layer_applies_dropout_between_layers_only_in_training():
    torch.manual_seed(0)
    layer = StackedRecurrent("gru", 5, 16, 2, dropout=0.5)
    x, h0 = torch.randn(4, 3, 5), torch.zeros(2, 3, 16)
    layer.eval()
    a, b = layer(x, h0)[0], layer(x, h0)[0]
    torch.testing.assert_close(a, b)  # deterministic without dropout
    layer.train()
    assert not torch.allclose(layer(x, h0)[0], a)  # the second layer sees dropped inputs


def _step_counts(backend, mode: str, cell: str, monkeypatch) -> dict[str, int]:
    """Which clipping and optimizer one training epoch of `mode` calls."""
    calls = {"clip_grad_norm_": 0}
    real = nn.utils.clip_grad_norm_

    def counting(*args, **kwargs):
        calls["clip_grad_norm_"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(nn.utils, "clip_grad_norm_", counting)
    spec = spec_for(cell)
    model = backend.build(spec, 7, "cpu", None, mode)
    X = torch.randint(0, 7, (spec.train.batch_size, spec.train.num_steps)).numpy().astype("int32")
    model.train_epoch([(X, X)])
    calls["library_layer"] = isinstance(model.net.rnn, (nn.LSTM, nn.GRU, nn.RNN))
    calls["torch_optim"] = isinstance(model.opt, torch.optim.Optimizer)
    return calls


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_out_of_box_track_is_the_library_alone(cell, monkeypatch):
    """The out-of-box mode is nn.LSTM/GRU + torch.optim + clip_grad_norm_; the tuned
    (default) mode is not (the project's clipping, and on the CPU its GRU/RNN)."""
    backend = load_backend("pytorch", threads=1)
    tracks = backend.track_modes()
    assert tracks == {"out-of-box": "nn", "tuned": "eager", "book": "book"}
    out_of_box = _step_counts(backend, tracks["out-of-box"], cell, monkeypatch)
    assert out_of_box == {"clip_grad_norm_": 1, "library_layer": True, "torch_optim": True}
    tuned = _step_counts(backend, tracks["tuned"], cell, monkeypatch)
    assert tuned["clip_grad_norm_"] == 0 and tuned["library_layer"] == (cell == "lstm")
    assert backend.track_of(backend.default_mode) == "tuned"


def test_clip_norm_keeps_the_small_gradients():
    """Two million tiny gradients beside a few large ones (a 10k-word output layer): the
    global norm within float32 rounding of float64's. A one-pass float32 norm
    (`torch._foreach_norm`) is 4e-5 off here, and clipped PTB steps drifted by 7e-4."""
    from backends.pytorch.model import global_norm

    load_backend("pytorch", threads=1)  # one float32 accumulator: the worst case, and the tests' setting

    rng = np.random.RandomState(0)
    big = (rng.randn(10000, 200) * 1e-5).astype(np.float32)
    big[:5] = rng.randn(5, 200) * 0.05
    small = (rng.randn(300) * 1e-3).astype(np.float32)
    want = np.sqrt(sum((a.astype(np.float64) ** 2).sum() for a in (big, small)))
    got = float(global_norm([torch.from_numpy(big), torch.from_numpy(small)]))
    assert abs(got - want) / want < 1e-6
