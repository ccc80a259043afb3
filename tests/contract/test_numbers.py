"""Every backend, mode and cell against the numpy reference (common/reference.py), in
float32 and float64: loss and gradients, training epochs (state carried or reset,
clipping on or off, SGD and Adam), evaluation, prediction and the recurrent layers alone."""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import numpy as np
import pytest

from benchmarks.run import parity
from common import reference
from common.params import init_params
from common.specs import load_preset
from contract.cases import (
    BATCH,
    DTYPES,
    STEPS,
    TOLERANCE,
    TRAIN_TOLERANCE,
    VOCAB,
    as64,
    batches,
    make_spec,
    skip_excepted,
    worst_error,
)

STRUCTURES = {"stack": {}, "single": dict(layers=1), "bidirectional": dict(bidirectional=True),
              "embedding": dict(layers=1, input="embedding")}
# variants of the training loop: state carried (detached) across batches or reset every batch, ...
TRAINING = {"sequential": dict(sampling="sequential"), "random": dict(sampling="random"),
            "no-clip": dict(clip="none"), "adam": dict(optimizer="adam", lr=0.01)}


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_and_grads_match_reference(backend, mode, cell, dtype):
    check_loss_and_grads(backend, mode, cell, "stack", dtype)


@pytest.mark.parametrize("structure", list(STRUCTURES)[1:])
def test_other_structures_match_reference(backend, mode, structure):
    """Single layers, bidirectional stacks and embedded inputs: plumbing around the cell,
    so the GRU stands for all three cells."""
    check_loss_and_grads(backend, mode, "gru", structure, "float32")


@lru_cache(maxsize=1)
def benchmark_shape_case():
    """d2l-deep-lstm's model and batch shape (2 x 256 LSTM, V 28, 32 x 35), float32, a
    seeded batch, and the float64 reference's loss and gradients (worked out once)."""
    spec, vocab = load_preset("d2l-deep-lstm")[0], 28
    rng = np.random.RandomState(13)
    X, Y = (rng.randint(0, vocab, (spec.train.batch_size, spec.train.num_steps)).astype(np.int32) for _ in "XY")
    want = reference.loss_and_grads(as64(parity.reference_params(spec, vocab)), spec.model, X, Y)[:2]
    return spec, vocab, X, Y, want


def test_benchmark_shape_matches_reference_elementwise(backend, mode):
    """At the shape the benchmarks time, float32 loss and every gradient entry against the
    float64 reference, elementwise (reference.ELEMENTWISE_TOLERANCE, as np.allclose)."""
    spec, vocab, X, Y, want = benchmark_shape_case()
    assert spec.train.dtype == "float32" and X.shape == (32, 35) and spec.model.num_hiddens == 256
    result = parity.compare(backend, spec, vocab, X, Y, "cpu", mode, want)
    assert result["loss"] <= TOLERANCE["float32"]
    assert max(result["elementwise"].values()) <= 1.0, result["elementwise"]
    assert parity.passes(result)


def check_loss_and_grads(backend, mode, cell, structure, dtype):
    spec = make_spec(cell, dtype=dtype, **STRUCTURES[structure])
    params = init_params(spec.model, VOCAB, seed=3, dtype=dtype)
    model = backend.build(spec, VOCAB, "cpu", params, mode)
    [(X, Y)] = batches(4)
    loss, grads = model.loss_and_grads(X, Y)
    ref_loss, ref_grads, _ = reference.loss_and_grads(as64(params), spec.model, X, Y)
    assert abs(loss - ref_loss) / ref_loss <= TOLERANCE[dtype]
    assert worst_error(grads, ref_grads) <= TOLERANCE[dtype]
    assert all(g.dtype == np.dtype(dtype) for g in grads.values())


def clip_epsilon(model) -> float:
    """The eps a library's clipping adds to the norm (out-of-box modes), else 0: the
    interface's `LanguageModel.clip_epsilon`."""
    return float(model.clip_epsilon)


def check_training(backend, mode, cell, variant, dtype):
    """Mean loss of a six-batch epoch and the final parameters, against the reference's steps."""
    spec = make_spec(cell, dtype=dtype, **TRAINING[variant])
    params = init_params(spec.model, VOCAB, seed=9, dtype=dtype)
    model = backend.build(spec, VOCAB, "cpu", params, mode)
    data = batches(200, 6)
    stats = model.train_epoch(data)
    want, final = reference.train_trajectory(as64(params), spec.model, spec.train, data, clip_epsilon(model))
    assert stats.tokens == 6 * BATCH * STEPS
    assert abs(stats.loss_sum / stats.tokens - np.mean(want)) / np.mean(want) <= TRAIN_TOLERANCE[dtype]
    got = model.get_params()
    assert worst_error(got, final) <= 10 * TRAIN_TOLERANCE[dtype]
    assert all(v.dtype == np.dtype(dtype) for v in got.values())


@pytest.mark.parametrize("dtype", DTYPES)
def test_training_epoch_tracks_reference(backend, mode, cell, dtype):
    if dtype == "float64":
        skip_excepted(backend, mode, "training-float64")
    check_training(backend, mode, cell, "sequential", dtype)


@pytest.mark.parametrize("variant,dtype", [("random", "float32"), ("no-clip", "float32"), ("adam", "float32"),
                                           ("adam", "float64")])
def test_training_variants_track_reference(backend, mode, variant, dtype):
    """State reset per batch, no clipping, Adam: the loop around the cell, so the LSTM
    stands for all three cells."""
    skip_excepted(backend, mode, "training-variants")
    check_training(backend, mode, "lstm", variant, dtype)


def test_state_carried_over_the_run_tracks_reference(backend, mode):
    """carry_state='run' (the d2lzh loop sets `state = None` once, before its epochs):
    two epochs train as one trajectory whose state runs on from the first epoch's last
    batch into the second's first, not as two that each start from zeros."""
    skip_excepted(backend, mode, "carried-state")
    spec = make_spec("lstm", carry_state="run")
    params = init_params(spec.model, VOCAB, seed=9)
    model = backend.build(spec, VOCAB, "cpu", params, mode)
    data = batches(200, 6)
    model.train_epoch(data[:3])
    second = model.train_epoch(data[3:])
    want, final = reference.train_trajectory(as64(params), spec.model, spec.train, data, clip_epsilon(model))
    reset = reference.train_trajectory(reference.train_trajectory(as64(params), spec.model, spec.train, data[:3],
                                                                  clip_epsilon(model))[1],
                                       spec.model, spec.train, data[3:], clip_epsilon(model))
    assert worst_error(reset[1], final) > 1e-3  # so a backend that reset the state would fail below
    mean = np.mean(want[3:])
    assert abs(second.loss_sum / second.tokens - mean) / mean <= TRAIN_TOLERANCE["float32"]
    assert worst_error(model.get_params(), final) <= 10 * TRAIN_TOLERANCE["float32"]


def test_the_books_normal_init_trains_as_reference(backend, mode):
    """init='normal:0.01' (d2l 0.17's MXNet `init.Normal(0.01)`, biases zero): the drawn
    parameters load and train as the reference's."""
    skip_excepted(backend, mode, "normal-init")
    spec = make_spec("gru", init="normal:0.01")
    params = init_params(spec.model, VOCAB, seed=9)
    assert all(not v.any() for k, v in params.items() if k.rsplit(".", 1)[-1].startswith("b"))
    assert 0.008 < np.std(params["dense.w"]) < 0.012
    model = backend.build(spec, VOCAB, "cpu", params, mode)
    data = batches(200, 6)
    stats = model.train_epoch(data)
    want, final = reference.train_trajectory(as64(params), spec.model, spec.train, data, clip_epsilon(model))
    assert abs(stats.loss_sum / stats.tokens - np.mean(want)) / np.mean(want) <= TRAIN_TOLERANCE["float32"]
    assert worst_error(model.get_params(), final) <= 10 * TRAIN_TOLERANCE["float32"]


@pytest.mark.parametrize("optimizer,lr", [("sgd", 0.3), ("adam", 0.002)])
def test_set_learning_rate_applies_to_later_steps(backend, mode, optimizer, lr):
    """`_set_learning_rate(lr)` (the hook issue 14's LanguageModel.set_learning_rate
    calls): the steps after it train as the reference does at `lr` (SGD, which has no
    state to carry), and so does a fresh start by set_params (Adam too)."""
    skip_excepted(backend, mode, "learning-rate")
    if optimizer == "adam" and mode not in backend.track_modes().values():
        pytest.skip("Adam in the mode standing for each track (the others share its optimizer code)")
    spec = make_spec("lstm", optimizer=optimizer, lr=1.0 if optimizer == "sgd" else 0.01)
    model = backend.build(spec, VOCAB, "cpu", init_params(spec.model, VOCAB, seed=9), mode)
    data = batches(200, 6)
    model.train_epoch(data[:1])  # the optimizer has stepped before the change
    start = model.get_params()
    want, final = reference.train_trajectory(as64(start), spec.model, replace(spec.train, lr=lr), data[1:],
                                             clip_epsilon(model))
    model._set_learning_rate(lr)
    for restart in ((False, True) if optimizer == "sgd" else (True,)):
        if restart:
            model.set_params(start)  # fresh optimizer state, same learning rate
        stats = model.train_epoch(data[1:])
        assert abs(stats.loss_sum / stats.tokens - np.mean(want)) / np.mean(want) <= TRAIN_TOLERANCE["float32"]
        assert worst_error(model.get_params(), final) <= 10 * TRAIN_TOLERANCE["float32"]


def test_the_training_variants_differ():
    """So a backend that ignored the carried state, the clip or the optimizer would fail above."""
    params = init_params(make_spec().model, VOCAB, seed=9)
    data = batches(200, 6)
    finals = {}
    for name, variant in TRAINING.items():
        spec = make_spec(**variant)
        finals[name] = reference.train_trajectory(as64(params), spec.model, spec.train, data)[1]
        if name != "no-clip":  # the clip is active on the first step
            _, grads, _ = reference.loss_and_grads(as64(params), spec.model, *data[0])
            assert reference.clip_global_norm(grads, spec.train.clip)[1] > spec.train.clip
    for a in TRAINING:
        for b in TRAINING:
            if a < b:
                assert worst_error(finals[a], finals[b]) > 1e-3, (a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_evaluate_and_predict_match_reference(backend, mode, cell, dtype):
    """Evaluation carries the state across batches as training does, and updates nothing;
    greedy prediction is the reference's, every time."""
    spec = make_spec(cell, dtype=dtype)
    params = init_params(spec.model, VOCAB, seed=11, dtype=dtype)
    model = backend.build(spec, VOCAB, "cpu", params, mode)
    data = batches(12, 2)
    stats = model.evaluate(data)
    state, losses = None, []
    for X, Y in data:
        loss, _, state = reference.loss_and_grads(as64(params), spec.model, X, Y, state)
        losses.append(loss)
    assert stats.tokens == 2 * BATCH * STEPS
    assert abs(stats.loss_sum / stats.tokens - np.mean(losses)) / np.mean(losses) <= TOLERANCE[dtype]
    assert worst_error(model.get_params(), params) == 0  # no update
    prefix = [1, 2, 3]
    want = reference.predict(as64(params), spec.model, prefix, 10)
    assert model.predict(prefix, 10) == want
    assert model.predict(prefix, 10) == want  # deterministic: nothing carried between calls
    assert model.predict(prefix, 1) == want[:1]


@pytest.mark.parametrize("dtype", DTYPES)
def test_recurrent_pass_is_the_reference_stack_forward_and_backward(backend, mode, cell, dtype):
    """The sum of the top layer's outputs from a zero state and its gradients to every
    recurrent weight; a second call gives the same (nothing updated or accumulated)."""
    spec = make_spec(cell, dtype=dtype)
    params = init_params(spec.model, VOCAB, seed=0, dtype=dtype)
    model = backend.build(spec, VOCAB, "cpu", params, mode)
    [(X, _)] = batches(5)
    want, want_grads = reference.recurrent_grads(as64(params), spec.model, X)
    scale = np.abs(reference.forward(as64(params), spec.model, X).tops).sum()
    total, grads = model.recurrent_pass(X, grads=True)
    assert abs(total - want) <= TOLERANCE[dtype] * scale
    assert worst_error(grads, want_grads) <= TOLERANCE[dtype]
    again, grads_again = model.recurrent_pass(X, grads=True)
    assert abs(again - total) <= TOLERANCE[dtype] * scale
    assert worst_error(grads_again, grads) <= TOLERANCE[dtype]
    assert model.recurrent_pass(X)[1] is None
