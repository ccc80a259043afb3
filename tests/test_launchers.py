"""The README's multi-machine commands, run on this one machine as two nodes over
loopback: `torchrun --nnodes 2` (one per node rank), MXNet's `tools/launch.py` with its
local launcher, and two JAX processes joined through RNNBENCH_COORDINATOR. Workers
started by each framework's own launcher leave `parity.npz` in RNNBENCH_OUT, and
`parity --launched DIR` must pass against one process and the numpy reference, as
`parity --workers 2` does."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from contract.cases import loaded

REPO = Path(__file__).resolve().parents[1]
TINY = ["--set", "num_hiddens=8", "--set", "max_tokens=2000", "--set", "batch_size=4", "--set", "num_steps=5"]
LIMIT_S = 180
# The README's MXNet launcher line: dmlc_tracker still calls Thread.isAlive (gone in Python 3.9).
MXNET_LAUNCH = ("import runpy, threading; threading.Thread.isAlive = threading.Thread.is_alive; "
                "runpy.run_module('mxnet.tools.launch', run_name='__main__')")


def _needs(backend: str) -> None:
    reason = loaded(backend)
    if isinstance(reason, str):
        pytest.skip(reason)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(backend: str, mode: str, data_dir: Path) -> list[str]:
    return ["-m", "benchmarks.parallel.worker", "parity", "--backend", backend, "--mode", mode, *TINY,
            "--data-dir", str(data_dir)]


def _env(out: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "RNNBENCH_OUT": str(out), "RNNBENCH_WORKER_TIMEOUT": "120", **extra}


def _all_ok(procs: list[subprocess.Popen]) -> None:
    outputs = []
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=LIMIT_S)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail(f"a launched node did not finish within {LIMIT_S} s")
        outputs.append(out)
    assert all(p.returncode == 0 for p in procs), "\n----\n".join(outputs)[-4000:]


def _launched_parity_passes(backend: str, out: Path, data_dir: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks", "parity", "--backend", backend, "--launched", str(out),
                           *TINY, "--data-dir", str(data_dir)], cwd=REPO, capture_output=True, text=True,
                          timeout=LIMIT_S)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "2 workers" in lines[0], done.stdout
    assert any("vs one process" in x and x.endswith("PASS") for x in lines), done.stdout
    assert any("vs numpy reference" in x and x.endswith("PASS") for x in lines), done.stdout


def _start(argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_torchrun_two_nodes_pass_parity(data_dir, tmp_path):
    _needs("pytorch")
    port = _port()
    nodes = [_start([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                     "--node-rank", str(rank), "--master-addr", "127.0.0.1", "--master-port", str(port),
                     *_worker("pytorch", "nn", data_dir)], _env(tmp_path)) for rank in (0, 1)]
    _all_ok(nodes)
    _launched_parity_passes("pytorch", tmp_path, data_dir)


def test_mxnet_roles_by_hand_pass_parity(data_dir, tmp_path):
    """What `launch.py` does on each host: the DMLC roles set by hand (scheduler, server, workers)."""
    _needs("mxnet")
    common = {"DMLC_PS_ROOT_URI": "127.0.0.1", "DMLC_PS_ROOT_PORT": str(_port()), "DMLC_NUM_SERVER": "1",
              "DMLC_NUM_WORKER": "2"}
    argv = [sys.executable, *_worker("mxnet", "hybridized", data_dir)]
    nodes = [_start(argv, _env(tmp_path, **common, DMLC_ROLE=role)) for role in ("scheduler", "server", "worker",
                                                                                "worker")]
    _all_ok(nodes)
    _launched_parity_passes("mxnet", tmp_path, data_dir)


def test_mxnet_launch_py_local_passes_parity(data_dir, tmp_path):
    """MXNet 1.9.1's `tools/launch.py` with the `Thread.isAlive` alias its dmlc_tracker
    needs on Python 3.9+ (the README's command)."""
    _needs("mxnet")
    command = " ".join([sys.executable, *_worker("mxnet", "hybridized", data_dir)])
    launcher = _start([sys.executable, "-c", MXNET_LAUNCH, "-n", "2", "-s", "1", "--launcher", "local", command],
                      _env(tmp_path))
    _all_ok([launcher])
    _launched_parity_passes("mxnet", tmp_path, data_dir)


def test_jax_processes_through_the_coordinator_pass_parity(data_dir, tmp_path):
    _needs("jax")
    coordinator = f"127.0.0.1:{_port()}"
    nodes = [_start([sys.executable, *_worker("jax", "scan", data_dir)],
                    _env(tmp_path, RNNBENCH_RANK=str(rank), RNNBENCH_WORKERS="2", RNNBENCH_COORDINATOR=coordinator))
             for rank in (0, 1)]
    _all_ok(nodes)
    _launched_parity_passes("jax", tmp_path, data_dir)


@pytest.mark.parametrize(("content", "says"), [
    (None, "parity.npz not found"),
    (b"\x80\x04 not an npz archive" * 20, "is not a parity.npz that `benchmarks.parallel.worker parity` wrote"),
])
def test_launched_parity_without_the_workers_output_is_one_line(data_dir, tmp_path, content, says):
    backend = next((b for b in ("pytorch", "mxnet", "jax") if not isinstance(loaded(b), str)), None)
    if backend is None:
        pytest.skip("no backend loads here")
    if content is not None:
        (tmp_path / "parity.npz").write_bytes(content)
    done = subprocess.run([sys.executable, "-m", "benchmarks", "parity", "--backend", backend, "--launched",
                           str(tmp_path), *TINY, "--data-dir", str(data_dir)], cwd=REPO, capture_output=True,
                          text=True, timeout=LIMIT_S)
    assert done.returncode == 2 and says in done.stderr, done.stderr
    assert "unsafely" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
