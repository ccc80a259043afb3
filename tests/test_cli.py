"""The command line end to end: a smoke run per installed backend writes a valid
record; user mistakes end with one clear line and exit code 2, no traceback."""

from __future__ import annotations

import json
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
    s = record["summary"]
    assert s["peak_flops"] > 1e8
    assert s["achieved_flops"] == pytest.approx(s["tok_s_median"] * s["train_flops_per_token"])
    assert s["utilisation"] == pytest.approx(s["achieved_flops"] / s["peak_flops"])
    assert 0 < s["utilisation"] <= 1  # a tiny model cannot beat the matmul peak
    assert s["peaks"]["plain"] == s["peak_flops"] and s["peak_flops_own"] == max(s["peaks"].values())
    assert record["track"] == "tuned" and record["mode_default"] and record["mode_description"]


def test_smoke_epoch_matches_the_reference(backend_name, data_dir, tmp_path):
    """The CLI's first smoke epoch has the perplexity the numpy reference computes from
    the same batches and initial parameters: identical across every backend's venv."""
    import numpy as np

    from common import reference
    from common.batches import train_batches
    from common.corpus import load_corpus
    from common.params import init_params
    from common.specs import load_preset

    out = cli("run", "--backend", backend_name, "--preset", "smoke", "--epochs", "1", "--no-peak",
              "--results", str(tmp_path), data_dir=data_dir)
    assert out.returncode == 0, out.stderr
    got = next(iter_records(tmp_path))["epochs"][0]["train_ppl"]
    spec, _ = load_preset("smoke")
    corpus = load_corpus(spec.data, data_dir)
    params = init_params(spec.model, len(corpus.vocab), spec.train.seed, "float64")
    losses, _ = reference.train_trajectory(params, spec.model, spec.train, train_batches(corpus, spec, 0))
    assert got == pytest.approx(float(np.exp(np.mean(losses))), rel=1e-4)


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
    out = cli("run", "--backend", backend_name, "--preset", "smoke", "--no-peak", "--set", "lr=1e30", "--set", "clip=0",
              "--results", str(tmp_path), data_dir=data_dir)
    assert out.returncode == 1, out.stderr
    [record] = list(iter_records(tmp_path))
    assert record["status"] == "diverged" and "lower lr" in record["error"]
    assert record["epochs"][-1]["train_ppl"] is None  # inf/NaN: records are strict JSON


def test_interrupt_writes_an_interrupted_record(backend_name, data_dir, tmp_path):
    """SIGINT mid-run: the epochs done are kept in a valid `interrupted` record."""
    import signal
    import time

    cmd = [sys.executable, "-m", "benchmarks", "run", "--backend", backend_name, "--preset", "smoke", "--no-peak",
           "--epochs", "100000", "--threads", "1", "--results", str(tmp_path), "--data-dir", str(data_dir),
           "--rounds", "2", "--gate"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    line = proc.stdout.readline()
    while line.startswith("@rnnbench alive"):  # the heartbeat (rounds.start_heartbeat)
        line = proc.stdout.readline()
    assert line.startswith("@rnnbench ready")  # the warm-up epoch is done: no fixed sleep
    proc.stdin.write("@rnnbench go\n")
    proc.stdin.flush()
    time.sleep(0.5)  # mid-training (round 1 is ~50,000 epochs)
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


def test_list_json_gives_each_backends_modes_with_track_and_description():
    """`list --json`: the same as `list`, as data; a backend that loads here lists every
    mode with its track and one-line description, and its mode for each track."""
    out = cli("list", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert {p["name"] for p in data["presets"]} >= {"d2l-deep-lstm", "quick-gru"}
    assert list(data["tracks"]) == ["out-of-box", "tuned", "book"]
    listed = {b["name"]: b for b in data["backends"]}
    assert set(listed) == set(BACKENDS)
    text = cli("list").stdout
    for name, item in listed.items():
        if not item["available"]:
            assert item["reason"] and name in text
            continue
        backend = load_backend(name, threads=1)
        assert [m["mode"] for m in item["modes"]] == list(backend.modes)
        for m in item["modes"]:
            assert m["track"] == backend.track_of(m["mode"]) and m["description"] == backend.describe_mode(m["mode"])
            assert m["default"] == (m["mode"] == backend.default_mode)
            assert f"[{m['track']}" in text and m["description"] in text
        assert item["tracks"] == backend.track_modes()


def test_parity_command_passes(backend_name, data_dir):
    out = cli("parity", "--backend", backend_name, "--preset", "smoke", data_dir=data_dir)
    assert out.returncode == 0, out.stderr
    assert "PASS" in out.stdout


