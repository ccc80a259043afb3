"""JAX/Flax internals: compile counts, chunking, XLA's threads and flags, the wavefront
recurrence, the modes' tracks, the `flax` mode's parameter map, the learning-rate hook.
Everything the interface promises is checked for every mode by tests/contract."""

from __future__ import annotations

import contextlib
import dataclasses
import os

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("flax")
pytest.importorskip("optax")

from contract.cases import BATCH, HIDDEN, STEPS, TOLERANCE, VOCAB, as64, batches, make_spec, worst_error  # noqa: E402

from backends import load_backend  # noqa: E402
from backends.jax_flax import _environment  # noqa: E402
from backends.jax_flax.cells import wavefront_supported  # noqa: E402
from common import reference  # noqa: E402
from common.params import init_params  # noqa: E402

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@pytest.fixture(scope="module")
def backend():
    return load_backend("jax", threads=1)


@contextlib.contextmanager
def count_compiles():
    """Yields a list that collects one entry per XLA backend compilation."""
    seen: list[float] = []

    def listener(event, duration, **kwargs):
        if event == COMPILE_EVENT:
            seen.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield seen
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def test_nothing_recompiles_after_the_first_epoch(backend):
    """Later epochs with fewer or more batches reuse the first epoch's compilation."""
    spec = make_spec(seed=101)  # a spec of its own: models built alike share compilations
    model = backend.build(spec, VOCAB, "cpu", init_params(spec.model, VOCAB, seed=1))
    model.train_epoch(batches(0, 4))
    model.evaluate(batches(1, 2))
    model.predict([1, 2], 3)
    with count_compiles() as compiles:
        for epoch, count in enumerate([3, 5, 4]):
            model.train_epoch(batches(10 + epoch, count))
            model.evaluate(batches(20 + epoch, count - 2))
        model.get_params()
        model.predict([3, 1, 4, 1], 6)
    assert compiles == [], f"{len(compiles)} compilation(s) after the first step"
    assert model.fns.train_chunk._cache_size() == 1 and model.fns.eval_chunk._cache_size() == 1


def test_a_smaller_last_batch_compiles_once_more_then_never(backend):
    """`windows` sampling ends an epoch with a partial batch: one extra compile, once."""
    spec = make_spec(sampling="windows", seed=102)
    model = backend.build(spec, VOCAB, "cpu", init_params(spec.model, VOCAB, seed=2))
    epoch = batches(0, 3) + [(X[:-1], Y[:-1]) for X, Y in batches(1)]
    model.train_epoch(epoch)
    with count_compiles() as compiles:
        model.train_epoch(epoch)
    assert compiles == []
    assert model.fns.train_chunk._cache_size() == 2


def test_chunkings_agree(backend):
    """Batches run in one chunk or one at a time (the state crossing calls) train the same."""
    spec = make_spec("gru")
    params = init_params(spec.model, VOCAB, seed=3)
    models = [backend.build(spec, VOCAB, "cpu", params, "scan") for _ in range(2)]
    models[1]._capacity["train"][(BATCH, STEPS)] = 1
    assert models[1].train_epoch([]).tokens == 0
    data = [batches(30 + e, 3) for e in range(2)]
    losses = [[m.train_epoch(d).loss_sum for d in data] for m in models]
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
    assert worst_error(models[1].get_params(), models[0].get_params()) <= 1e-4


def test_environment_records_versions_and_threads(backend):
    env = backend.environment()
    assert env["platform"] in ("cpu", "gpu", "cuda", "rocm")
    assert set(env["versions"]) == {"jax", "jaxlib", "flax", "optax", "numpy"}


def test_xla_environment_threads_and_flags(monkeypatch):
    scheduler = "--xla_cpu_enable_concurrency_optimized_scheduler"
    monkeypatch.setenv("PJRT_NPROC", "0")
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    _environment.configure(1)
    assert os.environ["PJRT_NPROC"] == "1"
    flags = os.environ["XLA_FLAGS"].split()
    assert flags == ["--xla_dump_to=/tmp/x", f"{scheduler}=false", "--xla_cpu_multi_thread_eigen=false"]
    _environment.configure(2)
    assert os.environ["PJRT_NPROC"] == "2"
    assert os.environ["XLA_FLAGS"].split() == ["--xla_dump_to=/tmp/x", f"{scheduler}=false"]
    monkeypatch.setenv("XLA_FLAGS", f"{scheduler}=true")  # the user's choice wins
    _environment.configure(None)
    assert os.environ["XLA_FLAGS"] == f"{scheduler}=true" and os.environ["PJRT_NPROC"] == "2"


# ---- the "wavefront" mode (backends/jax_flax/wavefront.py) ----

def apply_net(model, X, state):
    """Logits and final state of a built model, from the given initial state."""
    with model._context():
        return jax.device_get(model._net.apply({"params": model._params}, X, state, False))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell,steps", [("rnn", STEPS), ("gru", 2), ("lstm", 1)])
def test_wavefront_three_layers_match_reference(backend, cell, steps, dtype):
    """Deeper than the contract's stacks, and fewer steps than layers: no steady part."""
    spec = make_spec(cell, layers=3, dtype=dtype, num_steps=steps)
    params = init_params(spec.model, VOCAB, seed=3, dtype=dtype)
    [(X, Y)] = [(X[:, :steps], Y[:, :steps]) for X, Y in batches(4)]
    loss, grads = backend.build(spec, VOCAB, "cpu", params, "wavefront").loss_and_grads(X, Y)
    ref_loss, ref_grads, _ = reference.loss_and_grads(as64(params), spec.model, X, Y)
    assert abs(loss - ref_loss) / ref_loss <= TOLERANCE[dtype]
    assert worst_error(grads, ref_grads) <= TOLERANCE[dtype]


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_wavefront_final_state_and_state_gradients_equal_scan(backend, cell):
    """From a nonzero initial state: logits and final state equal the scan mode's (and the
    reference's), and so do the gradients w.r.t. the initial state (float64)."""
    spec = make_spec(cell, layers=3, dtype="float64")
    params = init_params(spec.model, VOCAB, seed=12, dtype="float64")
    [(X, _)] = batches(80)
    rng = np.random.RandomState(13)
    state = tuple(0.5 * rng.randn(*s.shape) for s in reference.zero_state(spec.model, BATCH, np.float64))
    scan, wave = (backend.build(spec, VOCAB, "cpu", params, mode) for mode in ("scan", "wavefront"))
    (logits_s, final_s), (logits_w, final_w) = apply_net(scan, X, state), apply_net(wave, X, state)
    ref = reference.forward(params, spec.model, X, state)
    np.testing.assert_allclose(logits_w, logits_s, rtol=1e-12, atol=1e-12)
    for got, want, ref_final in zip(final_w, final_s, ref.state, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got, ref_final, rtol=1e-12, atol=1e-12)

    def state_grads(model):
        def f(s):  # the loss uses the outputs and both final states, so every cotangent is nonzero
            logits, final = model._net.apply({"params": model._params}, X, s, False)
            return (logits ** 2).sum() + sum((f ** 3).sum() for f in final)
        with model._context():
            return jax.device_get(jax.grad(f)(state))

    for got, want in zip(state_grads(wave), state_grads(scan), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("change", [dict(num_layers=1), dict(bidirectional=True), dict(dropout=0.5)])
def test_wavefront_falls_back_to_the_per_layer_path(backend, change):
    """Specs the wavefront does not support run per layer in that mode, with the same numbers."""
    spec = make_spec("gru")
    spec = dataclasses.replace(spec, model=dataclasses.replace(spec.model, **change))
    assert not wavefront_supported(spec.model) and wavefront_supported(make_spec("gru").model)
    params = init_params(spec.model, VOCAB, seed=14)
    data = batches(90, 2)
    losses = [backend.build(spec, VOCAB, "cpu", params, mode).train_epoch(data).loss_sum
              for mode in ("scan", "wavefront")]
    assert losses[0] == losses[1]


# ---- modes: tracks, the out-of-box `flax` mode (backends/jax_flax/library.py) ----

def forward_primitives(model, X, Y) -> set[str]:
    """The primitives of a model's forward loss, as traced (before differentiation)."""
    import re
    with model._context():
        jaxpr = jax.make_jaxpr(lambda p: model.fns._loss(p, X, Y, None, None, False)[0])(model._params)
    return set(re.findall(r"= ([a-z_]+)\[", str(jaxpr)))


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_flax_mode_runs_no_project_kernel_and_the_tuned_modes_do(backend, cell):
    """Swapping the out-of-box mode for a tuned one (or back) is visible in the traced program:
    the tuned modes run this project's custom_vjp recurrences, the `flax` mode plain scans of
    Flax's cells."""
    spec = make_spec(cell)
    params = init_params(spec.model, VOCAB, seed=1)
    [(X, Y)] = batches(0)
    for mode in backend.modes:
        prims = forward_primitives(backend.build(spec, VOCAB, "cpu", params, mode), X, Y)
        assert "scan" in prims
        assert ("custom_vjp_call" in prims) == (mode != "flax"), mode


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_canonical_parameters_map_into_flax_layout_exactly(cell):
    """`to_flax` gives Flax's own parameter tree (names, shapes) with the merged biases
    b_ih + b_hh; `from_flax` inverts it where b_hh is zero (Flax's initialisation)."""
    from flax.traverse_util import flatten_dict, unflatten_dict

    from backends.jax_flax.library import FlaxLM, from_flax, to_carries, to_flax
    from backends.jax_flax.library_model import zero_state
    spec = make_spec(cell, bidirectional=True, input="embedding")
    params = unflatten_dict(init_params(spec.model, VOCAB, seed=4), sep=".")
    theirs = FlaxLM(spec.model, VOCAB, np.float32).init(
        jax.random.key(0), np.zeros((1, 1), np.int32), to_carries(spec.model, zero_state(spec.model, 1, np.float32)))
    mapped = to_flax(spec.model, params)
    shapes = lambda tree: {k: np.shape(v) for k, v in flatten_dict(tree, sep=".").items()}  # noqa: E731
    assert shapes(mapped) == shapes(theirs["params"])
    p, f, h = params["rnn"]["l1"]["bwd"], mapped["rnn"]["l1_bwd"], HIDDEN
    merged = {"lstm": ("hf", slice(h, 2 * h)), "gru": ("iz", slice(h, 2 * h)), "rnn": ("i", slice(0, h))}[cell]
    np.testing.assert_array_equal(f[merged[0]]["bias"], p["b_ih"][merged[1]] + p["b_hh"][merged[1]])
    np.testing.assert_array_equal(mapped["dense"]["kernel"], params["dense"]["w"].T)
    zeroed = jax.tree.map(np.asarray, params)
    for layer in zeroed["rnn"].values():
        for direction in layer.values():
            kept = slice(2 * h, 3 * h) if cell == "gru" else slice(0, 0)  # the GRU's b_hn has its own bias
            b_hh = np.zeros_like(direction["b_hh"])
            b_hh[kept] = direction["b_hh"][kept]
            direction["b_hh"] = b_hh
    back = from_flax(spec.model, to_flax(spec.model, zeroed))
    for key, value in flatten_dict(zeroed, sep=".").items():
        np.testing.assert_array_equal(flatten_dict(back, sep=".")[key], value)


def test_flax_mode_compiles_once_and_steps_per_batch(backend):
    """One jitted train step per batch (a Python loop, as the Flax examples): later epochs of
    other lengths, evaluation and prediction reuse the first compilations."""
    spec = make_spec(seed=103)
    model = backend.build(spec, VOCAB, "cpu", init_params(spec.model, VOCAB, seed=1), "flax")
    model.train_epoch(batches(0, 2))
    model.evaluate(batches(1, 2))
    model.predict([1, 2], 3)
    with count_compiles() as compiles:
        model.train_epoch(batches(2, 5))
        model.evaluate(batches(3, 1))
        model.predict([3, 1, 4], 4)
    assert compiles == []
    assert model.fns.train_step._cache_size() == 1


# ---- the learning rate (LanguageModel.set_learning_rate's hook) ----

@pytest.mark.parametrize("mode", ["scan", "scan-unroll", "wavefront", "flax"])
def test_set_learning_rate_changes_the_next_steps_without_recompiling(backend, mode):
    """An SGD step after `_set_learning_rate(0.25)` is the reference's step at lr 0.25
    (not 1.0); it compiles nothing, and survives `set_params` (which restarts the optimizer)."""
    spec = make_spec("gru", sampling="random", lr=1.0, clip=0.0, seed=104)
    params = init_params(spec.model, VOCAB, seed=6)
    model = backend.build(spec, VOCAB, "cpu", params, mode)
    first, second = batches(60), batches(61)
    model.train_epoch(first)
    after_first = model.get_params()
    want_first = reference.train_trajectory(as64(params), spec.model, spec.train, first)[1]
    assert worst_error(after_first, want_first) <= 1e-4
    slow = dataclasses.replace(spec.train, lr=0.25)
    want = reference.train_trajectory(as64(after_first), spec.model, slow, second)[1]
    unchanged = reference.train_trajectory(as64(after_first), spec.model, spec.train, second)[1]
    assert worst_error(want, unchanged) > 1e-2
    with count_compiles() as compiles:
        model._set_learning_rate(0.25)
        model.train_epoch(second)
    assert compiles == []
    assert worst_error(model.get_params(), want) <= 1e-4
    model.set_params(after_first)
    model.train_epoch(second)
    assert worst_error(model.get_params(), want) <= 1e-4


def test_clip_norm_keeps_the_small_gradients():
    """Two million tiny gradients beside a few large ones: XLA's reduction keeps the
    clip scale within float32 rounding of float64's (PyTorch and MXNet needed a fix)."""
    import jax.numpy as jnp

    from backends.jax_flax.steps import clip_by_global_norm

    rng = np.random.RandomState(0)
    big = (rng.randn(10000, 200) * 1e-5).astype(np.float32)
    big[:5] = rng.randn(5, 200) * 0.05
    want = np.sqrt((big.astype(np.float64) ** 2).sum())
    tx = clip_by_global_norm(0.01)
    out, _ = tx.update({"w": jnp.asarray(big)}, tx.init(None))
    scale = float(out["w"][0, 0] / big[0, 0])
    assert abs(scale - 0.01 / want) / (0.01 / want) < 1e-6
