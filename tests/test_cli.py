"""The command line end to end: a smoke run per installed backend writes a valid
record; user mistakes end with one clear line and exit code 2, no traceback."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from backends import BACKENDS, load_backend
from common.errors import BackendUnavailable
from common.records import REQUIRED, SCHEMA, iter_records

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, data_dir: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "benchmarks", *args]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def installed(name: str) -> bool:
    try:
        load_backend(name, threads=1)
        return True
    except BackendUnavailable:
        return False


@pytest.fixture(params=list(BACKENDS))
def backend_name(request):
    if not installed(request.param):
        pytest.skip(f"{request.param} is not installed in this venv")
    return request.param


def test_smoke_run_writes_a_valid_record(backend_name, data_dir, tmp_path):
    out = cli("run", "--backend", backend_name, "--preset", "smoke", "--threads", "1",
              "--results", str(tmp_path), data_dir=data_dir)
    assert out.returncode == 0, out.stderr
    assert "tokens/sec" in out.stdout and "Traceback" not in out.stderr
    [record] = list(iter_records(tmp_path))
    assert set(REQUIRED) <= set(record) and record["schema"] == SCHEMA
    assert record["status"] == "ok" and record["backend"] == backend_name
    assert record["device"]["kind"] == "cpu" and record["threads"] == 1
    assert [e["epoch"] for e in record["epochs"]] == [1, 2, 3]
    assert all(e["tokens"] > 0 and e["tok_s"] > 0 for e in record["epochs"])
    assert record["epochs"][-1]["train_ppl"] < record["epochs"][0]["train_ppl"]  # it learns
    assert record["summary"]["final_train_ppl"] == record["epochs"][-1]["train_ppl"]
    assert record["samples"]["time traveller"].startswith("time traveller")
    assert record["env"]["framework"]["framework"] == backend_name
    assert record["spec"]["model"]["num_hiddens"] == 16


def test_all_backends_train_the_same_smoke_epochs(data_dir, tmp_path):
    """Same data, same initial parameters: the same first-epoch perplexity everywhere."""
    names = [n for n in BACKENDS if installed(n)]
    if len(names) < 2:
        pytest.skip("needs two backends in one venv; the parity suite covers each against the reference")
    ppl = {}
    for name in names:
        out = cli("run", "--backend", name, "--preset", "smoke", "--results", str(tmp_path / name), data_dir=data_dir)
        assert out.returncode == 0, out.stderr
        ppl[name] = next(iter_records(tmp_path / name))["epochs"][0]["train_ppl"]
    assert max(ppl.values()) / min(ppl.values()) - 1 < 1e-4, ppl


@pytest.mark.parametrize("args,message", [
    (["run", "--backend", "pytorch", "--preset", "nope"], "unknown preset 'nope'; available:"),
    (["run", "--backend", "pytorch", "--preset", "smoke", "--epochs", "0"], "epochs=0 must be"),
    (["run", "--backend", "pytorch", "--preset", "smoke", "--set", "cell=transformer"], "cell='transformer'"),
    (["run", "--backend", "pytorch", "--preset", "smoke", "--set", "num_steps=5000"], "num_steps=5000"),
    (["run", "--backend", "pytorch", "--preset", "smoke", "--threads", "0"], "--threads=0"),
])
def test_user_mistakes_give_one_line(args, message, data_dir):
    out = cli(*args, data_dir=data_dir)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_unknown_backend_is_refused_by_the_parser():
    out = cli("run", "--backend", "tensorflow")
    assert out.returncode == 2 and "invalid choice: 'tensorflow'" in out.stderr


def test_gpu_without_cuda_is_a_clear_error(backend_name, data_dir, tmp_path):
    load_backend(backend_name, threads=1)
    if any(d.startswith("gpu") for d in load_backend(backend_name).devices()):
        pytest.skip("this machine has a GPU")
    out = cli("run", "--backend", backend_name, "--preset", "smoke", "--device", "gpu:0",
              "--results", str(tmp_path), data_dir=data_dir)
    assert out.returncode == 2 and "sees no GPU" in out.stderr and "--device cpu" in out.stderr
    assert not list(tmp_path.glob("*.jsonl"))  # nothing recorded for a run that never started


def test_corrupt_data_names_the_file_and_hash(backend_name, data_dir, tmp_path):
    bad = tmp_path / "data"
    bad.mkdir()
    (bad / "timemachine.txt").write_text("not the book")
    out = cli("run", "--backend", backend_name, "--preset", "smoke", "--results", str(tmp_path), data_dir=bad)
    assert out.returncode == 2, out.stderr
    assert "timemachine.txt" in out.stderr and "090b5e7e70c295757f55df93cb0a180b9691891a" in out.stderr


def test_divergence_is_recorded_and_exits_1(backend_name, data_dir, tmp_path):
    out = cli("run", "--backend", backend_name, "--preset", "smoke", "--set", "lr=1e30", "--set", "clip=0",
              "--results", str(tmp_path), data_dir=data_dir)
    assert out.returncode == 1, out.stderr
    [record] = list(iter_records(tmp_path))
    assert record["status"] == "diverged" and "lower lr" in record["error"]
    assert not math.isfinite(record["epochs"][-1]["train_ppl"])


def test_interrupt_writes_an_interrupted_record(backend_name, data_dir, tmp_path):
    """SIGINT mid-run: the epochs done are kept in a valid `interrupted` record."""
    import signal
    import time

    cmd = [sys.executable, "-m", "benchmarks", "run", "--backend", backend_name, "--preset", "smoke",
           "--epochs", "100000", "--threads", "1", "--results", str(tmp_path), "--data-dir", str(data_dir)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(8)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    [record] = list(iter_records(tmp_path))
    assert record["status"] == "interrupted" and record["summary"]["epochs_done"] >= 1
    lines = next(tmp_path.glob("*.jsonl")).read_text().splitlines()
    assert all(json.loads(line) for line in lines)


def test_list_shows_presets_and_backends():
    out = cli("list")
    assert out.returncode == 0
    assert "d2l-deep-lstm" in out.stdout and "pytorch" in out.stdout


def test_parity_command_passes(backend_name, data_dir):
    out = cli("parity", "--backend", backend_name, "--preset", "smoke", data_dir=data_dir)
    assert out.returncode == 0, out.stderr
    assert "PASS" in out.stdout


