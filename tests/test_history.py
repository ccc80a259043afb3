"""`history` (issue 27) on planted campaigns: a 15% step between two campaigns is marked
and named, a 2% wobble is not, two machines' campaigns are never one series; an empty
folder is one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("pandas")
pytest.importorskip("scipy")
pytest.importorskip("matplotlib")

from benchmarks.cli import main  # noqa: E402
from tests.fake_records import record, write  # noqa: E402

RNG = np.random.default_rng(27)


def rates(level: float, n: int = 12) -> list[float]:
    return list(level * RNG.normal(1.0, 0.01, n))


def campaign(cid: str, day: int, level: float, version: str = "1", fingerprint: str = "fp-alpha") -> dict:
    rec = record("pytorch", cid, rates(level), fingerprint=fingerprint, stamp=f"2026-12-{day:02d}T10:00:00+00:00")
    rec["env"]["framework"]["version"] = version
    return rec


def test_a_step_is_marked_a_wobble_is_not_and_machines_are_apart(tmp_path, capsys):
    runs = write(tmp_path / "runs",
                 campaign("c1", 1, 50_000), campaign("c2", 2, 49_000),  # a 2% wobble
                 campaign("c3", 3, 49_000 * 1.15, version="2"),  # a 15% step with the upgrade
                 campaign("other", 4, 20_000, fingerprint="fp-beta"))  # another machine, far slower
    assert main(["history", "--results", str(runs), "--out", str(tmp_path / "out")]) == 0
    series = json.loads((tmp_path / "out" / "history.json").read_text())
    by_machine = {s["fingerprint"]: s for s in series}
    assert set(by_machine) == {"fp-alpha", "fp-beta"}  # two series: the machines never share a line
    alpha = by_machine["fp-alpha"]
    assert [p["campaign"] for p in alpha["points"]] == ["c1", "c2", "c3"]
    [step] = alpha["steps"]
    assert (step["from"], step["to"], step["verdict"], step["versions"]) == ("c2", "c3", "faster", "1 -> 2")
    assert 1.12 < step["ratio"] < 1.18 and step["ratio_ci"][0] > 1.10
    assert by_machine["fp-beta"]["steps"] == [] and len(by_machine["fp-beta"]["points"]) == 1
    out = capsys.readouterr().out
    assert "step: quick-lstm pytorch" in out and "faster 1.15x" in out and "(1 -> 2)" in out
    assert len(list((tmp_path / "out" / "plots").glob("history-*.png"))) == 2


def test_history_of_an_empty_folder_is_one_line(tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    assert main(["history", "--results", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no run records in") and "nox -s bench" in err[0]


def test_the_command_lines_default_step_is_the_statistics_own():
    """options.py (floor 0, no pandas) states compare's and history's --min-effect
    default itself; it must stay the report's rule."""
    from benchmarks.options import MIN_EFFECT
    from benchmarks.report.stats import COMPARE_MIN_EFFECT

    assert MIN_EFFECT == COMPARE_MIN_EFFECT
