"""Memory beside speed (issue 27): training's own peak resident memory, not what came
before it (common.rss); the recorded peak grows with the model in every installed
backend; summary.json and the headline carry it with the ratio to the leanest row."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from common import rss
from common.records import iter_records

REPO = Path(__file__).resolve().parents[1]


WATERMARK = """
import json
from common import rss
def _touch(mib):
    block = bytearray(mib * 1024 * 1024)
    block[::4096] = b"\\1" * len(block[::4096])
    return block
before = _touch(300)  # like the matmul peak measurement before the first epoch
del before
mark = rss.Watermark()
during = _touch(40)
print(json.dumps({"scope": mark.scope, "added": mark.peak_mib() - mark.start_mib, **mark.fields()}))
"""


def test_the_watermark_leaves_out_what_came_before_training():
    """In a fresh process: the test process's heap may keep freed memory resident
    (backends/heap.py tunes it), which would hide the 40 MiB."""
    if not rss.CLEAR_REFS.exists():
        pytest.skip("no /proc/self/clear_refs here: the process peak is kept (scope `process`)")
    done = subprocess.run([sys.executable, "-c", WATERMARK], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")})
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["scope"] == "training" and seen["peak_scope"] == "training"
    assert 40 <= seen["added"] < 120, seen  # training's 40 MiB, not the 300 before it


def test_the_recorded_peak_grows_with_the_model(backend, data_dir, tmp_path):
    peaks = {}
    for hiddens in (16, 1024):
        out = tmp_path / str(hiddens)
        done = subprocess.run([sys.executable, "-m", "benchmarks", "run", "--backend", backend, "--preset", "smoke",
                               "--set", f"num_hiddens={hiddens}", "--epochs", "1", "--threads", "1", "--no-peak",
                               "--quiet", "--results", str(out), "--data-dir", str(data_dir)],
                              cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        summary = next(iter_records(out))["summary"]
        assert summary["peak_scope"] in ("training", "process") and summary["rss_start_mb"] > 0
        peaks[hiddens] = summary["train_peak_rss_mb"]
    # 2 x 1024 LSTM layers: 8.6 M parameters, with gradients and optimizer state well over 50 MiB
    assert peaks[1024] - peaks[16] > 50, peaks


def test_summary_and_headline_carry_peak_memory_and_the_ratio_to_the_leanest(tmp_path):
    pytest.importorskip("pandas")
    pytest.importorskip("scipy")
    pytest.importorskip("matplotlib")
    from benchmarks.report import build_report
    from tests.fake_records import record, write

    rates = [50_000, 51_000, 49_000, 50_500, 50_200, 49_800]
    lean, heavy = record("mxnet", "c1", rates), record("pytorch", "c1", rates)
    for rec, peak in ((lean, 300.0), (heavy, 480.0)):
        rec["summary"].update(train_peak_rss_mb=peak, rss_start_mb=200.0, peak_scope="training", peak_rss_mb=900.0)
    old = record("jax", "c1", rates)
    old["summary"]["peak_rss_mb"] = 600.0  # written before the watermark: the process peak stands in
    build_report(write(tmp_path / "runs", lean, heavy, old), tmp_path / "out")
    rows = {r["backend"]: r for r in json.loads((tmp_path / "out" / "summary.json").read_text())["rows"]}
    assert rows["mxnet"]["peak_mem_mb"] == 300.0 and rows["mxnet"]["mem_vs_leanest"] == pytest.approx(1.0)
    assert rows["pytorch"]["mem_increase_mb"] == pytest.approx(280.0)
    assert rows["pytorch"]["mem_vs_leanest"] == pytest.approx(1.6)
    assert rows["jax"]["peak_mem_mb"] == 600.0 and rows["jax"]["mem_scope"] == "process"
    page = (tmp_path / "out" / "REPORT.md").read_text()
    assert "peak MiB (vs leanest)" in page and "480 (1.60×)" in page


def test_a_gpus_own_peak_is_recorded_and_shown_only_where_one_ran(tmp_path):
    """Backend.device_memory read after every epoch (a stand-in for a GPU's allocator, since
    these machines have none): the record's peak is the largest seen, the start the first
    reading; summary.json carries `peak_device_mem_mb`, and the headline gets its column
    only when some row has one."""
    pytest.importorskip("pandas")
    pytest.importorskip("scipy")
    pytest.importorskip("matplotlib")
    from benchmarks.report import build_report
    from benchmarks.run.harness import DeviceMemory
    from tests.fake_records import record, write

    readings = iter([(100.0, 100.0), (250.0, 400.0), (240.0, 380.0)])
    device = DeviceMemory(lambda: next(readings))
    for _ in range(3):
        device.sample()
    assert device.fields() == {"train_peak_device_mib": 400.0, "device_start_mib": 100.0}
    cpu = DeviceMemory(lambda: None)
    cpu.sample()
    assert cpu.fields() == {"train_peak_device_mib": None, "device_start_mib": None}

    rates = [50_000, 51_000, 49_000, 50_500, 50_200, 49_800]
    gpu, host = record("pytorch", "c1", rates), record("mxnet", "c1", rates)
    gpu["summary"].update(device.fields())
    build_report(write(tmp_path / "runs", gpu, host), tmp_path / "out")
    rows = {r["backend"]: r for r in json.loads((tmp_path / "out" / "summary.json").read_text())["rows"]}
    assert rows["pytorch"]["peak_device_mem_mb"] == 400.0 and rows["mxnet"]["peak_device_mem_mb"] is None
    assert "device peak MiB" in (tmp_path / "out" / "REPORT.md").read_text()
    build_report(write(tmp_path / "cpu", record("jax", "c2", rates)), tmp_path / "cpu-out")
    assert "device peak MiB" not in (tmp_path / "cpu-out" / "REPORT.md").read_text()
