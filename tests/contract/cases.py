"""The one place the contract suite's cases come from: which backends are tested here
(RNNBENCH_TEST_BACKENDS), their modes and cells, the small specs and batches.

RNNBENCH_TEST_BACKENDS (comma-separated, as einops' EINOPS_TEST_BACKENDS): the backends
this run must test; one that cannot load fails the run at its start (tests/conftest.py),
the others skip. Unset or empty: every backend that loads is tested, the others skip.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from backends import BACKENDS, load_backend
from backends.base import Backend
from common import reference
from common.errors import BackendUnavailable
from common.specs import CELLS, ModelSpec, RunSpec, TrainSpec

VOCAB, BATCH, STEPS, HIDDEN = 7, 3, 5, 8
DTYPES = ("float32", "float64")
TOLERANCE = reference.PARITY_TOLERANCE
THREADS = 1  # every test loads with one thread: XLA fixes its count at the first load
TRAIN_TOLERANCE = {"float32": 1e-4, "float64": 1e-9}  # a training trajectory's loss against the reference's

# The contract's exceptions, all in one table (as Keras keeps its per-backend exclusion
# file): (backend, mode) -> {case: why}. A mode is excepted from a case only where
# another mode of its backend runs the same code for that case in full.
_COMPILE = "torch.compile takes seconds per graph"
EXCEPTIONS = {
    ("pytorch", "compile"): {
        "training-float64": f"{_COMPILE}: float32 only",
        "training-variants": f"{_COMPILE}: its steps are `nn`'s",
        "carried-state": f"{_COMPILE}: its loop is `nn`'s",
        "normal-init": f"{_COMPILE}: its parameters load as `nn`'s",
        "learning-rate": f"{_COMPILE}: its optimizer is `nn`'s",
        "stream-evaluation": "torch.compile recompiles per block shape: its evaluation is `nn`'s",
    },
    # On the CPU these two compute synchronously (PyTorch always; MXNet on the NaiveEngine
    # its CPU builds use), so a synchronisation test could not fail there; on a GPU it runs.
    ("pytorch", "cpu"): {"synchronisation": "PyTorch computes synchronously on the CPU: nothing to wait for"},
    ("mxnet", "cpu"): {"synchronisation": "MXNet's NaiveEngine computes synchronously on the CPU"},
}


def skip_excepted(backend: Backend, mode: str | None, case: str) -> None:
    """Skip this test when EXCEPTIONS excuses (backend, mode or device) from `case`, saying why."""
    why = EXCEPTIONS.get((backend.name, mode), {}).get(case)
    if why:
        pytest.skip(why)

_loaded: dict[str, Backend | str] = {}


def required_backends() -> list[str]:
    """The names in RNNBENCH_TEST_BACKENDS (empty when unset)."""
    return [n.strip() for n in os.environ.get("RNNBENCH_TEST_BACKENDS", "").split(",") if n.strip()]


def loaded(name: str) -> Backend | str:
    """The backend, or why it is not tested here."""
    if name not in _loaded:
        required = required_backends()
        if required and name not in required:
            _loaded[name] = f"{name} is not in RNNBENCH_TEST_BACKENDS={','.join(required)}"
        else:
            try:
                _loaded[name] = load_backend(name, threads=THREADS)
            except BackendUnavailable as exc:
                _loaded[name] = str(exc)
    return _loaded[name]


def unloadable_required() -> list[str]:
    """One line per name in RNNBENCH_TEST_BACKENDS that is unknown or cannot load."""
    problems = []
    for name in required_backends():
        if name not in BACKENDS:
            problems.append(f"{name!r} is not a backend (choose from {', '.join(BACKENDS)})")
        elif isinstance(reason := loaded(name), str):
            problems.append(reason)
    return problems


def generate(metafunc: pytest.Metafunc) -> None:
    """Parametrize a test over backend (x mode x cell, for those it asks for). Marked
    `every_path`, a test gets every cell in the default mode and the LSTM in the others:
    every code path (the cells differ only in the default modes), not every pair."""
    axes = [a for a in ("backend", "mode", "cell") if a in metafunc.fixturenames]
    every_path = metafunc.definition.get_closest_marker("every_path") is not None
    params = []
    for name in BACKENDS:
        backend = loaded(name)
        if isinstance(backend, str):
            params.append(pytest.param(*[name] + [None] * (len(axes) - 1), id=name,
                                       marks=pytest.mark.skip(reason=backend)))
            continue
        for mode in backend.modes if "mode" in axes else [None]:
            for cell in CELLS if "cell" in axes else [None]:
                if every_path and mode not in (None, backend.default_mode) and cell not in (None, "lstm"):
                    continue
                values = {"backend": backend, "mode": mode, "cell": cell}
                ident = "-".join(v for v in (name, mode, cell) if v)
                params.append(pytest.param(*[values[a] for a in axes], id=ident))
    metafunc.parametrize(axes, params)


def make_spec(cell="lstm", layers=2, dtype="float32", bidirectional=False, input="one_hot", dropout=0.0,
              init="uniform", **train) -> RunSpec:
    model = ModelSpec(cell=cell, num_layers=layers, num_hiddens=HIDDEN, bidirectional=bidirectional,
                      input=input, embed_size=4 if input == "embedding" else 0, dropout=dropout, init=init)
    defaults = dict(batch_size=BATCH, num_steps=STEPS, lr=1.0, clip=0.1, epochs=1, dtype=dtype)
    return RunSpec(model=model, train=TrainSpec(**{**defaults, **train}))


def batches(seed: int, count: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random inputs; targets follow from them (x+1 mod V), so training can learn."""
    rng = np.random.RandomState(seed)
    return [(X, (X + 1) % VOCAB) for X in (rng.randint(0, VOCAB, (BATCH, STEPS)).astype(np.int32)
                                           for _ in range(count))]


def as64(params):
    return {k: v.astype(np.float64) for k, v in params.items()}


def worst_error(got, want) -> float:
    assert set(got) == set(want)
    return max(reference.relative_error(got[k], want[k]) for k in want)
