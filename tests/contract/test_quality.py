"""What quality comparisons rely on, in every backend and mode: a learning rate changed
between epochs (the schedule), seed k's initial parameters, and a held-out split
evaluated as one continuous stream."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.run.harness import RunRequest, build_model
from common import reference
from common.params import init_params
from contract.cases import BATCH, STEPS, TRAIN_TOLERANCE, VOCAB, as64, batches, make_spec, skip_excepted, worst_error


def _reference_epochs(params, spec, epochs, lrs):
    """The reference's clipped steps over several epochs, the optimizer (Adam's moments)
    kept and its lr set before each epoch, the state reset at each epoch's start."""
    opt = reference.Optimizer(spec.train.optimizer, lrs[0])
    for data, lr in zip(epochs, lrs, strict=True):
        opt.lr, state = lr, None
        for X, Y in data:
            _, grads, state = reference.loss_and_grads(params, spec.model, X, Y, state)
            params = opt.step(params, reference.clip_global_norm(grads, spec.train.clip)[0])
    return params


@pytest.mark.parametrize("optimizer,lr", [("sgd", 1.0), ("adam", 0.01)])
def test_set_learning_rate_changes_the_following_steps(backend, mode, optimizer, lr):
    """Epoch 2 at a quarter of the lr, the optimizer state kept: the reference's steps."""
    skip_excepted(backend, mode, "learning-rate")
    spec = make_spec("lstm", optimizer=optimizer, lr=lr)
    params = init_params(spec.model, VOCAB, seed=9)
    model = backend.build(spec, VOCAB, "cpu", params, mode)
    epochs = [batches(200, 3), batches(201, 3)]
    model.train_epoch(epochs[0])
    model.set_learning_rate(lr / 4)
    model.train_epoch(epochs[1])
    want = _reference_epochs(as64(params), spec, epochs, [lr, lr / 4])
    unchanged = _reference_epochs(as64(params), spec, epochs, [lr, lr])
    assert worst_error(model.get_params(), want) <= 10 * TRAIN_TOLERANCE["float32"]
    assert worst_error(unchanged, want) > 100 * TRAIN_TOLERANCE["float32"]  # so a lr left unchanged would fail


def test_set_learning_rate_refuses_nonsense(backend):
    spec = make_spec("gru")
    model = backend.build(spec, VOCAB, "cpu", init_params(spec.model, VOCAB, seed=1))
    for bad in (0, -1.0, float("nan"), True, "1"):
        with pytest.raises(ValueError, match="learning rate must be a finite number > 0"):
            model.set_learning_rate(bad)


def test_seed_k_starts_every_backend_from_its_own_draw(backend):
    """Seed k's run starts from init_params(seed k) exactly, whatever the backend, so
    seeds pair across frameworks; another seed is another start."""
    starts = {}
    for seed in (0, 4):
        spec = make_spec("gru", seed=seed)
        model = build_model(backend, RunRequest(backend.name, spec), VOCAB)
        starts[seed] = model.get_params()
        want = init_params(spec.model, VOCAB, seed)
        assert all(np.array_equal(starts[seed][k], want[k]) for k in want)
    assert worst_error(starts[0], starts[4]) > 0.1


def test_a_stream_evaluates_as_one_long_sequence(backend, mode):
    """A held-out split at batch 1, cut into blocks (the last one shorter), with the state
    carried through: the loss of the whole stream in one forward pass."""
    skip_excepted(backend, mode, "stream-evaluation")
    spec = make_spec("lstm")
    params = init_params(spec.model, VOCAB, seed=5)
    model = backend.build(spec, VOCAB, "cpu", params, mode)
    ids = np.random.RandomState(3).randint(0, VOCAB, 2 * STEPS + 3).astype(np.int32)
    blocks = [(ids[None, i:min(i + STEPS, len(ids) - 1)], ids[None, i + 1:min(i + STEPS, len(ids) - 1) + 1])
              for i in range(0, len(ids) - 1, STEPS)]
    assert [x.shape[1] for x, _ in blocks] == [STEPS, STEPS, 2] and BATCH > 1
    stats = model.evaluate(blocks)
    want, _, _ = reference.loss_and_grads(as64(params), spec.model, ids[None, :-1], ids[None, 1:])
    assert stats.tokens == len(ids) - 1
    assert abs(stats.loss_sum / stats.tokens - want) / want <= TRAIN_TOLERANCE["float32"]
