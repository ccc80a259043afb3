"""`campaign --workers 1,2`: worker counts become contenders, each backend in its
data-parallel mode (so the 1-worker baseline is the same mode), and bad lists are
refused in one line. No framework is imported."""

from __future__ import annotations

import argparse
import sys

import pytest

from backends.distributed import DATA_PARALLEL_MODE, check_mode
from benchmarks.campaign.driver import contenders_from, worker_counts
from common.errors import SpecError


def _opts(**kw) -> argparse.Namespace:
    return argparse.Namespace(**{"python": [], "modes": None, "checkout": [], "workers": None, **kw})


def test_worker_counts_are_contenders_in_the_data_parallel_mode():
    found = contenders_from(_opts(python=[f"pytorch={sys.executable}", f"jax={sys.executable}"], workers="1,2"))
    assert [(c.backend, c.mode, c.workers) for c in found] == [
        ("pytorch", "nn", 1), ("pytorch", "nn", 2), ("jax", "scan", 1), ("jax", "scan", 2)]
    assert found[1].label == "pytorch/nn x2"


def test_without_workers_nothing_changes():
    found = contenders_from(_opts(python=[f"mxnet={sys.executable}"], modes="hybridized"))
    assert [(c.mode, c.workers, c.label) for c in found] == [("hybridized", None, "mxnet/hybridized")]


@pytest.mark.parametrize("text", ["0,2", "two", "1,,2"])
def test_bad_worker_lists_are_refused(text):
    with pytest.raises(SpecError, match="--workers"):
        worker_counts(text)


def test_a_mode_other_than_the_data_parallel_one_is_refused_naming_it():
    assert check_mode("jax", None, DATA_PARALLEL_MODE["jax"]) == "scan"
    with pytest.raises(SpecError, match="use --mode nn"):
        check_mode("pytorch", "eager", "nn")
