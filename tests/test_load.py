"""Disturbed rounds from /proc/stat (common.load): a fake procfs fed to psutil, its
counters advanced as another program and the contender would advance them."""

from __future__ import annotations

import os

import pytest

psutil = pytest.importorskip("psutil")

from common import load  # noqa: E402

HZ = 100  # USER_HZ: /proc counts CPU time in ticks


def write_procfs(root, machine: dict[str, int], own: tuple[int, int]) -> None:
    """/proc/stat (aggregate line in ticks) and /proc/<pid>/stat (utime, stime)."""
    fields = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice"]
    (root / "stat").write_text("cpu  " + " ".join(str(machine.get(f, 0)) for f in fields) + "\n"
                               + "cpu0 0 0 0 0 0 0 0 0 0 0\nbtime 1700000000\n")
    pid = os.getpid()
    (root / str(pid)).mkdir(exist_ok=True)
    rest = " ".join(["0"] * 30)
    (root / str(pid) / "stat").write_text(f"{pid} (python) R 1 1 1 0 -1 0 0 0 0 0 {own[0]} {own[1]} 0 0 20 0 1 0 "
                                          f"100 {rest}\n")


@pytest.fixture
def procfs(tmp_path, monkeypatch):
    monkeypatch.setattr(psutil, "PROCFS_PATH", str(tmp_path))
    return tmp_path


def test_other_programs_cpu_flags_the_round(procfs):
    write_procfs(procfs, {"user": 1000, "system": 200, "idle": 5000}, (300, 50))
    start = load.snapshot(10.0)
    # 2 s of wall on 2 CPUs: the contender took 1.9 CPU-s, the machine was busy 2.9 CPU-s
    write_procfs(procfs, {"user": 1000 + 260, "system": 200 + 30, "idle": 5000 + 110}, (300 + 170, 50 + 20))
    measured = load.round_load(start, load.snapshot(12.0), threads=2, cpus=2)
    assert measured["own_cpu_s"] == pytest.approx(1.9)
    assert measured["foreign_cpu_s"] == pytest.approx(1.0)
    assert measured["foreign"] == pytest.approx(0.25) and measured["efficiency"] == pytest.approx(0.475)
    assert load.is_disturbed(measured)


def test_a_quiet_round_and_steal(procfs):
    write_procfs(procfs, {"user": 1000, "system": 200, "idle": 5000, "steal": 10}, (300, 50))
    start = load.snapshot(0.0)
    write_procfs(procfs, {"user": 1190, "system": 212, "idle": 5198, "steal": 10}, (485, 62))
    quiet = load.round_load(start, load.snapshot(2.0), threads=2, cpus=2)
    assert quiet["foreign"] == pytest.approx(0.0125) and not load.is_disturbed(quiet)
    write_procfs(procfs, {"user": 1000 + 380, "system": 200 + 24, "idle": 5000 + 300, "steal": 10 + 60},
                 (300 + 370, 50 + 24))
    stolen = load.round_load(start, load.snapshot(6.0), threads=2, cpus=2)  # the first 6 s
    assert stolen["steal"] == pytest.approx(0.6 / 12) and not load.is_disturbed({**stolen, "steal": 0.05})
    assert load.is_disturbed({**stolen, "steal": 0.06})


def test_no_measure_without_procfs(tmp_path, monkeypatch):
    monkeypatch.setattr(psutil, "PROCFS_PATH", str(tmp_path / "absent"))
    assert load.snapshot(0.0) is None
    assert load.round_load(None, None, 2) is None and not load.is_disturbed(None)


class FakeMachine:
    """A clock and CPU counters: `foreign` CPU seconds per second in each 0.1 s window."""

    def __init__(self, foreign: list[float]):
        self.now, self.busy, self.foreign = 0.0, 0.0, list(foreign)

    def snap(self, wall: float) -> load.Snapshot:
        return load.Snapshot(wall, self.busy, 0.0, 0.0)

    def sleep(self, seconds: float) -> None:
        rate = self.foreign.pop(0) if self.foreign else 0.0
        self.busy += rate * seconds
        self.now += seconds


def waited(foreign: list[float], limit_s: float = 3.0) -> float:
    machine = FakeMachine(foreign)
    return load.wait_quiet(limit_s, 0.1, machine.snap, lambda: machine.now, machine.sleep)


def test_wait_quiet_waits_out_a_burst_and_no_longer():
    cpus = os.cpu_count() or 1
    burst = 1.0  # one core busy: half a 2-core machine
    assert waited([0.0]) == pytest.approx(0.1)  # quiet at once: one window
    assert waited([burst, burst, burst, 0.0]) == pytest.approx(0.4)  # three busy windows, then quiet
    assert waited([load.QUIET_LIMIT * cpus * 0.5] * 5) == pytest.approx(0.1)  # light load counts as quiet
    assert 1.0 - 1e-9 <= waited([burst] * 100, limit_s=1.0) <= 1.1 + 1e-9  # never quiet: gives up at the limit
