"""Data-parallel sockets and launchers (issue 24): a `--workers 2` run of rnnbench's own
launcher listens on loopback only, in every framework; and the README's multi-machine
launchers, run on this one machine as two nodes over loopback (torchrun --nnodes 2,
MXNet's tools/launch.py with its local launcher, JAX's coordinator variables), give
the same parity as `parity --workers 2`, checked by `parity --launched DIR`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_workers import TINY, backend, command  # noqa: F401 - `backend` is a fixture

from benchmarks.workers import free_port

REPO = Path(__file__).resolve().parents[1]
LAUNCH_S = 180  # two worker processes of tiny shapes, with their framework's start-up


def _listening(pids: list[int]) -> list[tuple[str, int]]:
    """The (address, port) pairs that these processes listen on (TCP)."""
    import psutil

    found = []
    for pid in pids:
        try:
            conns = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.Error:
            continue
        found += [(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN]
    return found


def test_own_launcher_listens_on_loopback_only(backend, data_dir, tmp_path):
    args = command("run", "--backend", backend, "--workers", "2", "--epochs", "400", "--results", str(tmp_path),
                   "--quiet", *TINY, data_dir=data_dir)
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    pids, seen = [], []
    try:
        for line in proc.stderr:  # helpers (MXNet's scheduler and server) start before the workers
            found = re.search(r"started \(pid (\d+)", line)
            pids += [int(found.group(1))] if found else []
            if "worker 1 started" in line:
                break
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not seen:  # until the group has joined (a listener exists)
            time.sleep(1)
            seen = _listening(pids)
        time.sleep(2)
        seen = _listening(pids)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert seen, f"no listening socket found for {pids}: the check would be empty"
    assert {ip for ip, _ in seen} == {"127.0.0.1"}, seen


def _launched(backend: str, data_dir: Path, out: Path, port: int) -> list[list[str]]:
    """The README's command lines for two nodes on this machine."""
    worker = ["-m", "benchmarks.worker", "parity", "--backend", backend, "--threads", "1", *TINY,
              "--data-dir", str(data_dir)]
    if backend == "pytorch":
        torchrun = str(Path(sys.executable).parent / "torchrun")
        return [[torchrun, "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(r), "--master-addr",
                 "127.0.0.1", "--master-port", str(port), *worker, "--mode", "nn"] for r in (0, 1)]
    if backend == "mxnet":
        return [[sys.executable, "-m", "mxnet.tools.launch", "-n", "2", "-s", "1", "--launcher", "local",
                 sys.executable, *worker, "--mode", "hybridized"]]
    return [[sys.executable, *worker, "--mode", "scan"] for _ in (0, 1)]


def _env(backend: str, out: Path, port: int, rank: int) -> dict[str, str]:
    env = {**os.environ, "RNNBENCH_OUT": str(out), "RNNBENCH_WORKER_TIMEOUT": "60", "PYTHONUNBUFFERED": "1"}
    if backend == "jax":
        env.update(RNNBENCH_RANK=str(rank), RNNBENCH_WORKERS="2", RNNBENCH_COORDINATOR=f"127.0.0.1:{port}")
    return env


def test_the_readmes_launchers_pass_parity_on_two_local_nodes(backend, data_dir, tmp_path):
    port = free_port(0)
    lines = _launched(backend, data_dir, tmp_path, port)
    procs = [subprocess.Popen(line, cwd=REPO, env=_env(backend, tmp_path, port, rank), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
             for rank, line in enumerate(lines)]
    try:
        outputs = [p.communicate(timeout=LAUNCH_S)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    assert all(p.returncode == 0 for p in procs), "\n".join(o[-3000:] for o in outputs)
    done = subprocess.run(command("parity", "--backend", backend, "--workers", "2", "--launched", str(tmp_path),
                                  *TINY, data_dir=data_dir), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sum(x.endswith("PASS") for x in done.stdout.splitlines()) == 2, done.stdout


def test_parity_launched_without_the_workers_output_is_one_line(backend, data_dir, tmp_path):
    done = subprocess.run(command("parity", "--backend", backend, "--workers", "2", "--launched", str(tmp_path),
                                  *TINY, data_dir=data_dir), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("error: --launched"), done.stderr
    assert "RNNBENCH_OUT=" in done.stderr and "Traceback" not in done.stderr
