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


@pytest.mark.parametrize("mode", ["eager", "compile", "book"])
def test_every_mode_trains_like_the_reference(backend, mode):
    params = init_params(SPEC.model, V, seed=0)
    model = backend.build(SPEC, V, "cpu", params, mode)
    stats = model.train_epoch(batches())
    losses, final = reference.train_trajectory(
        {k: v.astype(np.float64) for k, v in params.items()}, SPEC.model, SPEC.train, batches())
    assert stats.loss_sum / stats.tokens == pytest.approx(np.mean(losses), rel=1e-5)
    got = model.get_params()
    assert max(np.abs(got[k] - final[k]).max() for k in final) < 1e-4


def test_unknown_mode_lists_the_modes(backend):
    with pytest.raises(SpecError, match="eager, compile, book"):
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
