"""JAX/Flax backend specifics: compile counts, modes, devices, threads, initialisation.

The numbers themselves (loss, gradients, training against the numpy reference) are
checked by the shared tests/test_parity.py; this module checks what only JAX has.
"""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("flax")
pytest.importorskip("optax")

import jax  # noqa: E402

from backends import load_backend  # noqa: E402
from common import reference  # noqa: E402
from common.errors import DeviceUnavailable, SpecError  # noqa: E402
from common.params import init_params, param_shapes  # noqa: E402
from common.specs import ModelSpec, RunSpec, TrainSpec  # noqa: E402

VOCAB, BATCH, STEPS = 7, 3, 5
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@pytest.fixture(scope="module")
def backend():
    return load_backend("jax", threads=1)


def make_spec(cell="lstm", sampling="sequential", dropout=0.0, **train) -> RunSpec:
    model = ModelSpec(cell=cell, num_layers=2, num_hiddens=8, dropout=dropout)
    defaults = dict(batch_size=BATCH, num_steps=STEPS, lr=1.0, clip=1.0, epochs=1, sampling=sampling)
    return RunSpec(model=model, train=TrainSpec(**{**defaults, **train}))


def batches(seed: int, count: int, batch: int = BATCH) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.RandomState(seed)
    return [(rng.randint(0, VOCAB, (batch, STEPS)).astype(np.int32),
             rng.randint(0, VOCAB, (batch, STEPS)).astype(np.int32)) for _ in range(count)]


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
    spec = make_spec()
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
    spec = make_spec(sampling="windows")
    model = backend.build(spec, VOCAB, "cpu", init_params(spec.model, VOCAB, seed=2))
    epoch = batches(0, 3) + batches(1, 1, batch=BATCH - 1)
    model.train_epoch(epoch)
    with count_compiles() as compiles:
        model.train_epoch(epoch)
    assert compiles == []
    assert model.fns.train_chunk._cache_size() == 2


def test_modes_and_chunkings_agree(backend):
    """Every mode, and batches run in one chunk or one at a time, train the same."""
    spec = make_spec("gru")
    params = init_params(spec.model, VOCAB, seed=3)
    models = [backend.build(spec, VOCAB, "cpu", params, mode) for mode in backend.modes]
    one_by_one = backend.build(spec, VOCAB, "cpu", params, "scan")
    one_by_one._capacity["train"][(BATCH, STEPS)] = 1  # chunks of one batch: the state crosses calls
    assert one_by_one.train_epoch([]).tokens == 0
    models.append(one_by_one)
    data = [batches(30 + e, 3) for e in range(2)]
    losses = [[m.train_epoch(d).loss_sum for d in data] for m in models]
    np.testing.assert_allclose(losses[1:], [losses[0]] * (len(models) - 1), rtol=1e-5)
    first = models[0].get_params()
    for other in models[1:]:
        got = other.get_params()
        for name in first:
            np.testing.assert_allclose(got[name], first[name], rtol=1e-4, atol=1e-6)


def test_default_mode_is_one_of_the_modes(backend):
    assert backend.default_mode in backend.modes and "scan" in backend.modes


def test_unknown_mode_is_a_spec_error(backend):
    spec = make_spec()
    with pytest.raises(SpecError, match="no mode 'fast'"):
        backend.build(spec, VOCAB, "cpu", None, "fast")


def test_gpu_without_a_gpu_is_device_unavailable(backend):
    if any(d.startswith("gpu") for d in backend.devices()):
        pytest.skip("this machine has a GPU")
    with pytest.raises(DeviceUnavailable, match="sees no GPU"):
        backend.build(make_spec(), VOCAB, "gpu:0")


def test_framework_init_is_canonical_seeded_and_trains(backend):
    spec = make_spec("lstm", sampling="random", lr=0.5)
    first = backend.build(spec, VOCAB, "cpu").get_params()
    again = backend.build(spec, VOCAB, "cpu").get_params()
    shapes = param_shapes(spec.model, VOCAB)
    assert {k: v.shape for k, v in first.items()} == shapes
    assert all(v.dtype == np.float32 for v in first.values())
    for name in shapes:
        np.testing.assert_array_equal(first[name], again[name])
    assert not first["rnn.l0.fwd.b_ih"].any() and first["rnn.l0.fwd.w_hh"].any()
    model = backend.build(spec, VOCAB, "cpu")
    data = batches(40, 1) * 30
    losses = [model.train_epoch([b]).loss_sum for b in data]
    assert losses[-1] < losses[0]


def test_dropout_trains_and_evaluation_is_deterministic(backend):
    spec = make_spec(dropout=0.5)
    params = init_params(spec.model, VOCAB, seed=5)
    model = backend.build(spec, VOCAB, "cpu", params)
    data = batches(50, 3)
    without = model.evaluate(data).loss_sum  # no dropout when evaluating ...
    assert model.evaluate(data).loss_sum == without
    assert model.train_epoch(data).loss_sum != pytest.approx(without, rel=1e-6)  # ... but in training


def test_float64_parameters_stay_float64(backend):
    spec = make_spec(dtype="float64")
    model = backend.build(spec, VOCAB, "cpu", init_params(spec.model, VOCAB, seed=6, dtype="float64"))
    model.train_epoch(batches(60, 2))
    assert all(v.dtype == np.float64 for v in model.get_params().values())


def test_environment_records_versions_and_threads(backend):
    env = backend.environment()
    assert env["framework"] == "jax" and env["platform"] in ("cpu", "gpu", "cuda", "rocm")
    assert set(env["versions"]) == {"jax", "jaxlib", "flax", "optax", "numpy"}
    assert isinstance(env["threads"], int) and env["threads"] >= 1


def test_xla_environment_threads_and_flags(monkeypatch):
    import os

    from backends.jax_flax import _xla_env

    scheduler = "--xla_cpu_enable_concurrency_optimized_scheduler"
    monkeypatch.setenv("PJRT_NPROC", "0")
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    _xla_env.configure(1)
    assert os.environ["PJRT_NPROC"] == "1"
    flags = os.environ["XLA_FLAGS"].split()
    assert flags == ["--xla_dump_to=/tmp/x", f"{scheduler}=false", "--xla_cpu_multi_thread_eigen=false"]
    _xla_env.configure(2)
    assert os.environ["PJRT_NPROC"] == "2"
    assert os.environ["XLA_FLAGS"].split() == ["--xla_dump_to=/tmp/x", f"{scheduler}=false"]
    monkeypatch.setenv("XLA_FLAGS", f"{scheduler}=true")  # the user's choice wins
    _xla_env.configure(None)
    assert os.environ["XLA_FLAGS"] == f"{scheduler}=true" and os.environ["PJRT_NPROC"] == "2"


# ---- the "wavefront" mode (backends/jax_flax/wavefront.py) against the numpy reference ----

def wave_spec(cell="lstm", layers=2, dtype="float32", steps=STEPS, **train) -> RunSpec:
    model = ModelSpec(cell=cell, num_layers=layers, num_hiddens=8)
    defaults = dict(batch_size=BATCH, num_steps=steps, lr=1.0, clip=1.0, epochs=1, dtype=dtype)
    return RunSpec(model=model, train=TrainSpec(**{**defaults, **train}))


def as64(params):
    return {k: v.astype(np.float64) for k, v in params.items()}


def random_state(spec: RunSpec, seed: int):
    """A nonzero initial state shaped like `reference.zero_state`, in the spec's dtype."""
    shapes = [s.shape for s in reference.zero_state(spec.model, BATCH, np.float64)]
    rng = np.random.RandomState(seed)
    return tuple((0.5 * rng.randn(*shape)).astype(spec.train.dtype) for shape in shapes)


def apply_net(model, X, state):
    """Logits and final state of a built model, from the given initial state."""
    with model._context():
        return jax.device_get(model._net.apply({"params": model._params}, X, state, False))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell,layers,steps", [(c, n, STEPS) for c in ("rnn", "gru", "lstm") for n in (2, 3)]
                         + [("gru", 3, 2), ("lstm", 3, 1)])  # fewer steps than layers: no steady part
def test_wavefront_loss_and_grads_match_reference(backend, cell, layers, steps, dtype):
    spec = wave_spec(cell, layers, dtype, steps)
    params = init_params(spec.model, VOCAB, seed=3, dtype=dtype)
    model = backend.build(spec, VOCAB, "cpu", params, "wavefront")
    X = np.random.RandomState(4).randint(0, VOCAB, (BATCH, steps)).astype(np.int32)
    Y = (X + 1) % VOCAB
    loss, grads = model.loss_and_grads(X, Y)
    ref_loss, ref_grads, _ = reference.loss_and_grads(as64(params), spec.model, X, Y)
    assert set(grads) == set(ref_grads)
    assert abs(loss - ref_loss) / ref_loss <= reference.PARITY_TOLERANCE[dtype]
    worst = max(reference.relative_error(grads[k], ref_grads[k]) for k in ref_grads)
    assert worst <= reference.PARITY_TOLERANCE[dtype], f"largest gradient relative error {worst:.2e}"


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_wavefront_sequential_epoch_carries_state(backend, cell):
    """Ten sequential batches (state carried across them): summed loss and final parameters."""
    spec = wave_spec(cell, 3, sampling="sequential")
    params = init_params(spec.model, VOCAB, seed=9)
    model = backend.build(spec, VOCAB, "cpu", params, "wavefront")
    data = [(X, (X + 1) % VOCAB) for X, _ in batches(70, 10)]
    stats = model.train_epoch(data)
    want, final = reference.train_trajectory(as64(params), spec.model, spec.train, data)
    assert abs(stats.loss_sum / stats.tokens - np.mean(want)) / np.mean(want) <= 1e-4
    got = model.get_params()
    assert max(reference.relative_error(got[k], final[k]) for k in final) <= 1e-3


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_wavefront_final_state_and_state_gradients_equal_scan(backend, cell):
    """From a nonzero initial state: logits and final state equal the scan mode's (and the
    reference's), and so do the gradients w.r.t. the initial state (float64)."""
    spec = wave_spec(cell, 3, "float64")
    params = init_params(spec.model, VOCAB, seed=12, dtype="float64")
    X = batches(80, 1)[0][0]
    state = random_state(spec, 13)
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
    from backends.jax_flax.cells import wavefront_supported

    spec = wave_spec("gru")
    spec = dataclasses.replace(spec, model=dataclasses.replace(spec.model, **change))
    assert not wavefront_supported(spec.model) and wavefront_supported(wave_spec("gru").model)
    params = init_params(spec.model, VOCAB, seed=14)
    data = batches(90, 2)
    losses = [backend.build(spec, VOCAB, "cpu", params, mode).train_epoch(data).loss_sum
              for mode in ("scan", "wavefront")]
    assert losses[0] == losses[1]
