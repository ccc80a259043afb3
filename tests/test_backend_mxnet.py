"""MXNet internals: its modes' bit-for-bit agreement, the float64 / dropout layer stack,
device clipping and the fused clipped SGD, the engine, and the message when numpy is too
new. Everything the interface promises is checked for every mode by tests/contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backends import load_backend
from common.errors import BackendUnavailable
from common.params import init_params
from common.specs import ModelSpec, RunSpec, TrainSpec

try:
    BACKEND = load_backend("mxnet", threads=1)
except BackendUnavailable as exc:  # no mxnet, or numpy too new for it
    pytest.skip(str(exc), allow_module_level=True)

from backends.mxnet_gluon import _environment, mx, nets, optim  # noqa: E402
from backends.mxnet_gluon._environment import gluon  # noqa: E402

VOCAB = 7
REPO = Path(__file__).resolve().parents[1]


def make_spec(cell="lstm", dtype="float32", dropout=0.0) -> RunSpec:
    return RunSpec(model=ModelSpec(cell=cell, num_layers=2, num_hiddens=8, bidirectional=True, dropout=dropout),
                   train=TrainSpec(batch_size=3, num_steps=5, lr=2.0, clip=1.0, sampling="random", dtype=dtype))


def test_hybridizing_changes_nothing_bit_for_bit():
    spec = make_spec("gru")
    params = init_params(spec.model, VOCAB, seed=1)
    rng = np.random.RandomState(2)
    data = [(X, (X + 1) % VOCAB) for X in (rng.randint(0, VOCAB, (3, 5)).astype(np.int32) for _ in range(4))]
    losses = {mode: [BACKEND.build(spec, VOCAB, "cpu", params, mode).train_epoch(data).loss_sum]
              for mode in ("imperative", "hybridized")}
    assert losses["imperative"] == losses["hybridized"]


@pytest.mark.parametrize("dtype,dropout,stacked", [("float32", 0.0, False), ("float64", 0.0, True),
                                                   ("float32", 0.5, True)])
def test_layer_stack_where_the_fused_op_falls_short(dtype, dropout, stacked):
    """float64 (the native CPU kernel's zero gradients, apache/mxnet#17898) and dropout
    (which the fused CPU op ignores) run as a stack of one-layer fused layers."""
    spec = make_spec(dtype=dtype, dropout=dropout)
    model = BACKEND.build(spec, VOCAB, "cpu", init_params(spec.model, VOCAB, seed=7, dtype=dtype))
    assert isinstance(model.net.rnn, nets.LayerStack) == stacked


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


def test_environment_describes_the_build():
    env = BACKEND.environment()
    assert env["version"] == mx.__version__ and env["numpy"] == np.__version__
    assert set(env["features"]) == {"mkldnn", "cuda", "cudnn", "blas"} and env["engine"] == _environment.ENGINE


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


@pytest.mark.parametrize("cuda", [False, True])
def test_engine_is_naive_on_cpu_builds_unless_the_user_chose(monkeypatch, cuda):
    """Picked before MXNet starts: NaiveEngine on a CPU-only build, MXNet's threaded
    default on a CUDA build; a value the user set wins on both."""
    monkeypatch.setattr(_environment, "_cuda_build", lambda: cuda)
    monkeypatch.delenv("MXNET_ENGINE_TYPE", raising=False)
    assert _environment.choose_engine() == ("ThreadedEnginePerDevice" if cuda else "NaiveEngine")
    monkeypatch.setenv("MXNET_ENGINE_TYPE", "ThreadedEngine")
    assert _environment.choose_engine() == "ThreadedEngine"


def test_out_of_box_track_is_gluon_alone(monkeypatch):
    """The out-of-box mode is Gluon's own rnn layer (not FlatRNN), hybridized, a plain
    gluon.Trainer and gluon.utils.clip_global_norm; the tuned (default) mode is FlatRNN
    with the fused clipped SGD; the book mode runs Gluon's rnn layer too."""
    assert BACKEND.track_modes() == {"out-of-box": "gluon", "tuned": "hybridized", "book": "book"}
    calls = []
    real = gluon.utils.clip_global_norm
    monkeypatch.setattr(gluon.utils, "clip_global_norm", lambda *a, **k: calls.append(1) or real(*a, **k))
    spec = RunSpec(model=ModelSpec(cell="lstm", num_layers=2, num_hiddens=8),
                   train=TrainSpec(batch_size=3, num_steps=5, lr=2.0, clip=1.0))
    X = np.random.RandomState(0).randint(0, VOCAB, (3, 5)).astype(np.int32)
    built = {track: BACKEND.build(spec, VOCAB, "cpu", None, mode) for track, mode in BACKEND.track_modes().items()}
    for model in built.values():
        model.train_epoch([(X, (X + 1) % VOCAB)])
    oob, tuned, book = built["out-of-box"], built["tuned"], built["book"]
    assert isinstance(oob.net.rnn, gluon.rnn.LSTM) and oob.loss_net._active
    assert isinstance(oob.update, optim.TrainerUpdate) and isinstance(oob.update.trainer, gluon.Trainer)
    assert calls == [1]  # only the out-of-box mode clipped through Gluon
    assert isinstance(tuned.net.rnn, nets.FlatRNN) and isinstance(tuned.update, optim.ClippedSGD)
    assert isinstance(book.net.rnn, gluon.rnn.LSTM)


def test_clip_norm_keeps_the_small_gradients():
    """Two million tiny gradients beside a few large ones (a 10k-word output layer): the
    clip scale within float32 rounding of float64's. One `multi_sum_sq` per array is
    4e-5 off here (its float32 sum swamps the small squares), and clipped PTB steps
    drifted by 1e-3; summed in pieces (`optim.pieces`) it is exact to rounding."""
    rng = np.random.RandomState(0)
    big = (rng.randn(10000, 200) * 1e-5).astype(np.float32)
    big[:5] = rng.randn(5, 200) * 0.05
    small = (rng.randn(300) * 1e-3).astype(np.float32)
    want = np.sqrt(sum((a.astype(np.float64) ** 2).sum() for a in (big, small)))
    grads = [mx.nd.array(big), mx.nd.array(small)]
    for _ in range(2):  # the pieces are made once, then reused: they must stay views
        scale = float(optim.clip_scale(grads, 0.01).asnumpy()[0])
        assert abs(scale - 0.01 / want) / (0.01 / want) < 1e-6
        grads[0][:] = grads[0] * 2
        want = np.sqrt(want**2 + 3 * (big.astype(np.float64) ** 2).sum())


def test_the_book_mode_starts_from_the_books_init():
    """d2l 0.17's train_ch8 re-initialises every model with init.Normal(0.01), biases
    zero: MXNet `book` draws its initial parameters that way (the record says
    `init_from_mode`; the spec stays the preset's), the tuned modes from the spec's."""
    from benchmarks.run.harness import RunRequest, build_model, mode_init
    from common.specs import load_preset

    backend = load_backend("mxnet", threads=1)
    spec = load_preset("quick-lstm")[0]
    book = RunRequest(backend="mxnet", spec=spec, mode="book")
    assert mode_init(backend, book) == "normal:0.01"
    params = build_model(backend, book, 28).get_params()
    biases = [v for k, v in params.items() if k.rsplit(".", 1)[-1].startswith("b")]
    assert biases and not any(b.any() for b in biases) and 0.008 < params["dense.w"].std() < 0.012
    tuned = build_model(backend, RunRequest(backend="mxnet", spec=spec, mode="hybridized"), 28).get_params()
    assert mode_init(backend, RunRequest(backend="mxnet", spec=spec)) == "" and tuned["dense.b"].any()
