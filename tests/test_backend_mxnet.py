"""MXNet-only behaviour: its three modes agree with each other and with the numpy
reference, its device and mode errors, and the message when numpy is too new.

The shared parity suite (test_parity.py) covers the default mode; this module covers
the other modes, float64 through the per-layer stack that works around MXNet's native
CPU kernel, and MXNet's own inputs. Skipped when MXNet cannot be imported here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backends import load_backend
from common import reference
from common.errors import BackendUnavailable, DeviceUnavailable, SpecError
from common.params import init_params
from common.specs import ModelSpec, RunSpec, TrainSpec

try:
    BACKEND = load_backend("mxnet", threads=1)
except BackendUnavailable as exc:  # no mxnet, or numpy too new for it
    pytest.skip(str(exc), allow_module_level=True)

from backends.mxnet_gluon import mx, nets, optim  # noqa: E402
from backends.mxnet_gluon._framework import gluon  # noqa: E402

VOCAB, BATCH, STEPS = 7, 3, 5
REPO = Path(__file__).resolve().parents[1]


def make_spec(cell="lstm", layers=2, bidirectional=False, dtype="float32", **train) -> RunSpec:
    model = ModelSpec(cell=cell, num_layers=layers, num_hiddens=8, bidirectional=bidirectional)
    defaults = dict(batch_size=BATCH, num_steps=STEPS, lr=1.0, clip=1.0, epochs=1, dtype=dtype)
    return RunSpec(model=model, train=TrainSpec(**{**defaults, **train}))


def batches(seed: int, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.RandomState(seed)
    out = []
    for _ in range(count):
        X = rng.randint(0, VOCAB, (BATCH, STEPS)).astype(np.int32)
        out.append((X, (X + 1) % VOCAB))
    return out


def as64(params):
    return {k: v.astype(np.float64) for k, v in params.items()}


def step_losses(spec: RunSpec, params, mode: str, data) -> list[float]:
    model = BACKEND.build(spec, VOCAB, "cpu", params, mode=mode)
    return [model.train_epoch([b]).loss_sum / b[1].size for b in data]


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_modes_agree_with_each_other_and_the_reference(cell):
    """Eight clipped SGD steps (state reset each batch) in every mode: hybridizing
    changes nothing, bit for bit; the book's host-side clipping factor rounds apart."""
    spec = make_spec(cell, sampling="random", lr=2.0)
    params = init_params(spec.model, VOCAB, seed=1)
    data = batches(2, 8)
    want, _ = reference.train_trajectory(as64(params), spec.model, spec.train, data)
    got = {mode: step_losses(spec, params, mode, data) for mode in BACKEND.modes}
    for mode, losses in got.items():
        assert reference.relative_error(losses, want) <= 1e-5, mode
    assert got["hybridized"] == got["imperative"]
    assert reference.relative_error(got["book"], got["imperative"]) <= 1e-6


@pytest.mark.parametrize("mode", ["imperative", "hybridized", "book"])
@pytest.mark.parametrize("optimizer,lr", [("sgd", 0.3), ("adam", 0.01)])
def test_float64_sequential_epoch_is_exact(mode, optimizer, lr):
    """float64 (MXNet's native kernel, run as a per-layer stack), state carried across
    batches, Adam with the reference's epsilon placement, hyperparameters that float32
    cannot hold (MXNet's optimizer kernels take float32 ones): equal to 1e-9."""
    spec = make_spec("lstm", 2, True, "float64", optimizer=optimizer, lr=lr)
    params = init_params(spec.model, VOCAB, seed=3, dtype="float64")
    data = batches(4, 4)
    model = BACKEND.build(spec, VOCAB, "cpu", params, mode=mode)
    stats = model.train_epoch(data)
    want, final = reference.train_trajectory(params, spec.model, spec.train, data)
    assert stats.tokens == 4 * BATCH * STEPS
    assert abs(stats.loss_sum / stats.tokens - np.mean(want)) / np.mean(want) <= 1e-9
    got = model.get_params()
    assert max(reference.relative_error(got[k], final[k]) for k in final) <= 1e-9


@pytest.mark.parametrize("mode", ["imperative", "book"])
def test_evaluate_predict_and_grads_in_other_modes(mode):
    spec = make_spec("gru", 2, True)
    params = init_params(spec.model, VOCAB, seed=5)
    model = BACKEND.build(spec, VOCAB, "cpu", params, mode=mode)
    X, Y = batches(6, 1)[0]
    ref_loss, ref_grads, _ = reference.loss_and_grads(as64(params), spec.model, X, Y)
    loss, grads = model.loss_and_grads(X, Y)
    assert abs(loss - ref_loss) / ref_loss <= 1e-5
    assert max(reference.relative_error(grads[k], ref_grads[k]) for k in ref_grads) <= 1e-4
    assert abs(model.evaluate([(X, Y)]).loss_sum / X.size - ref_loss) / ref_loss <= 1e-5
    assert model.predict([4, 0, 2], 6) == reference.predict(as64(params), spec.model, [4, 0, 2], 6)
    assert model.predict([1], 0) == []


def test_float64_params_round_trip_through_the_layer_stack():
    spec = make_spec("gru", 2, True, "float64")
    params = init_params(spec.model, VOCAB, seed=7, dtype="float64")
    model = BACKEND.build(spec, VOCAB, "cpu", params)
    assert isinstance(model.net.rnn, nets.LayerStack)
    got = model.get_params()
    for k in params:
        assert got[k].dtype == np.float64
        np.testing.assert_array_equal(got[k], params[k])


def test_clipping_scale_is_exactly_min_one_clip_over_norm():
    small = [mx.nd.array([[0.3, -0.4]]), mx.nd.array([0.0])]  # norm 0.5
    before = [g.asnumpy() for g in small]
    optim.clip_on_device(small, 1.0)
    for g, b in zip(small, before, strict=True):
        np.testing.assert_array_equal(g.asnumpy(), b)  # untouched, bit for bit
    big = [mx.nd.array([[3.0, -4.0]], dtype="float64"), mx.nd.array([12.0], dtype="float64")]  # norm 13
    optim.clip_on_device(big, 2.0)
    np.testing.assert_allclose(big[0].asnumpy(), [[3 * 2 / 13, -4 * 2 / 13]], rtol=1e-15)
    np.testing.assert_allclose(big[1].asnumpy(), [12 * 2 / 13], rtol=1e-15)


@pytest.mark.parametrize("clip,scale", [(2.0, 2 / 13), (20.0, 1.0), (0.0, 1.0)])
def test_fused_clipped_sgd_is_w_minus_lr_times_clipped_grad(clip, scale):
    """float32 SGD folds the clip into a device learning rate: w - lr * min(1, clip/13) * g
    for a gradient of norm 13, each array updated in place, the gradients untouched."""
    params = [gluon.Parameter(f"p{i}", shape=shape) for i, shape in enumerate([(1, 2), (1,)])]
    for p in params:
        p.initialize(mx.init.One(), ctx=mx.cpu())
    grads = [mx.nd.array([[3.0, -4.0]]), mx.nd.array([12.0])]
    weights = [p.data() for p in params]
    optim.ClippedSGD(params, lr=0.5, clip=clip)(grads)
    np.testing.assert_allclose(weights[0].asnumpy(), [[1 - 0.5 * scale * 3, 1 + 0.5 * scale * 4]], rtol=1e-6)
    np.testing.assert_allclose(weights[1].asnumpy(), [1 - 0.5 * scale * 12], rtol=1e-6)
    np.testing.assert_array_equal(grads[1].asnumpy(), [12.0])


def test_dropout_trains_and_evaluation_is_deterministic():
    spec = RunSpec(model=ModelSpec(num_layers=2, num_hiddens=8, dropout=0.5),
                   train=TrainSpec(batch_size=BATCH, num_steps=STEPS))
    for mode in BACKEND.modes:
        model = BACKEND.build(spec, VOCAB, "cpu", init_params(spec.model, VOCAB, seed=8), mode=mode)
        data = batches(9, 2)
        assert np.isfinite(model.train_epoch(data).loss_sum)
        assert model.evaluate(data) == model.evaluate(data)


def test_gpu_without_cuda_is_a_clear_error():
    if any(d.startswith("gpu") for d in BACKEND.devices()):
        pytest.skip("this machine's MXNet sees a GPU")
    with pytest.raises(DeviceUnavailable, match=r"MXNet sees no GPU.*--device cpu"):
        BACKEND.build(make_spec(), VOCAB, "gpu:0")


def test_unknown_mode_names_the_modes():
    with pytest.raises(SpecError, match="imperative, hybridized, book"):
        BACKEND.build(make_spec(), VOCAB, "cpu", mode="jit")


def test_bad_inputs_are_refused():
    spec = make_spec()
    params = init_params(spec.model, VOCAB, seed=1)
    model = BACKEND.build(spec, VOCAB, "cpu", params)
    X = np.full((BATCH, STEPS), VOCAB, dtype=np.int32)  # MXNet would one-hot it to zeros
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 7\)"):
        model.evaluate([(X, X)])
    with pytest.raises(ValueError, match="integers"):
        model.loss_and_grads(X.astype(np.float32), X.astype(np.float32))
    with pytest.raises(SpecError, match="dense.b"):
        model.set_params({**params, "dense.b": np.zeros(3, np.float32)})


def test_environment_describes_the_build():
    env = BACKEND.environment()
    assert env["framework"] == "mxnet" and env["version"] == mx.__version__
    assert env["numpy"] == np.__version__
    assert set(env["features"]) == {"mkldnn", "cuda", "cudnn", "blas"}
    assert env["threads"] >= 1 and BACKEND.devices()[0] == "cpu"


def test_numpy_too_new_names_the_fix():
    """numpy>=1.24 removed np.bool, which `import mxnet` uses: simulated in a fresh process."""
    code = (
        "import numpy; numpy.__deprecated_attrs__.pop('bool', None)\n"
        "from backends import load_backend\n"
        "from common.errors import BackendUnavailable\n"
        "try:\n    load_backend('mxnet', threads=1)\n"
        "except BackendUnavailable as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "numpy==1.23.5" in out.stdout and "nox -s bench-mxnet" in out.stdout, out.stdout + out.stderr


def test_cpu_build_runs_the_naive_engine_unless_the_user_chose(monkeypatch):
    """The engine is picked before MXNet starts and recorded in the environment."""
    from backends.mxnet_gluon import _framework

    assert not _framework._cuda_build()  # pip's mxnet 1.9.1 is CPU-only
    assert load_backend("mxnet", threads=1).environment()["engine"] == _framework.ENGINE
    monkeypatch.delenv("MXNET_ENGINE_TYPE", raising=False)
    assert _framework.choose_engine() == "NaiveEngine"
    monkeypatch.setenv("MXNET_ENGINE_TYPE", "ThreadedEngine")
    assert _framework.choose_engine() == "ThreadedEngine"  # the user's value wins
