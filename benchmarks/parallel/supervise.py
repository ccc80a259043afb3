"""The launcher's side of a data-parallel run: start the processes, watch them, stop them.

Workers (and the engine's helpers, MXNet's scheduler and server) run in their own
sessions, so a Ctrl-C at the terminal reaches only the launcher, which then stops them
itself. The launcher reads every worker's stdout (protocol lines, `benchmarks.pipe`)
on a thread each and watches the processes:
- all workers exit 0: done;
- a worker or helper ends otherwise (killed, an exception, a peer it lost): the rest are
  stopped (SIGTERM, then SIGKILL after GRACE_S) and the run fails, naming that process;
- nothing is heard from any worker for `timeout` seconds (while not waiting for a
  campaign driver's `go`): a hang, handled as a failure.
So a run always ends, within the timeout plus GRACE_S.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from benchmarks import pipe

GRACE_S = 5.0  # from SIGTERM to SIGKILL when stopping the group
POLL_S = 0.1
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Proc:
    name: str  # "worker 0", "scheduler", ...
    popen: subprocess.Popen
    log: Path
    worker: bool


@dataclass
class Outcome:
    status: str  # "ok", "error", "interrupted"
    message: str | None = None
    extra: dict = field(default_factory=dict)


class Group:
    """The processes of one data-parallel run."""

    def __init__(self, folder: Path, timeout: float, gated: bool):
        self.folder, self.timeout, self.gated = folder, timeout, gated
        self.procs: list[Proc] = []
        self.messages: queue.Queue = queue.Queue()
        self.stop_reason: str | None = None
        self.readers: list[threading.Thread] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], worker: bool) -> Proc:
        log = self.folder / f"{name.replace(' ', '')}.log"
        stdin = subprocess.PIPE if (worker and self.gated) else subprocess.DEVNULL
        stdout = subprocess.PIPE if worker else subprocess.DEVNULL
        with open(log, "wb") as err:
            popen = subprocess.Popen(argv, env={**os.environ, **env}, cwd=REPO, stdin=stdin, stdout=stdout,
                                     stderr=err, text=True, start_new_session=True)
        proc = Proc(name, popen, log, worker)
        self.procs.append(proc)
        print(f"rnnbench: {name} started (pid {popen.pid}, log {log})", file=sys.stderr, flush=True)
        if worker:
            reader = threading.Thread(target=self._read, args=(proc,), daemon=True)
            reader.start()
            self.readers.append(reader)
        return proc

    def _read(self, proc: Proc) -> None:
        for line in proc.popen.stdout:
            message = pipe.parse(line)
            if message is not None:
                self.messages.put((proc, *message))

    def _relay(self) -> None:
        """The campaign driver's lines (stdin) to every worker; EOF closes their pipes."""
        for line in sys.stdin:
            for proc in self.workers:
                try:
                    proc.popen.stdin.write(line)
                    proc.popen.stdin.flush()
                except (BrokenPipeError, ValueError, OSError):
                    pass
            self.messages.put((None, "go", {}))
        for proc in self.workers:
            try:
                proc.popen.stdin.close()
            except OSError:
                pass

    @property
    def workers(self) -> list[Proc]:
        return [p for p in self.procs if p.worker]

    def supervise(self, on_message: Callable[[Proc, str, dict], bool]) -> Outcome:
        """Wait until every worker has exited 0, or one fails, hangs or the user stops us.
        `on_message(proc, what, fields)` sees each protocol line; it returns True when the
        line starts a wait for the campaign driver (the hang clock then stops)."""
        if self.gated:
            threading.Thread(target=self._relay, daemon=True).start()
        heard, waiting = time.monotonic(), False
        with _Signals(self):
            while True:
                try:
                    proc, what, fields = self.messages.get(timeout=POLL_S)
                    heard = time.monotonic()
                    waiting = False if proc is None else on_message(proc, what, fields)
                    continue
                except queue.Empty:
                    pass
                if self.stop_reason:
                    return self._stop(Outcome("interrupted", f"interrupted by {self.stop_reason}"))
                failed = self._failed()
                if failed is not None:
                    return self._stop(Outcome("error", failed))
                if self._workers_done():
                    self._drain(on_message)
                    return self._stop(Outcome("ok"), quiet=True)
                if not waiting and time.monotonic() - heard > self.timeout:
                    return self._stop(Outcome("error", self._hang()))

    def _drain(self, on_message) -> None:
        """The last lines of workers that have exited (their readers end at EOF)."""
        for reader in self.readers:
            reader.join(timeout=GRACE_S)
        while not self.messages.empty():
            proc, what, fields = self.messages.get()
            if proc is not None:
                on_message(proc, what, fields)

    def _failed(self) -> str | None:
        """The first process that ended badly: one killed by a signal before one that
        exited with an error (which is often only the peer that lost it). A process the
        OS reports stopped (SIGSTOP, a debugger) is named first: its peers' failures
        (gloo's abort when a peer stops answering) follow from it."""
        ended = [p for p in self.procs if p.popen.poll() not in (None, 0)]
        if not ended:
            return None
        stopped = self._stopped()
        if stopped:
            return (f"{stopped[0].name} of the data-parallel run stopped making progress (the OS reports it "
                    f"stopped: SIGSTOP or a debugger), and {ended[0].name} then {_how(ended[0])}; "
                    f"the other processes were stopped")
        ended.sort(key=lambda p: (p.popen.returncode >= 0, self.procs.index(p)))
        return f"{ended[0].name} of the data-parallel run {_how(ended[0])}; the other processes were stopped"

    def _stopped(self) -> list[Proc]:
        """The processes the OS reports stopped (psutil; none where it cannot tell)."""
        try:
            import psutil
        except ImportError:
            return []
        found = []
        for p in self.procs:
            try:
                if p.popen.poll() is None and psutil.Process(p.popen.pid).status() == psutil.STATUS_STOPPED:
                    found.append(p)
            except psutil.Error:
                pass
        return found

    def _hang(self) -> str:
        stopped = self._stopped()
        who = (f"{', '.join(p.name for p in stopped)} {'is' if len(stopped) == 1 else 'are'} stopped "
               f"(SIGSTOP or a debugger); " if stopped else "")
        return (f"no worker made progress for {self.timeout:g} s (a hang; {who}--worker-timeout "
                f"{self.timeout:g}): the workers were stopped; their logs are in {self.folder}")

    def _workers_done(self) -> bool:
        return all(p.popen.poll() == 0 for p in self.workers)

    def _stop(self, outcome: Outcome, quiet: bool = False) -> Outcome:
        """Every process still running: SIGTERM, then SIGKILL after GRACE_S."""
        alive = [p for p in self.procs if p.popen.poll() is None]
        for p in alive:
            _signal(p, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_S
        for p in alive:
            try:
                p.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal(p, signal.SIGKILL)
                p.popen.wait()
        return outcome


def _signal(proc: Proc, sig: int) -> None:
    try:
        os.killpg(proc.popen.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _how(proc: Proc) -> str:
    """`was killed by SIGKILL` or `exited with code 1 (its last error line)`, and its log."""
    rc = proc.popen.returncode
    if rc < 0:
        how = f"was killed by {signal.Signals(-rc).name}"
    else:
        how = f"exited with code {rc}" + (f" ({_last_error(proc.log)})" if _last_error(proc.log) else "")
    return f"{how}; its log: {proc.log}"


def _last_error(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    errors = [ln for ln in lines if "Error" in ln or "error" in ln]
    return (errors or lines or [""])[-1][:300]


class _Signals:
    """Ctrl-C / SIGTERM to the launcher: note it; the loop then stops the group."""

    def __init__(self, group: Group):
        self.group, self.previous = group, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.group.stop_reason = "the user (Ctrl-C)" if signum == signal.SIGINT else signal.Signals(signum).name

    def __exit__(self, *exc) -> None:
        for sig, previous in self.previous.items():
            signal.signal(sig, previous)
