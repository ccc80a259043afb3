"""Shared fixtures: the real data folder, cached corpora, and a network-free cache.

The data folder is $RNNBENCH_DATA, else ../shared/data beside the repository; tests
that need it skip (with the reason) only when neither exists.

RNNBENCH_TEST_BACKENDS (e.g. `pytorch`, set per venv by `nox -s tests`): every backend
named there must load, or the run fails before any test; see tests/contract/cases.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from contract.cases import loaded, unloadable_required

from backends import BACKENDS

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_sessionstart(session: pytest.Session) -> None:
    problems = unloadable_required()
    if problems:
        pytest.exit("RNNBENCH_TEST_BACKENDS names backends that cannot be tested here:\n  "
                    + "\n  ".join(problems), returncode=pytest.ExitCode.TESTS_FAILED)


@pytest.fixture(autouse=True)
def _no_network(tmp_path_factory, monkeypatch):
    """Never touch ~/.cache or the internet: a fresh cache and an unreachable hub."""
    cache = tmp_path_factory.mktemp("rnnbench-cache")
    monkeypatch.setenv("RNNBENCH_CACHE", str(cache))
    monkeypatch.setenv("RNNBENCH_DATA_URL", (cache / "no-hub").as_uri())


@pytest.fixture(scope="session")
def data_dir() -> Path:
    candidates = [Path(p) for p in [os.environ.get("RNNBENCH_DATA")] if p] + [DEFAULT_DATA]
    for folder in candidates:
        if (folder / "timemachine.txt").is_file():
            return folder
    pytest.skip(
        f"no data folder: set RNNBENCH_DATA to a folder holding timemachine.txt, "
        f"jaychou_lyrics.txt.zip and ptb.zip (looked in {', '.join(map(str, candidates))})"
    )


@pytest.fixture(scope="session")
def corpus_of(data_dir):
    """corpus_of(**DataSpec fields) -> Corpus, loaded once per session per spec."""
    from common.corpus import load_corpus
    from common.specs import DataSpec

    cache = {}

    def load(**fields):
        spec = DataSpec(**fields)
        if spec not in cache:
            cache[spec] = load_corpus(spec, data_dir)
        return cache[spec]

    return load


@pytest.fixture(params=list(BACKENDS))
def backend(request):
    """Each backend this venv tests (RNNBENCH_TEST_BACKENDS), the others skipped with the reason."""
    reason = loaded(request.param)
    if isinstance(reason, str):
        pytest.skip(reason)
    return request.param
