"""Every installed backend against the numpy reference: loss, gradients, training.

One parametrized module for all backends; a backend whose framework is not installed
in this venv is skipped with the reason.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from backends import BACKENDS, load_backend
from common import reference
from common.errors import BackendUnavailable
from common.params import init_params
from common.specs import ModelSpec, RunSpec, TrainSpec

VOCAB, BATCH, STEPS, HIDDEN = 7, 3, 5, 8
TOLERANCE = reference.PARITY_TOLERANCE


@pytest.fixture(params=list(BACKENDS), scope="module")
def backend(request):
    try:
        return load_backend(request.param, threads=1)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))


def make_spec(cell="lstm", layers=2, bidirectional=False, input="one_hot", dtype="float32", **train) -> RunSpec:
    model = ModelSpec(cell=cell, num_layers=layers, num_hiddens=HIDDEN, bidirectional=bidirectional,
                      input=input, embed_size=4 if input == "embedding" else 0)
    defaults = dict(batch_size=BATCH, num_steps=STEPS, lr=0.5, clip=1.0, epochs=1, dtype=dtype)
    return RunSpec(model=model, train=TrainSpec(**{**defaults, **train}))


def batch(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random inputs; targets follow from them (x+1 mod V), so training can learn."""
    X = np.random.RandomState(seed).randint(0, VOCAB, (BATCH, STEPS)).astype(np.int32)
    return X, (X + 1) % VOCAB


def as64(params):
    return {k: v.astype(np.float64) for k, v in params.items()}


CASES = [
    *[(cell, layers, False, "one_hot") for cell, layers in itertools.product(("rnn", "gru", "lstm"), (1, 2))],
    *[(cell, 2, True, "one_hot") for cell in ("rnn", "gru", "lstm")],
    *[(cell, 1, False, "embedding") for cell in ("gru", "lstm")],
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell,layers,bidirectional,input", CASES)
def test_loss_and_grads_match_reference(backend, cell, layers, bidirectional, input, dtype):
    spec = make_spec(cell, layers, bidirectional, input, dtype)
    params = init_params(spec.model, VOCAB, seed=3, dtype=dtype)
    model = backend.build(spec, VOCAB, "cpu", params)
    X, Y = batch(4)
    loss, grads = model.loss_and_grads(X, Y)
    ref_loss, ref_grads, _ = reference.loss_and_grads(as64(params), spec.model, X, Y)
    assert set(grads) == set(ref_grads)
    assert abs(loss - ref_loss) / ref_loss <= TOLERANCE[dtype]
    worst = max(reference.relative_error(grads[k], ref_grads[k]) for k in ref_grads)
    assert worst <= TOLERANCE[dtype], f"largest gradient relative error {worst:.2e}"


def test_params_round_trip(backend):
    spec = make_spec("gru", 2, True)
    params = init_params(spec.model, VOCAB, seed=5)
    model = backend.build(spec, VOCAB, "cpu", params)
    got = model.get_params()
    assert set(got) == set(params)
    for k in params:
        assert got[k].shape == params[k].shape and got[k].dtype == np.float32
        np.testing.assert_array_equal(got[k], params[k])


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_twenty_sgd_steps_track_reference(backend, cell):
    """Per-step losses of 20 clipped SGD steps (state reset each batch)."""
    spec = make_spec(cell, 2, sampling="random", lr=1.0, clip=1.0)
    params = init_params(spec.model, VOCAB, seed=7)
    model = backend.build(spec, VOCAB, "cpu", params)
    batches = [batch(100 + i) for i in range(20)]
    got = [model.train_epoch([b]).loss_sum / (BATCH * STEPS) for b in batches]
    want, _ = reference.train_trajectory(as64(params), spec.model, spec.train, batches)
    assert reference.relative_error(got, want) <= 1e-4
    assert np.abs(np.diff(want)).max() > 1e-2  # the steps really move the loss


@pytest.mark.parametrize("optimizer,lr", [("sgd", 1.0), ("adam", 0.01)])
def test_sequential_epoch_carries_state(backend, optimizer, lr):
    """One sequential epoch of 10 batches: summed loss and final parameters."""
    spec = make_spec("lstm", 2, optimizer=optimizer, lr=lr, clip=1.0)
    params = init_params(spec.model, VOCAB, seed=9)
    model = backend.build(spec, VOCAB, "cpu", params)
    batches = [batch(200 + i) for i in range(10)]
    stats = model.train_epoch(batches)
    want, final = reference.train_trajectory(as64(params), spec.model, spec.train, batches)
    assert stats.tokens == 10 * BATCH * STEPS
    assert abs(stats.loss_sum / stats.tokens - np.mean(want)) / np.mean(want) <= 1e-4
    got = model.get_params()
    assert max(reference.relative_error(got[k], final[k]) for k in final) <= 1e-3


def test_evaluate_and_predict_match_reference(backend):
    spec = make_spec("gru", 2)
    params = init_params(spec.model, VOCAB, seed=11)
    model = backend.build(spec, VOCAB, "cpu", params)
    X, Y = batch(12)
    stats = model.evaluate([(X, Y)])
    ref_loss, _, _ = reference.loss_and_grads(as64(params), spec.model, X, Y)
    assert stats.tokens == X.size
    assert abs(stats.loss_sum / stats.tokens - ref_loss) / ref_loss <= 1e-5
    prefix = [1, 2, 3]
    assert model.predict(prefix, 10) == reference.predict(as64(params), spec.model, prefix, 10)
    np.testing.assert_array_equal(model.get_params()["dense.b"], params["dense.b"])  # no update
