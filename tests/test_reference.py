"""The numpy reference checked against central finite differences in float64."""

import itertools

import numpy as np
import pytest

from common import reference as R
from common.params import init_params
from common.specs import ModelSpec, TrainSpec

V, B, T = 5, 2, 3


def numeric_grad(params, model, X, Y, state, name, eps=1e-6):
    grad = np.zeros_like(params[name])
    for idx in np.ndindex(grad.shape):
        shifted = {k: v.copy() for k, v in params.items()}
        shifted[name][idx] += eps
        plus = R.loss_and_grads(shifted, model, X, Y, state)[0]
        shifted[name][idx] -= 2 * eps
        minus = R.loss_and_grads(shifted, model, X, Y, state)[0]
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


@pytest.mark.parametrize("cell,layers,bidirectional,input", [
    *itertools.product(("rnn", "gru", "lstm"), (1, 2), (False, True), ("one_hot",)),
    *[(cell, 2, True, "embedding") for cell in ("rnn", "gru", "lstm")],
])
def test_gradients_match_finite_differences(cell, layers, bidirectional, input):
    model = ModelSpec(cell=cell, num_layers=layers, num_hiddens=4, bidirectional=bidirectional,
                      input=input, embed_size=3 if input == "embedding" else 0)
    params = init_params(model, V, seed=0, dtype="float64")
    rng = np.random.RandomState(1)
    X, Y = rng.randint(0, V, (B, T)), rng.randint(0, V, (B, T))
    state = tuple(rng.normal(size=s.shape) for s in R.zero_state(model, B, np.float64))  # non-zero start
    _, grads, _ = R.loss_and_grads(params, model, X, Y, state)
    for name in params:
        num = numeric_grad(params, model, X, Y, state, name)
        err = np.abs(num - grads[name]).max() / max(np.abs(num).max(), 1e-12)
        assert err < 1e-6, f"{name}: relative error {err:.2e}"


def test_float32_follows_float64():
    model = ModelSpec(cell="lstm", num_layers=2, num_hiddens=6)
    p64 = init_params(model, V, seed=2, dtype="float64")
    p32 = init_params(model, V, seed=2, dtype="float32")
    X = np.random.RandomState(0).randint(0, V, (B, T))
    l64, g64, _ = R.loss_and_grads(p64, model, X, X)
    l32, g32, _ = R.loss_and_grads(p32, model, X, X)
    assert g32["dense.w"].dtype == np.float32
    assert abs(l32 - l64) / l64 < 1e-5


def test_final_state_continues_the_sequence():
    """Running two halves with the state carried equals running the whole."""
    model = ModelSpec(cell="gru", num_layers=2, num_hiddens=5, bidirectional=False)
    params = init_params(model, V, seed=4, dtype="float64")
    X = np.random.RandomState(3).randint(0, V, (B, 6))
    whole = R.forward(params, model, X)
    first = R.forward(params, model, X[:, :3])
    second = R.forward(params, model, X[:, 3:], first.state)
    np.testing.assert_allclose(np.concatenate([first.logits, second.logits], axis=1), whole.logits, rtol=1e-12)
    np.testing.assert_allclose(second.state[0], whole.state[0], rtol=1e-12)


def test_clipping_scales_to_the_threshold():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([4.0])}
    clipped, norm = R.clip_global_norm(grads, 1.0)
    assert norm == pytest.approx(5.0)
    assert np.sqrt(sum((g**2).sum() for g in clipped.values())) == pytest.approx(1.0)
    unchanged, _ = R.clip_global_norm(grads, 10.0)
    assert unchanged["a"][0] == 3.0


def test_sgd_trajectory_lowers_the_loss_on_a_learnable_task():
    model = ModelSpec(cell="lstm", num_layers=1, num_hiddens=16)
    params = init_params(model, V, seed=0, dtype="float64")
    X = np.tile(np.arange(10) % V, (4, 1))
    train = TrainSpec(batch_size=4, num_steps=10, sampling="random", lr=1.0, clip=5.0)
    losses, _ = R.train_trajectory(params, model, train, [(X, (X + 1) % V)] * 60)
    assert losses[-1] < 0.2 * losses[0]


def test_adam_first_step_moves_each_weight_by_lr():
    """Adam's first bias-corrected step is lr * sign(g) (up to eps)."""
    opt = R.Optimizer("adam", lr=0.1)
    new = opt.step({"w": np.array([1.0, 1.0])}, {"w": np.array([2.0, -0.5])})
    np.testing.assert_allclose(new["w"], [0.9, 1.1], rtol=1e-6)


def test_predict_is_greedy_and_deterministic():
    model = ModelSpec(cell="rnn", num_layers=1, num_hiddens=8)
    params = init_params(model, V, seed=1, dtype="float64")
    out = R.predict(params, model, [1, 2], 6)
    assert len(out) == 6 and all(0 <= i < V for i in out)
    assert out == R.predict(params, model, [1, 2], 6)
    first = R.forward(params, model, np.array([[1, 2]])).logits[0, -1].argmax()
    assert out[0] == first


def test_elementwise_tolerance_catches_a_small_entry_far_off():
    """max|error| / max|reference| lets a small entry be 100% off; the elementwise check does not."""
    want = np.array([1e-2, 1e-6])
    got = np.array([1e-2, 2e-6])
    rtol, atol = R.ELEMENTWISE_TOLERANCE["float32"]
    assert R.relative_error(got, want) <= R.PARITY_TOLERANCE["float32"]
    assert R.elementwise_excess(got, want, rtol, atol) > 1
    assert R.elementwise_excess(want * (1 + rtol / 2), want, rtol, atol) <= 1
