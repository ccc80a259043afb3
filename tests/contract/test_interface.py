"""The interface's promises that are not numbers: refused inputs, modes, devices,
parameters, framework initialisation, dropout only in training, an honest clock."""

from __future__ import annotations

import dataclasses
import math
import os
import time

import numpy as np
import pytest

from backends.base import TRACKS
from common import reference
from common.errors import DeviceUnavailable, SpecError
from common.params import init_params, param_shapes
from contract.cases import DTYPES, VOCAB, as64, batches, make_spec, skip_excepted, worst_error

RANGE = r"token ids must lie in \[0, 7\)"


@pytest.fixture
def model(backend, mode):
    spec = make_spec("gru")
    return backend.build(spec, VOCAB, "cpu", init_params(spec.model, VOCAB, seed=1), mode)


def test_predict_edge_cases(model):
    assert model.predict([1, 2], 0) == []
    with pytest.raises(ValueError, match="non-empty prefix"):
        model.predict([], 3)
    for bad in ([VOCAB], [1, -1]):
        with pytest.raises(ValueError, match=RANGE):
            model.predict(bad, 2)
    with pytest.raises(ValueError, match="num_preds"):
        model.predict([1], -1)


def test_out_of_range_and_misshapen_batches_are_refused(model):
    """One-hot of an id >= V is silently zeros in some frameworks: every entry point refuses it."""
    before = model.get_params()
    [(X, Y)] = batches(3)
    bad = X.copy()
    bad[1, 2] = VOCAB
    calls = {
        "train_epoch": lambda X, Y: model.train_epoch([(X, Y)]),
        "evaluate": lambda X, Y: model.evaluate([(X, Y)]),
        "loss_and_grads": model.loss_and_grads,
        "recurrent_pass": lambda X, Y: model.recurrent_pass(X),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match=RANGE):
            call(bad, Y)
        with pytest.raises(ValueError, match=RANGE):
            call(X - 1, Y)
        with pytest.raises(ValueError, match="integers"):
            call(X.astype(np.float32), Y.astype(np.float32))
        if name != "recurrent_pass":
            with pytest.raises(ValueError, match="integers"):
                call(X, Y.astype(np.float32))
            with pytest.raises(ValueError, match=r"\(batch, num_steps\)"):
                call(X, Y[:, :-1])
    assert worst_error(model.get_params(), before) == 0  # nothing was trained on
    with pytest.raises(ValueError, match=RANGE):  # refused even after good batches
        model.train_epoch([(X, Y), (bad, Y)])


def test_environment_names_the_framework_and_threads(backend):
    env = backend.environment()
    assert env["framework"] == backend.name and isinstance(env["threads"], int) and env["threads"] >= 1


def test_unknown_mode_names_the_modes(backend):
    assert backend.default_mode in backend.modes and len(set(backend.modes)) == len(backend.modes)
    with pytest.raises(SpecError, match=f"no mode 'jit'; choose one of: {', '.join(backend.modes)}"):
        backend.build(make_spec(), VOCAB, "cpu", None, "jit")


def test_every_mode_has_a_track_and_a_description(backend):
    """Tracks (backends.base.TRACKS): every mode says which it is and names its tricks in
    one line; `tuned` is the default mode, every backend has an out-of-box mode, and a
    track's name as a mode builds that track's mode (what campaigns ask every backend)."""
    for mode in backend.modes:
        assert backend.track_of(mode) in TRACKS
        description = backend.describe_mode(mode)
        assert description and "\n" not in description, mode
    tracks = backend.track_modes()
    assert tracks["tuned"] == backend.default_mode and backend.track_of(backend.default_mode) == "tuned"
    assert backend.track_of(tracks["out-of-box"]) == "out-of-box"
    for track, mode in tracks.items():
        assert backend.check_mode(track) == mode
    if "book" not in tracks:
        with pytest.raises(SpecError, match="has no 'book' mode"):
            backend.build(make_spec(), VOCAB, "cpu", None, "book")


def test_device_errors(backend):
    assert backend.devices()[0] == "cpu"
    with pytest.raises(DeviceUnavailable, match="not understood"):
        backend.build(make_spec(), VOCAB, "tpu")
    gpus = any(d.startswith("gpu") for d in backend.devices())
    message = "no device gpu:99" if gpus else f"{backend.framework} sees no GPU.*--device cpu"
    with pytest.raises(DeviceUnavailable, match=message):
        backend.build(make_spec(), VOCAB, "gpu:99" if gpus else "gpu:0")


def test_wrong_params_are_refused(backend, mode):
    spec = make_spec()
    params = init_params(spec.model, VOCAB, seed=1)
    with pytest.raises(SpecError, match="dense.b"):
        backend.build(spec, VOCAB, "cpu", {**params, "dense.b": np.zeros(3, np.float32)}, mode)
    model = backend.build(spec, VOCAB, "cpu", params, mode)
    with pytest.raises(SpecError, match="dense.b"):
        model.set_params({**params, "dense.b": np.zeros(3, np.float32)})


@pytest.mark.parametrize("dtype", DTYPES)
def test_params_round_trip(backend, mode, dtype):
    spec = make_spec("gru", bidirectional=True, dtype=dtype)
    params = init_params(spec.model, VOCAB, seed=5, dtype=dtype)
    got = backend.build(spec, VOCAB, "cpu", params, mode).get_params()
    assert list(got) == list(params)
    for k in params:
        assert got[k].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got[k], params[k])


def test_framework_init_is_canonical_seeded_and_trains(backend):
    spec = make_spec("lstm", sampling="random", lr=0.5, clip=1.0)
    first = backend.build(spec, VOCAB, "cpu").get_params()
    again = backend.build(spec, VOCAB, "cpu").get_params()
    assert {k: v.shape for k, v in first.items()} == param_shapes(spec.model, VOCAB)
    assert worst_error(first, again) == 0 and all(v.dtype == np.float32 for v in first.values())
    model = backend.build(spec, VOCAB, "cpu")
    losses = [model.train_epoch([b]).loss_sum for b in batches(40, 1) * 20]
    assert losses[-1] < losses[0]


@pytest.mark.every_path
def test_dropout_applies_in_training_and_not_in_evaluation(backend, mode, cell):
    """At (practically) fixed parameters, lr 1e-9: evaluation is the reference's loss
    without dropout, every time; a training step's loss (taken before its update) is not."""
    spec = make_spec(cell, dropout=0.5, sampling="random", lr=1e-9)
    params = {k: 3 * v for k, v in init_params(spec.model, VOCAB, seed=8).items()}  # outputs far from 0
    model = backend.build(spec, VOCAB, "cpu", params, mode)
    moved = []
    for X, Y in batches(9, 4):
        want, _, _ = reference.loss_and_grads(as64(params), spec.model, X, Y)
        assert model.evaluate([(X, Y)]).loss_sum / X.size == pytest.approx(want, rel=1e-5)
        moved.append(abs(model.train_epoch([(X, Y)]).loss_sum / X.size - want) / want)
    assert max(moved) > 1e-3, moved  # half the first layer's outputs dropped, the rest doubled


def test_matmul_peak_is_synchronised(backend):
    """A 2048^2 matmul is 17 GFLOP: timed without waiting for it, it would seem to run at
    hundreds of TFLOP/s; synchronised, no CPU core does more than ~0.5 TFLOP/s."""
    if any(d.startswith("gpu") for d in backend.devices()):
        pytest.skip("the bound is a CPU's")
    skip_excepted(backend, "cpu", "synchronisation")
    peak = backend.matmul_peak("cpu", n=2048, repeats=1)
    assert math.isfinite(peak) and 1e8 < peak < 5e11 * (os.cpu_count() or 1)


def test_epoch_is_synchronised(backend):
    """train_epoch returns only when its work is done: reading the parameters right
    after it costs a fraction of the epoch (it would cost most of it otherwise). On the
    first GPU where there is one, else on the CPU."""
    device = next((d for d in backend.devices() if d.startswith("gpu")), "cpu")
    skip_excepted(backend, device, "synchronisation")
    spec = make_spec("lstm", sampling="random")
    spec = dataclasses.replace(spec, model=dataclasses.replace(spec.model, num_hiddens=256))
    model = backend.build(spec, VOCAB, device, init_params(spec.model, VOCAB, seed=2))
    data = [(np.tile(X, (8, 7)), np.tile(Y, (8, 7))) for X, Y in batches(7, 4)]  # 24 x 35
    model.train_epoch(data)  # compile
    tic = time.perf_counter()
    model.train_epoch(data)
    epoch = time.perf_counter() - tic
    tic = time.perf_counter()
    model.get_params()
    assert time.perf_counter() - tic < epoch / 4


def test_device_memory_is_the_gpus_and_nothing_on_the_cpu(backend):
    """Backend.device_memory: None on the CPU (its memory is the process's, common.rss);
    on a GPU where one exists, (now, peak) MiB with the peak at least the level."""
    assert backend.device_memory("cpu") is None
    backend.reset_device_peak("cpu")  # a no-op on the CPU, never an error
    gpus = [d for d in backend.devices() if d.startswith("gpu")]
    if gpus:
        got = backend.device_memory(gpus[0])
        assert got is None or (got[0] >= 0 and got[1] >= got[0] - 1e-6), got
