"""The micro-benchmark matrix (benchmarks/micro): importable anywhere, one case per
backend x cell x mode of every backend that loads here, one skipped entry per backend
that does not; and, per loadable backend, both timed calls run once."""

from __future__ import annotations

import numpy as np
import pytest

from backends import BACKENDS, load_backend
from benchmarks.micro.cases import (
    KINDS,
    VOCAB_SIZE,
    Case,
    Unavailable,
    build_workload,
    enumerate_cases,
    extra_info,
    micro_spec,
    random_batch,
)
from common.errors import BackendUnavailable
from common.flops import forward_flops_per_token
from common.specs import CELLS

THREADS = 1  # as the backend tests: XLA fixes its thread count at the first load


def _loadable() -> dict[str, tuple[str, ...]]:
    out = {}
    for name in BACKENDS:
        try:
            out[name] = load_backend(name, THREADS).modes
        except BackendUnavailable:
            pass
    return out


def test_cases_enumerate_backends_cells_and_modes():
    entries = enumerate_cases(threads=THREADS)
    loadable = _loadable()
    cases = [e for e in entries if isinstance(e, Case)]
    expected = {(b, c, m) for b, modes in loadable.items() for c in CELLS for m in modes}
    assert {(c.backend, c.cell, c.mode) for c in cases} == expected
    assert len(cases) == len(expected)
    missing = {e.backend for e in entries if isinstance(e, Unavailable)}
    assert missing == set(BACKENDS) - set(loadable)
    assert all("needs" in e.reason for e in entries if isinstance(e, Unavailable))
    ids = [e.id for e in entries]
    assert len(ids) == len(set(ids))
    assert all(Case.from_id(c.id) == c for c in cases)


def test_case_ids_round_trip_modes_with_dashes():
    case = Case("jax", "gru", "scan-unroll")
    assert case.id == "jax-gru-scan-unroll" and Case.from_id(case.id) == case


def test_shape_and_batch_are_the_book_deep_lstm():
    spec = micro_spec("gru")
    assert (spec.model.cell, spec.model.num_layers, spec.model.num_hiddens, spec.model.input) == ("gru", 2, 256,
                                                                                                     "one_hot")
    X, Y = random_batch(spec)
    assert X.shape == Y.shape == (32, 35) and X.dtype == Y.dtype == np.int32
    assert 0 <= X.min() and X.max() < VOCAB_SIZE
    assert np.array_equal(random_batch(spec)[0], X)  # seeded: the same bytes every time


def _workload(name: str, cell: str = "rnn", mode: str | None = None):
    try:
        backend = load_backend(name, THREADS)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))
    return build_workload(Case(name, cell, mode or backend.default_mode), THREADS)


@pytest.mark.parametrize("name", list(BACKENDS))
def test_every_step_runs_once_and_reports_its_work(name):
    work = _workload(name)
    for kind in KINDS:
        work.step(kind)()
    forward = forward_flops_per_token(work.spec.model, VOCAB_SIZE)
    one_hot_grad = 2 * work.spec.model.gates * 256 * VOCAB_SIZE  # the input gradient nothing needs
    train = 3 * forward - one_hot_grad
    assert work.flops_per_token("train") == train and work.flops_per_token("generate") == forward
    recurrent = work.flops_per_token("recurrent")
    assert recurrent == 3 * (forward - 2 * VOCAB_SIZE * 256) - one_hot_grad  # all but the dense layer's products
    info = extra_info(work, "train", "cpu", median_s=0.01, min_s=0.005, matmul_peak=4e11)
    assert info["tokens_per_call"] == 32 * 35 and info["mode_default"] is True and info["matmul_peak"] == 4e11
    assert info["tok_s_median"] == pytest.approx(112000) and info["tok_s_best"] == pytest.approx(224000)
    assert info["flops_s_median"] == pytest.approx(112000 * train)
    assert extra_info(work, "generate", "cpu", None, None)["tokens_per_call"] == 1
    assert extra_info(work, "recurrent", "cpu", None, None)["tokens_per_call"] == 32 * 35
