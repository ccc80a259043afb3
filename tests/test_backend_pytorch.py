"""PyTorch-only behaviour: every mode trains the same numbers; device errors."""

import numpy as np
import pytest

pytest.importorskip("torch")

from backends import load_backend  # noqa: E402
from common import reference  # noqa: E402
from common.errors import DeviceUnavailable, SpecError  # noqa: E402
from common.params import init_params  # noqa: E402
from common.specs import ModelSpec, RunSpec, TrainSpec  # noqa: E402

V = 7
SPEC = RunSpec(model=ModelSpec(cell="lstm", num_layers=2, num_hiddens=8),
               train=TrainSpec(batch_size=3, num_steps=5, lr=1.0, clip=1.0))


@pytest.fixture(scope="module")
def backend():
    return load_backend("pytorch", threads=1)


def batches(n=4):
    rng = np.random.RandomState(0)
    out = []
    for _ in range(n):
        X = rng.randint(0, V, (3, 5)).astype(np.int32)
        out.append((X, (X + 1) % V))
    return out


def spec_for(cell: str) -> RunSpec:
    return RunSpec(model=ModelSpec(cell=cell, num_layers=2, num_hiddens=8), train=SPEC.train)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("mode", ["eager", "nn", "compile", "book"])
def test_every_mode_trains_like_the_reference(backend, mode, cell):
    spec = spec_for(cell)
    params = init_params(spec.model, V, seed=0)
    model = backend.build(spec, V, "cpu", params, mode)
    stats = model.train_epoch(batches())
    losses, final = reference.train_trajectory(
        {k: v.astype(np.float64) for k, v in params.items()}, spec.model, spec.train, batches())
    assert stats.loss_sum / stats.tokens == pytest.approx(np.mean(losses), rel=1e-5)
    got = model.get_params()
    assert max(np.abs(got[k] - final[k]).max() for k in final) < 1e-4


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_eager_runs_gru_and_rnn_written_out_on_onednn(backend, cell):
    """On the CPU, eager's GRU/RNN is the hand-written recurrence, float32 steps on
    oneDNN (so the float32 parity tests exercise that path); `nn` keeps the library layer."""
    from torch import nn

    from backends.pytorch import recurrence

    assert recurrence.ONEDNN  # this build has oneDNN: the fast path is the tested one
    eager = backend.build(spec_for(cell), V, "cpu", None, "eager").net.rnn
    assert isinstance(eager, recurrence.StackedRecurrent)
    assert isinstance(backend.build(spec_for(cell), V, "cpu", None, "nn").net.rnn, (nn.GRU, nn.RNN))
    assert isinstance(backend.build(spec_for("lstm"), V, "cpu", None, "eager").net.rnn, nn.LSTM)


def test_written_out_layer_has_the_library_layers_parameters(backend):
    """Same names and shapes as nn.GRU, so state dicts and the canonical mapping carry over."""
    from torch import nn

    from backends.pytorch.recurrence import StackedRecurrent

    ours = StackedRecurrent("gru", 5, 4, 2, bidirectional=True)
    lib = nn.GRU(5, 4, 2, bidirectional=True)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in lib.state_dict().items()}


def test_unknown_mode_lists_the_modes(backend):
    with pytest.raises(SpecError, match="eager, nn, compile, book"):
        backend.build(SPEC, V, "cpu", None, "jit")


def test_gpu_without_cuda(backend):
    if backend.devices() != ["cpu"]:
        pytest.skip("this machine has a GPU")
    with pytest.raises(DeviceUnavailable, match="sees no GPU"):
        backend.build(SPEC, V, "gpu:0")
    with pytest.raises(DeviceUnavailable, match="not understood"):
        backend.build(SPEC, V, "tpu")


def test_framework_init_is_seeded(backend):
    a = backend.build(SPEC, V, "cpu", None).get_params()
    b = backend.build(SPEC, V, "cpu", None).get_params()
    np.testing.assert_array_equal(a["rnn.l0.fwd.w_ih"], b["rnn.l0.fwd.w_ih"])


def test_written_out_layer_applies_dropout_between_layers_only_in_training():
    import torch

    from backends.pytorch.recurrence import StackedRecurrent

    torch.manual_seed(0)
    layer = StackedRecurrent("gru", 5, 16, 2, dropout=0.5)
    x, h0 = torch.randn(4, 3, 5), torch.zeros(2, 3, 16)
    layer.eval()
    a, b = layer(x, h0)[0], layer(x, h0)[0]
    torch.testing.assert_close(a, b)  # deterministic without dropout
    layer.train()
    assert not torch.allclose(layer(x, h0)[0], a)  # the second layer sees dropped inputs
