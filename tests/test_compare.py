"""`python -m benchmarks.compare`: a before/after of two checkouts through fresh processes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from backends import BACKENDS, load_backend
from benchmarks import compare
from common.errors import BackendUnavailable

ROOT = Path(__file__).resolve().parent.parent


def test_a_folder_that_is_not_a_checkout_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        compare.main(["--before", str(tmp_path), "--after", str(ROOT), "--backend", "pytorch"])
    assert "is not an rnnbench checkout" in capsys.readouterr().err


def test_zero_rounds_are_refused(capsys):
    with pytest.raises(SystemExit):
        compare.main(["--before", str(ROOT), "--backend", "pytorch", "--rounds", "0"])
    assert "--rounds must be at least 1; got 0" in capsys.readouterr().err


@pytest.mark.parametrize("name", list(BACKENDS))
def test_this_checkout_against_itself(name, capsys):
    """One round, one batch an epoch, the RNN cell: two real measurements and their ratio."""
    try:
        load_backend(name, 1)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))
    compare.main(["--before", str(ROOT), "--after", str(ROOT), "--backend", name, "--cell", "rnn",
                  "--rounds", "1", "--batches", "1", "--threads", "1"])
    out = capsys.readouterr().out
    before, after = (float(v.replace(",", "")) for v in re.search(r"before ([\d,]+)  after ([\d,]+)", out).groups())
    assert before > 0 and after > 0
    assert f"after / before = {after / before:.3f}" in out


def test_a_failing_run_reports_its_error(tmp_path):
    fake = tmp_path / "broken"
    (fake / "benchmarks" / "micro").mkdir(parents=True)
    (fake / "backends").mkdir()
    (fake / "benchmarks" / "micro" / "cases.py").write_text("")
    (fake / "backends" / "__init__.py").write_text("raise RuntimeError('broken checkout')\n")
    with pytest.raises(SystemExit, match=r"the run in .*broken failed:(.|\n)*RuntimeError: broken checkout"):
        compare.main(["--before", str(fake), "--after", str(ROOT), "--backend", "pytorch"])
