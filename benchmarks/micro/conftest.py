"""Options and parametrization of the micro-benchmarks (`pytest benchmarks/micro`).

`case` is parametrized at collection over backend x cell x mode of every backend that
loads here, as the id string `backend-cell-mode` (so pytest-benchmark's JSON keeps it
readable); a backend whose framework is missing is one skipped entry with the reason.
Threads are fixed before any framework loads (XLA reads them once per process).
"""

from __future__ import annotations

import pytest

from backends import BACKENDS
from benchmarks.micro.cases import Case, Unavailable, build_workload, enumerate_cases
from benchmarks.run.harness import measure_peaks


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rnnbench micro-benchmarks")
    group.addoption("--micro-backend", action="append", choices=list(BACKENDS), default=None,
                    help="only this backend (repeatable; default: every backend, absent ones skip)")
    group.addoption("--micro-threads", type=int, default=None, help="intra-op threads (default: all cores)")
    group.addoption("--micro-device", default="cpu", help="cpu or gpu:N (default cpu)")
    group.addoption("--micro-rounds", type=int, default=20,
                    help="timed training steps (and recurrent passes) per case (default 20)")
    group.addoption("--micro-gen-rounds", type=int, default=200,
                    help="timed generation steps per case (default 200; each is one token)")
    group.addoption("--micro-warmup", type=int, default=3,
                    help="untimed warm-up calls per case, compilation included (default 3)")


def _param(entry: Case | Unavailable):
    if isinstance(entry, Unavailable):
        return pytest.param(entry.id, id=entry.id, marks=pytest.mark.skip(reason=entry.reason))
    return pytest.param(entry.id, id=entry.id)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        config = metafunc.config
        entries = enumerate_cases(config.getoption("micro_backend"), config.getoption("micro_threads"))
        metafunc.parametrize("case", [_param(e) for e in entries])


@pytest.fixture
def workload(case: str, request: pytest.FixtureRequest):
    """The case's model, built fresh for each test (training mutates it)."""
    config = request.config
    return build_workload(Case.from_id(case), config.getoption("micro_threads"), config.getoption("micro_device"))


@pytest.fixture
def micro_options(request: pytest.FixtureRequest) -> dict:
    get = request.config.getoption
    return {"device": get("micro_device"), "warmup": get("micro_warmup"),
            "rounds": {"train": get("micro_rounds"), "recurrent": get("micro_rounds"),
                       "generate": get("micro_gen_rounds")}}


@pytest.fixture(scope="session")
def matmul_peak():
    """peak(workload): its framework's plain float32 matmul FLOP/s on its device (the
    ceiling's choice, as `run` records), measured once per session, or None if none."""
    peaks: dict[tuple[str, str], float | None] = {}

    def peak(work, device: str) -> float | None:
        key = (work.case.backend, device)
        if key not in peaks:
            peaks[key] = measure_peaks(work.backend, device).get("plain")
        return peaks[key]

    return peak
