"""`run`/`parity --workers N` end to end, per installed backend, on tiny shapes: two
workers on the framework's own engine agree with one process and the numpy reference;
a worker killed or frozen mid-run ends the run as `error` (no hang); bad requests end
in one line naming the fix, before any worker starts."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from contract.cases import loaded

from common.records import iter_records

REPO = Path(__file__).resolve().parents[1]
TINY = ["--set", "num_hiddens=8", "--set", "max_tokens=2000", "--set", "batch_size=4", "--set", "num_steps=5"]
BOUND_S = 90  # a run whose worker died must end well within this


def command(*args: str, data_dir: Path) -> list[str]:
    return [sys.executable, "-m", "benchmarks", *args, "--data-dir", str(data_dir)]


def cli(*args: str, data_dir: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args, data_dir=data_dir), cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def test_two_workers_match_one_process_and_the_reference(backend, data_dir):
    done = cli("parity", "--backend", backend, "--workers", "2", "--worker-timeout", "60", *TINY, data_dir=data_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "2 workers" in lines[0] and "2 sequences per worker" in lines[0]
    assert any("vs one process" in x and "after 3 steps" in x and x.endswith("PASS") for x in lines), done.stdout
    assert any("vs numpy reference" in x and x.endswith("PASS") for x in lines), done.stdout


def _start(backend: str, data_dir: Path, results: Path, *extra: str) -> subprocess.Popen:
    args = command("run", "--backend", backend, "--workers", "2", "--epochs", "400", "--results", str(results),
                   "--quiet", *TINY, *extra, data_dir=data_dir)
    return subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _pids(proc: subprocess.Popen, last: int = 1) -> dict[str, int]:
    """Every process the launcher started (helpers first), up to worker `last`."""
    pids = {}
    for line in proc.stderr:
        found = re.search(r"rnnbench: (.+) started \(pid (\d+)", line)
        if found:
            pids[found.group(1)] = int(found.group(2))
        if f"worker {last}" in pids:
            return pids
    raise AssertionError(f"the launcher never said which pid worker {last} has")


def _worker_pid(proc: subprocess.Popen, rank: int) -> int:
    return _pids(proc, rank)[f"worker {rank}"]


def _ended(proc: subprocess.Popen, results: Path) -> dict:
    tic = time.monotonic()
    try:
        proc.communicate(timeout=BOUND_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"the run did not end within {BOUND_S} s of its worker's failure")
    assert proc.returncode == 1 and time.monotonic() - tic < BOUND_S
    records = list(iter_records(results))
    assert len(records) == 1
    return records[0]


def test_a_killed_worker_ends_the_run_as_error(backend, data_dir, tmp_path):
    proc = _start(backend, data_dir, tmp_path)
    pid = _worker_pid(proc, 1)
    time.sleep(6)  # past start-up, into training
    os.kill(pid, signal.SIGKILL)
    record = _ended(proc, tmp_path)
    assert record["status"] == "error" and record["workers"] == 2 and record["engine"]
    assert "worker 1" in record["error"] and "SIGKILL" in record["error"], record["error"]


def test_a_single_machine_run_listens_on_loopback_only(backend, data_dir, tmp_path):
    import psutil

    proc = _start(backend, data_dir, tmp_path)
    try:
        pids = _pids(proc)
        time.sleep(6)  # past the rendezvous, into training: every listener is open
        listening = {(name, c.laddr.ip, c.laddr.port) for name, pid in pids.items()
                     for c in psutil.Process(pid).net_connections("inet") if c.status == psutil.CONN_LISTEN}
    finally:
        proc.terminate()
        proc.communicate(timeout=BOUND_S)
    assert listening, "no process of the run was listening: the check saw nothing"
    assert all(_loopback(ip) for _, ip, _ in listening), sorted(listening)


def _loopback(ip: str) -> bool:
    """127.0.0.1, also as an IPv6 socket's IPv4-mapped address (::ffff:127.0.0.1)."""
    import ipaddress

    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def test_a_frozen_worker_ends_the_run_as_error_naming_it(backend, data_dir, tmp_path):
    proc = _start(backend, data_dir, tmp_path, "--worker-timeout", "8")
    pid = _worker_pid(proc, 1)
    time.sleep(6)
    os.kill(pid, signal.SIGSTOP)
    try:
        record = _ended(proc, tmp_path)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # Either our timeout fires, or the frozen peer's collective library gives up first and
    # aborts its partner (JAX's gloo does, at times): both end the run as `error`, no hang,
    # and either way the message names the worker that froze before any peer.
    error = record["error"]
    assert record["status"] == "error" and "SIGSTOP or a debugger" in error, record
    assert "worker 1" in error and ("worker 0" not in error or error.index("worker 1") < error.index("worker 0")), error


@pytest.mark.parametrize(("args", "needle"), [
    (["--workers", "0"], "--workers=0 must be at least 1"),
    (["--workers", "5"], "use --workers 4 or fewer"),
    (["--workers", "3"], "do not split evenly over --workers=3"),
])
def test_bad_worker_counts_are_one_line_errors(backend, data_dir, args, needle):
    done = cli("run", "--backend", backend, *TINY, *args, data_dir=data_dir)
    assert done.returncode == 2 and needle in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "started" not in done.stderr


def test_other_modes_are_refused_naming_the_supported_one(backend, data_dir):
    from backends.distributed import DATA_PARALLEL_MODE

    other = next(m for m in loaded(backend).modes if m != DATA_PARALLEL_MODE[backend])
    done = cli("run", "--backend", backend, "--workers", "2", "--mode", other, *TINY, data_dir=data_dir)
    assert done.returncode == 2 and f"use --mode {DATA_PARALLEL_MODE[backend]}" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_port_in_use_is_a_one_line_error(backend, data_dir):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = cli("parity", "--backend", backend, "--workers", "2", "--port", str(port), *TINY, data_dir=data_dir)
    assert done.returncode == 2 and f"port {port} on 127.0.0.1 is in use" in done.stderr, done.stderr
    assert "leave --port out" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_gpu_workers_need_one_gpu_each(backend, data_dir):
    """This machine's frameworks see no GPU: a clear one-line refusal, nothing started."""
    if any(d.startswith("gpu") for d in loaded(backend).devices()):
        pytest.skip("this machine has a GPU")
    done = cli("run", "--backend", backend, "--workers", "2", "--device", "gpu", *TINY, data_dir=data_dir)
    assert done.returncode == 2 and "needs 2 GPUs (one per worker)" in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]  # MXNet logs its engine
    assert len(errors) == 1 and "use --device cpu" in errors[0] and "started" not in done.stderr
