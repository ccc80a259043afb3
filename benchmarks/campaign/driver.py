"""`python -m benchmarks campaign`: one suite in every backend, interleaved round by round.

A campaign is one invocation (what `nox -s bench` runs). For each preset of the suite
it starts one `run` process per contender (a backend, in its own venv's Python, with
a mode and a checkout), one after another, each measuring its warm-up apart and then
waiting on a pipe (benchmarks.pipe). Then, round by round, it lets each contender
train its slice of epochs in turn, in a random order drawn afresh every round, so the
machine's drift and each slice's neighbour fall on every framework alike and each round
gives one paired comparison. With `--processes N` a contender is N processes taking
turns at its rounds, so its interval spans two processes of the same code.

Long-lived processes rather than a fresh process per round: a round is then a slice
of one continuous training run, so the record is still the preset's full run (its
perplexity, its time to target) and compilation happens once per process, outside
every round; only one process computes at any moment, the others sleep on the pipe.
Every record carries the campaign id; `report` and `compare` never pool campaigns.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import queue
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from backends import BACKENDS
from backends.distributed import DATA_PARALLEL_MODE
from benchmarks import pipe
from benchmarks.campaign import noise
from benchmarks.campaign.suites import (
    PlanError,
    default_rounds,
    has_track,
    plan,
    suite_of,
    suite_processes,
    suite_tracks,
)
from benchmarks.campaign.versions import FRAMEWORK_PACKAGES, contender_key, split_key
from common.errors import RnnbenchError, SpecError
from common.load import is_disturbed, wait_quiet
from common.records import check_name, iter_records, new_campaign_id, new_run_id

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Contender:
    """One process kind of the campaign: a backend, its Python, a mode, a checkout."""

    backend: str
    python: str
    mode: str | None = None
    checkout: str = ""  # a name for another source tree (`--checkout NAME=DIR`), "" for this one
    tree: Path = REPO
    workers: int | None = None  # data-parallel workers (`--workers 1,2`); None: a plain run
    twin: bool = False  # a second process of the same contender: the campaign's A/A calibration
    version: str = ""  # the framework version of its venv when versions are contenders (`jax 0.10.1/tuned`)

    @property
    def framework(self) -> str:
        """Its framework (and version) in its checkout: a matmul peak is measured once per framework."""
        return contender_key(self.backend, self.version) + (f"@{self.checkout}" if self.checkout else "")

    @property
    def original(self) -> str:
        """The label of the contender this one is (for a twin: the one it copies)."""
        return (contender_key(self.backend, self.version) + (f"/{self.mode}" if self.mode else "")
                + (f"@{self.checkout}" if self.checkout else "") + (f" x{self.workers}" if self.workers else ""))

    @property
    def label(self) -> str:
        return self.original + (TWIN_SUFFIX if self.twin else "")


TWIN_SUFFIX = "~twin"


@dataclass
class Child:
    """A gated `run` process and what it last said. A reader thread turns its stdout
    into protocol messages on a queue, so the driver can wait for one with a timeout:
    a child that stops making progress (frozen, SIGSTOPped) is ended, never waited on
    for ever."""

    contender: Contender
    proc: subprocess.Popen
    run_id: str
    stderr: Path
    process: tuple[int, int] = (1, 1)  # (k, N): it trains the contender's rounds k, k + N, ... (`--processes`)
    rounds: int = 0
    rates: dict[int, float] = field(default_factory=dict)  # per round number: its tok/s
    loads: dict[int, dict] = field(default_factory=dict)  # per round: the shares the child measured (common.load)
    slice_s: dict[int, float] = field(default_factory=dict)  # per round: the wall time of its turn
    extendable: bool = False  # it offers timing-only rounds after the planned ones
    numbered: bool = False  # it takes `go round=N`, so it can sit extra rounds out (rounds pair by number)
    finished: bool = False
    heard: bool = False  # it has said something
    heartbeat: bool = False  # it says `alive` while it works (rounds.start_heartbeat): a silence is a hang
    hung: bool = False  # ended by the driver for making no progress
    messages: queue.Queue = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            message = pipe.parse(line)
            if message is not None:
                self.messages.put(message)
        self.messages.put(None)  # EOF: the process is ending

    def wait_message(self, timeout: float = math.inf) -> str:
        """The next protocol message's name; "exit" when the process ended (after `done`,
        or instead of answering), once it has exited, so its last writes never overlap
        another's round; "hung" when it fell silent for `timeout` seconds (it is then
        stopped). A child that never says `alive` (a checkout older than the heartbeat)
        is only timed while it starts (at least STARTUP_S), never during a round."""
        while True:
            limit = timeout if self.heartbeat else (max(timeout, STARTUP_S) if not self.heard else math.inf)
            try:
                message = self.messages.get(timeout=None if math.isinf(limit) else limit)
            except queue.Empty:
                self.hung = True
                self.stop(f"the campaign driver after {limit:g} s without a word")
                return "hung"
            self.heard = True
            if message is None:
                break
            what, fields = message
            if what == "alive":
                self.heartbeat = True
                continue
            self.rounds = int(fields.get("rounds", self.rounds))
            self.extendable = self.extendable or fields.get("extendable") == "1"
            self.numbered = self.numbered or fields.get("numbered") == "1"
            if "tok_s" in fields:
                number = int(fields.get("round", len(self.rates) + 1))
                self.rates[number] = float(fields["tok_s"])
                self.loads[number] = {k: float(fields[k]) for k in pipe.LOAD_FIELDS if k in fields}
            if what == "done":
                continue  # then the EOF, once its record is written
            return what
        self.proc.wait()
        self.finished = True
        return "exit"

    def go(self, number: int) -> bool:
        """Let the child train round `number`; False when it is gone (e.g. stopped by Ctrl-C)."""
        try:
            self.proc.stdin.write(f"{pipe.PREFIX} go round={number}\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.proc.wait()
            self.finished = True
            return False
        return True

    def stop(self, reason: str = "the end of the campaign") -> None:
        """Tell the child why it stops and close its pipe (it records itself as
        interrupted); SIGCONT in case it was stopped, SIGKILL after STOP_GRACE_S."""
        try:
            with contextlib.suppress(OSError, ValueError):
                self.proc.stdin.write(f"{pipe.PREFIX} stop reason={reason.replace(' ', '_')}\n")
                self.proc.stdin.flush()
            with contextlib.suppress(OSError, ValueError):
                self.proc.stdin.close()
            with contextlib.suppress(OSError):
                self.proc.send_signal(signal.SIGCONT)
            self.proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.finished = True

    def last_error(self) -> str:
        lines = [x for x in self.stderr.read_text(errors="replace").splitlines() if x.strip()]
        if lines:
            return lines[-1]
        return (f"{self.contender.python} exited with code {self.proc.returncode} and said nothing: is it a "
                f"Python with rnnbench's {self.contender.backend} packages (`--python {self.contender.backend}=PATH`)?")


STOP_GRACE_S = 30.0  # for a stopped child to write its record before it is killed
STARTUP_S = 600.0  # the least time a child gets to say its first word (imports, data, compilation)


def shuffled(items: list, round_number: int, seed: str) -> list:
    """Round r's order: a random permutation, drawn afresh each round from (seed, r), so
    it is reproducible and no contender always follows the same one. A slice pays for
    what the one before it leaves behind (threads still spinning, caches), so a fixed
    order (a rotation) charges each contender its neighbour's cost in every round; in
    a random order every contender pays the average, and what varies is in the
    intervals (randomized multiple interleaved trials, Abedi and Brecht, ICPE 2017)."""
    return random.Random(f"{seed}:{round_number}").sample(items, len(items))


def entries(contenders: list[Contender], rest: list[str]) -> list[tuple[tuple[str, ...], list[Contender]]]:
    """The suite's runs in order: (run arguments, the contenders that run them)."""
    out: dict[tuple[str, ...], list[Contender]] = {}
    for contender in contenders:
        for args in plan(contender.backend, rest):
            out.setdefault(tuple(args), []).append(contender)
    return list(out.items())


def processes_of(contender: Contender, opts: argparse.Namespace) -> int:
    """How many processes share this contender's rounds: --processes, except for a
    data-parallel contender (its workers are processes already) and a checkout that
    predates the option (one process, every round)."""
    if contender.workers or "--process" not in _cli_text(contender.tree):
        return 1
    return opts.processes


def _cli_text(tree: Path) -> str:
    """The command-line grammar of a checkout (benchmarks/options.py; cli.py before it)."""
    text = ""
    for name in ("options.py", "cli.py"):
        try:
            text += (tree / "benchmarks" / name).read_text(encoding="utf-8")
        except OSError:
            pass
    return text


def start(contender: Contender, args: tuple[str, ...], opts: argparse.Namespace, campaign: str,
          peak: bool, scratch: Path, process: tuple[int, int] = (1, 1)) -> Child:
    run_id = new_run_id()
    k, n = process
    cmd = [contender.python, "-m", "benchmarks", "run", "--backend", contender.backend, *args,
           "--campaign", campaign, "--rounds", str(math.ceil(opts.rounds / n)), "--gate", "--quiet",
           "--contender", contender.label, "--results", str(opts.results.resolve()), "--run-id", run_id]
    cmd += (["--mode", contender.mode] if contender.mode else []) + ([] if peak else ["--no-peak"])
    cmd += ["--process", f"{k}/{n}"] if n > 1 else []
    cmd += ["--workers", str(contender.workers)] if contender.workers else []
    if (contender.tree / "common" / "load.py").is_file():  # a checkout that knows disturbed rounds and twins
        checked = opts.parity and not contender.twin and k == 1  # a twin or a second process runs code
        cmd += ["--extendable"] + (["--parity-check"] if checked else [])  # that is checked already
        cmd += ["--twin-of", contender.original] if contender.twin else []
        cmd += ["--campaign-settings", json.dumps(settings(opts))]
    err = scratch / f"{run_id}.stderr"
    with err.open("w") as handle:
        proc = subprocess.Popen(cmd, cwd=contender.tree, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=handle, text=True, bufsize=1)
    return Child(contender, proc, run_id, err, process)


def settings(opts: argparse.Namespace) -> dict:
    """What the records keep of how this campaign decides (the report shows it)."""
    return {"precision": opts.precision, "budget_min": opts.budget_s / 60, "retry_disturbed": opts.retry_disturbed,
            "retry_cap": opts.retry_cap, "noise": opts.noise, "parity": opts.parity, "processes": opts.processes}


def note(text: str) -> None:
    print(text, flush=True)


def run_entry(args: tuple[str, ...], contenders: list[Contender], opts: argparse.Namespace, campaign: str,
              peaked: set[str], scratch: Path, deadline: float) -> tuple[list[Child], list[str]]:
    """Warm every contender up in turn, then alternate them round by round: the planned
    rounds, a replacement for each disturbed one (up to --retry-cap), and more while
    the intervals are wider than --precision and time is left before `deadline` (a
    time.perf_counter() value; start-up and warm-up count against it). Returns the
    children that started and the labels of those that did not."""
    name = " ".join(args) or "(preset default)"
    children, failed = [], []
    try:
        for contender, k, n in start_order(contenders, opts, f"{campaign}:{name}:start"):
            child = start(contender, args, opts, campaign, contender.framework not in peaked, scratch, (k, n))
            started = child.wait_message(opts.contender_timeout)
            if started in ("exit", "hung"):
                note(f"  {contender.label}{_nth(child)}: did not start: {_why_not(child, opts)}")
                failed.append(contender.label + _nth(child))
                continue
            peaked.add(contender.framework)
            children.append(child)
        plan = RoundPlan(max((c.rounds * c.process[1] for c in children), default=0), opts, deadline)
        r, busy, waited = 0, False, 0.0
        while r < plan.target:
            r += 1
            turn = shuffled([c for c in children if not c.finished and plan.runs(c, r)], r, campaign + name)
            for child in turn:
                waited += wait_quiet() if busy else 0.0  # after a disturbed slice: let the burst pass first
                tic = time.perf_counter()
                if child.go(r) and child.wait_message(opts.contender_timeout) == "hung":
                    note(f"  {child.contender.label}: {_why_not(child, opts)}; the campaign goes on without it")
                child.slice_s[r] = time.perf_counter() - tic
                busy = is_disturbed(child.loads.get(r))
                if busy and opts.retry_disturbed:  # a busy minute costs time, not precision
                    plan.deadline += credit(opts, child.slice_s[r])
            note(f"  [{name}] {round_line(turn, r, plan.planned)}")
            if r == plan.target:
                plan.extend(children, r)
        if waited:
            note(f"  [{name}] waited {waited:.0f} s in all for other programs' bursts to pass before slices")
        if opts.extended_s:
            note(f"  [{name}] budget extended by {opts.extended_s:.0f} s so far: the time of disturbed slices")
    finally:
        for child in children:
            if not child.finished:
                child.stop(STOP_REASON[0])
    return children, failed


def start_order(contenders: list[Contender], opts: argparse.Namespace,
                seed: str = "") -> list[tuple[Contender, int, int]]:
    """(contender, k, N) in the order the processes start: the contenders in a random
    order (drawn from `seed`), every one's first process, then every second one in
    reverse, and so on (A B C C B A). Processes started earlier in a campaign ran
    measurably slower than ones of the same code started after them
    (docs/performance.md); counterbalanced, every contender's processes sit at the same
    mean place, so a trend falls on all alike, and in a random order no contender is
    always the one started first."""
    counts = {c: processes_of(c, opts) for c in contenders}
    order = random.Random(seed).sample(contenders, len(contenders)) if seed else list(contenders)
    out = []
    for k in range(1, max(counts.values(), default=0) + 1):
        for c in order if k % 2 else order[::-1]:
            if k <= counts[c]:
                out.append((c, k, counts[c]))
    return out


def _nth(child: Child) -> str:
    k, n = child.process
    return f" (process {k} of {n})" if n > 1 else ""


def credit(opts: argparse.Namespace, seconds: float) -> float:
    """The budget a disturbed slice gives back (its wall time), while the campaign's
    extensions stay within one more --budget; counted in opts.extended_s."""
    given = max(0.0, min(seconds, opts.budget_s - opts.extended_s))
    opts.extended_s += given
    return given


def _why_not(child: Child, opts: argparse.Namespace) -> str:
    if child.hung:
        return (f"fell silent for {opts.contender_timeout:g} s (a hang; --contender-timeout "
                f"{opts.contender_timeout:g}): stopped")
    return child.last_error()


def round_line(children: list[Child], r: int, planned: int) -> str:
    """`round r/R: a 1,234 · b 1,300* tok/s` in the order they trained, a star on a
    disturbed slice."""
    parts = [f"{c.contender.label} {c.rates[r]:,.0f}" + ("*" if is_disturbed(c.loads.get(r, {})) else "")
             for c in children if r in c.rates]
    extra = " (extra)" if r > planned else ""
    noisy = " (* disturbed: other programs took CPU)" if any(p.endswith("*") for p in parts) else ""
    return f"round {r}/{planned}{extra}: {' · '.join(parts)} tok/s{noisy}"


class RoundPlan:
    """How many rounds a preset gets, and who trains in each. The planned rounds first,
    every contender; then as many replacement rounds as the most-disturbed contender
    had disturbed slices, up to --retry-cap and while the budget lasts (the report
    leaves disturbed slices out, so each contender gets back the pairs it lost; with
    --precision, only for the contenders of intervals still wider than it); then,
    with --precision, checks at a fixed schedule (after those, then every
    PRECISION_STEP rounds): while some ratio interval's half-width is above the target
    and the budget allows, PRECISION_STEP more rounds for the contenders of the
    intervals still too wide (each pair's two sides) only, so the budget goes where the
    noise is. The rule looks only at the intervals' widths, never at where they lie."""

    def __init__(self, planned: int, opts: argparse.Namespace, deadline: float):
        self.planned = self.target = planned
        self.opts, self.deadline = opts, deadline
        self.reached: float | None = None
        self.needed: set[str] | None = None  # who trains the precision rounds; None: everyone

    def runs(self, child: Child, r: int) -> bool:
        """Whether `child` trains round `r`: its turn among its contender's processes,
        every planned round; later ones while it is needed (a checkout that cannot skip
        a round number always is)."""
        k, n = child.process
        if (r - 1) % n != k - 1:
            return False
        return r <= self.planned or self.needed is None or child.contender.label in self.needed or not child.numbered

    def fitting(self, children: list[Child]) -> int:
        """How many more rounds of these children end before the deadline, at their mean
        turn so far."""
        turn = sum(sum(c.slice_s.values()) / max(1, len(c.slice_s)) / c.process[1] for c in children)
        left = self.deadline - time.perf_counter()
        return max(0, int(left / turn)) if turn > 0 else (MAX_ROUNDS_FACTOR * self.planned if left > 0 else 0)

    def extend(self, children: list[Child], r: int) -> None:
        live = [c for c in children if not c.finished]
        if not live or not all(c.extendable for c in live):
            return
        if self.opts.precision is not None:  # who still needs rounds: both sides of each interval too wide
            widths = pair_widths(children)
            self.reached = max(widths.values(), default=0.0)
            self.needed = {name for pair, width in widths.items() if width > self.opts.precision for name in pair}
        disturbed = max((sum(is_disturbed(x) for k, x in loads.items() if k <= r)
                         for _, loads in merged(children).values()), default=0)
        owed = self.planned + min(disturbed, self.opts.retry_cap if self.opts.retry_disturbed else 0)
        room = self.fitting([c for c in live if any(self.runs(c, r + j) for j in range(1, c.process[1] + 1))])
        if r < owed and self.needed != set() and room >= 1:  # in batches that fit before the deadline
            batch = min(owed - r, room)
            whom = "" if self.needed is None else f" for {', '.join(sorted(self.needed))}"
            note(f"  up to {disturbed} disturbed round(s) per contender so far: {batch} replacement round(s){whom}")
            self.target = r + batch
            return
        if self.opts.precision is None:
            return
        head = f"  precision ±{self.reached:.1%} after {r} rounds (target ±{self.opts.precision:.0%}): "
        if self.reached <= self.opts.precision:
            note(head + "done")
        elif room < PRECISION_STEP or r >= MAX_ROUNDS_FACTOR * self.planned:
            note(head + "budget spent, stopping")
        else:
            note(head + f"{PRECISION_STEP} more rounds for {', '.join(sorted(self.needed))}")
            self.target = r + PRECISION_STEP


PRECISION_STEP = 5
MAX_ROUNDS_FACTOR = 6  # never more than this many times the planned rounds


def pair_widths(children: list[Child]) -> dict[tuple[str, str], float]:
    """The half-width of each ratio interval the report will show (stats.pair_widths)."""
    from benchmarks.report import stats

    twins = {c.contender.label: c.contender.original for c in children if c.contender.twin}
    slices = {label: stats.slice_frame(rates, loads, {k for k, x in loads.items() if is_disturbed(x)})
              for label, (rates, loads) in merged(children).items()}
    return stats.pair_widths(slices, twins)


def merged(children: list[Child]) -> dict[str, tuple[dict[int, float], dict[int, dict]]]:
    """Per contender: the rates and loads of all its processes, by round (they take
    turns, so no round is heard twice)."""
    out: dict[str, tuple[dict, dict]] = {}
    for c in children:
        rates, loads = out.setdefault(c.contender.label, ({}, {}))
        rates.update(c.rates)
        loads.update(c.loads)
    return out


def report_status(children: list[Child], results: Path) -> list[str]:
    """One line per child from its record: status, and the error of a failed one."""
    records = load_records(results, {c.run_id for c in children})
    lines = []
    for child in children:
        record = records.get(child.run_id)
        if record is None:
            lines.append(f"  {child.contender.label}: no record ({child.last_error()})")
        elif record["status"] != "ok":
            lines.append(f"  {child.contender.label}: {record['status']}: {record.get('error')}")
    return lines


def unrecorded(children: list[Child], results: Path) -> list[str]:
    """The labels of children that left no record (which process, where there are several)."""
    records = load_records(results, {c.run_id for c in children})
    return [c.contender.label + _nth(c) for c in children if c.run_id not in records]


def load_records(results: Path, run_ids: set[str]) -> dict[str, dict]:
    return {r["run_id"]: r for r in iter_records(results) if r.get("run_id") in run_ids} if results.exists() else {}


def contenders_from(opts: argparse.Namespace, rest: list[str] = ()) -> list[Contender]:
    """--python BACKEND=PATH (default: every backend with this Python), --modes (default:
    the suite's tracks, see suites.SUITE_TRACKS, else each backend's default; with
    --workers, each backend's data-parallel mode), --checkout, --workers."""
    pythons = python_table(opts.python)
    modes = [m.strip() for m in opts.modes.split(",")] if opts.modes is not None else [None]
    if opts.modes is None and opts.workers is None and suite_tracks(list(rest)):
        modes = list(suite_tracks(list(rest)))
    if any(m == "" for m in modes):
        raise SpecError(f"--modes {opts.modes!r} has an empty name; give modes separated by commas (see `list`)")
    trees = [("", REPO)] + [(name, Path(d).resolve()) for name, d in _pairs(opts.checkout, "--checkout", "NAME=DIR")]
    for name, tree in trees[1:]:
        if not any((tree / "benchmarks" / pipe).is_file() for pipe in ("pipe.py", "rounds.py")):
            raise SpecError(f"--checkout {name}={tree} is not an rnnbench checkout with campaigns "
                            "(no benchmarks/pipe.py, called rounds.py before); give a checkout of this "
                            "version or later")
    return [Contender(b, py, m or (DATA_PARALLEL_MODE[b] if w else None), name, tree, w, version=v)
            for name, tree in trees for (b, v), py in pythons.items() for m in modes if has_track(b, m)
            for w in worker_counts(opts.workers)]


def python_table(values: list[str]) -> dict[tuple[str, str], str]:
    """--python BACKEND[ VERSION]=PATH, repeatable -> {(backend, version): python}
    (default: every backend with this Python). A version in the key makes that venv a
    contender of its own (`jax 0.10.1/tuned`); the venv must hold that version."""
    if not values:
        return {(b, ""): sys.executable for b in BACKENDS}
    table: dict[tuple[str, str], str] = {}
    for key, python in _pairs(values, "--python", "BACKEND=PATH or 'BACKEND VERSION=PATH'"):
        backend, version = split_key(key)
        if backend not in BACKENDS:
            raise SpecError(f"--python names unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
        if (backend, version) in table:
            raise SpecError(f"--python names {key} twice: give each backend (and version) one Python")
        if not (os.path.isfile(python) and os.access(python, os.X_OK)):
            raise SpecError(f"--python {key}={python}: no such executable; give that backend's venv Python, "
                            f"e.g. .nox/bench-{backend}/bin/python (made by `nox -s bench`)")
        if version:
            check_version(backend, version, python)
        table[(backend, version)] = python
    return table


def check_version(backend: str, version: str, python: str) -> None:
    """The venv holds the version its contender is named for (a local build's `+cpu` aside)."""
    package = FRAMEWORK_PACKAGES[backend][0]
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    found = subprocess.run([python, "-c", code], capture_output=True, text=True).stdout.strip()
    if found.split("+")[0] != version:
        raise SpecError(f"--python '{backend} {version}={python}': that Python has {package} "
                        f"{found or '(none)'}, not {version}; give the venv of that version")


def worker_counts(text: str | None) -> list[int | None]:
    """`--workers 1,2` -> [1, 2] (each a contender, the 1-worker one in the same mode); none -> [None]."""
    if text is None:
        return [None]
    try:
        counts = [int(w) for w in text.split(",")]
    except ValueError:
        raise SpecError(f"--workers {text!r} is not a list of worker counts: give e.g. --workers 1,2") from None
    if any(w < 1 for w in counts):
        raise SpecError(f"--workers {text!r}: every worker count must be at least 1")
    return counts


def _pairs(values: list[str], flag: str, form: str) -> list[tuple[str, str]]:
    out = []
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key or not rest:
            raise SpecError(f"{flag} {value!r} is not {form}")
        out.append((key, rest))
    return out


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(prog="python -m benchmarks campaign", description=__doc__.split("\n\n")[0],
                                epilog="Any other argument is the suite's (`--suite NAME`, `--backend B`, "
                                       "`--preset P`, `--threads N`, ...), as for `nox -s bench -- ...`.")
    p.add_argument("--rounds", type=int, default=None,
                   help="rounds per preset (default: the suite's, see benchmarks/campaign/suites.py)")
    p.add_argument("--python", action="append", default=[], metavar="BACKEND=PATH",
                   help="the Python (venv) that runs a backend; repeat per backend (default: this one, all). "
                        "'BACKEND VERSION=PATH' makes that venv a contender of its own, named for its framework "
                        "version (`nox -s bench -- --versions jax=V1,V2` builds them)")
    p.add_argument("--modes", default=None, metavar="M1,M2", help="run each backend in these modes, as contenders")
    p.add_argument("--checkout", action="append", default=[], metavar="NAME=DIR",
                   help="also run every contender from another checkout (an A/B of code versions)")
    p.add_argument("--workers", default=None, metavar="N1,N2",
                   help="data-parallel worker counts, each a contender (e.g. 1,2: the report's scaling "
                        "efficiency); each backend then runs its data-parallel mode")
    p.add_argument("--results", type=Path, default=Path("results/runs"), help="folder for the records")
    p.add_argument("--out", type=Path, default=Path("results"), help="where REPORT.md and summary.json go")
    p.add_argument("--no-report", dest="report", action="store_false",
                   help="records only (the report needs pandas, scipy and matplotlib)")
    p.add_argument("--contender-timeout", type=float, default=120.0, metavar="S",
                   help="seconds of silence from the contender in turn before it is stopped as a hang and the "
                        "campaign goes on; a working run says `alive` every few seconds, however long its "
                        "epochs (default 120)")
    p.add_argument("--campaign", default=None, metavar="ID", help=argparse.SUPPRESS)
    verdict = p.add_argument_group("how sure the verdict is (docs/design.md, 'How the verdict is made')")
    verdict.add_argument("--twin", default=None, metavar="CONTENDER",
                         help="run CONTENDER (e.g. pytorch/tuned) twice, as two processes: the A/A calibration "
                              "(default in the default suite: the first contender)")
    verdict.add_argument("--no-twin", dest="no_twin", action="store_true", help="no A/A twin")
    verdict.add_argument("--processes", type=int, default=None, metavar="N",
                         help="run each contender as N processes that take turns at its rounds, so its interval "
                              "spans the differences between two processes of the same code (default 2 in the "
                              "default suite, whose presets are cut to that: else 1)")
    verdict.add_argument("--precision", type=float, default=None, metavar="P",
                         help="add rounds until every ratio interval's half-width is at most P (default 0.03 in "
                              "the default suite, else off)")
    verdict.add_argument("--budget", type=float, default=None, metavar="MINUTES",
                         help=f"minutes the whole campaign may take with --precision, start-up and warm-up "
                              f"included; the planned rounds always run, and each disturbed slice's time is "
                              f"given back, up to one more budget (default {DEFAULT_BUDGET_MIN:g})")
    verdict.add_argument("--no-retry-disturbed", dest="retry_disturbed", action="store_false",
                         help="do not add a replacement round for each disturbed one")
    verdict.add_argument("--retry-cap", type=int, default=None, metavar="N",
                         help="at most N replacement rounds per preset (default: half the planned rounds)")
    verdict.add_argument("--noise", type=float, default=0.0, metavar="F",
                         help="burn one core a fraction F of the time in random bursts while the campaign runs "
                              "(0 <= F < 1): see what a busy machine costs")
    verdict.add_argument("--no-parity", dest="parity", action="store_false",
                         help="skip each contender's parity check against the numpy reference before timing")
    return p.parse_known_args(argv)


DEFAULT_BUDGET_MIN = 10.0
MAX_PROCESSES = 8
DEFAULT_PRECISION = {"default": 0.03}  # per suite; other suites run their planned rounds unless asked


def check_verdict_options(opts: argparse.Namespace, rest: list[str], contenders: list[Contender]) -> None:
    """Defaults that depend on the suite, and one-line refusals of impossible values."""
    suite = suite_of(list(rest))
    if opts.precision is None:
        opts.precision = DEFAULT_PRECISION.get(suite or "")
    elif not 0 < opts.precision < 1:
        raise SpecError(f"--precision {opts.precision:g} must be a fraction in (0, 1), e.g. 0.03 for ±3%")
    if opts.budget is not None and not opts.budget > 0:
        raise SpecError(f"--budget {opts.budget:g} must be a positive number of minutes, e.g. --budget 10")
    opts.budget_s = 60 * (DEFAULT_BUDGET_MIN if opts.budget is None else opts.budget)
    opts.extended_s = 0.0  # budget given back for disturbed slices (`credit`)
    if not 0 <= opts.noise < 1:
        raise SpecError(f"--noise {opts.noise:g} must be in [0, 1): the share of time one core is kept busy")
    if opts.processes is not None and not 1 <= opts.processes <= MAX_PROCESSES:
        raise SpecError(f"--processes {opts.processes} must be 1 to {MAX_PROCESSES}, e.g. 2")
    opts.processes = opts.processes or suite_processes(list(rest))
    if opts.retry_cap is not None and opts.retry_cap < 0:
        raise SpecError(f"--retry-cap {opts.retry_cap} must be 0 or more")
    opts.retry_cap = max(1, opts.rounds // 2) if opts.retry_cap is None else opts.retry_cap
    if opts.precision is not None:
        try:
            import benchmarks.report.stats  # noqa: F401
        except ImportError as exc:
            note(f"note: --precision needs the report's libraries ({exc}); the planned rounds only")
            opts.precision = None
    labels = [c.label for c in contenders]
    if opts.twin is not None and not opts.no_twin and opts.twin not in labels:
        raise SpecError(f"--twin {opts.twin!r} names no contender of this campaign; choose one of: "
                        f"{', '.join(labels)}")


def with_twin(contenders: list[Contender], opts: argparse.Namespace, rest: list[str]) -> list[Contender]:
    """The contenders plus the A/A twin, if any (default: the default suite's first)."""
    if opts.no_twin or not contenders:
        return contenders
    wanted = opts.twin or (contenders[0].label if suite_of(list(rest)) == "default" else None)
    if wanted is None:
        return contenders
    original = next(c for c in contenders if c.label == wanted)
    twin = replace(original, twin=True)
    return contenders + [twin]


STOP_REASON = ["the end of the campaign"]  # what the children are told when they are stopped


def _stop(signum, _frame) -> None:
    STOP_REASON[0] = f"{signal.Signals(signum).name} to the campaign"
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    opts, rest = parse_args(sys.argv[1:] if argv is None else argv)
    for sig in (signal.SIGINT, signal.SIGTERM):  # both stop the campaign; each child records itself
        signal.signal(sig, _stop)
    try:
        return campaign(opts, rest)
    except (RnnbenchError, PlanError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def campaign(opts: argparse.Namespace, rest: list[str]) -> int:
    contenders = contenders_from(opts, rest)
    opts.rounds = default_rounds(rest) if opts.rounds is None else opts.rounds
    if opts.rounds < 1:
        raise SpecError(f"--rounds={opts.rounds} must be at least 1")
    check_name("--campaign", opts.campaign)
    if not opts.contender_timeout > 0:
        raise SpecError(f"--contender-timeout {opts.contender_timeout:g} must be a positive number of seconds")
    check_verdict_options(opts, rest, contenders)
    contenders = with_twin(contenders, opts, rest)
    todo = entries(contenders, rest)
    if not todo:
        raise PlanError(f"nothing to run for {' '.join(rest) or 'the default suite'}")
    cid = opts.campaign or new_campaign_id()
    busy = machine_busy()
    if busy:
        print(f"warning: {busy}", file=sys.stderr, flush=True)
    note(f"campaign {cid}: {len(todo)} run(s) x {len(contenders)} contender(s), {opts.rounds} round(s); "
        f"records in {opts.results}")
    children, lost, peaked, began = [], [], set(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rnnbench-") as scratch, noise.burner(opts.noise):
        if opts.noise:
            note(f"noise: one core kept busy {opts.noise:.0%} of the time, in random bursts")
        try:
            for k, (args, who) in enumerate(todo):
                now = time.perf_counter()  # each preset gets an even share of the budget left
                deadline = now + (began + opts.budget_s + opts.extended_s - now) / (len(todo) - k)
                done, failed = run_entry(args, who, opts, cid, peaked, Path(scratch), deadline)
                children += done
                lost += sorted(f"{c} ({' '.join(args)})" for c in failed + unrecorded(done, opts.results))
                for line in report_status(done, opts.results):
                    note(line)
        except KeyboardInterrupt:
            note(f"campaign {cid} interrupted: the records written so far are kept")
            return 130
    if not children:
        raise RnnbenchError("no contender could start (see the reasons above)")
    code = finish(cid, opts)
    if lost:
        print(f"error: {len(lost)} contender run(s) left no record: {'; '.join(lost)} (the reasons are above)",
              file=sys.stderr)
        return 1
    return code


def machine_busy() -> str | None:
    """Say so when other work is running: frameworks whose threads spin (OpenMP) can
    lose 10x under contention while others lose little, so a loaded machine changes
    the ranking itself, not just the noise."""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > 0.5 * cores:
        return (f"the machine is busy (load average {load:.1f} on {cores} cores): close other programs, or the "
                "ranking will measure the contention")
    return None


def finish(cid: str, opts: argparse.Namespace) -> int:
    """The report for this campaign (REPORT.md led by it, summary.json), where the
    report's libraries are installed; otherwise say how to get it."""
    if not opts.report:
        note(f"campaign {cid} done; `nox -s report` (or `python -m benchmarks report --campaign {cid}`) reports it")
        return 0
    try:
        from benchmarks.report import campaign_report
    except ImportError as exc:
        note(f"campaign {cid} done; no report here ({exc}): run `nox -s report`")
        return 0
    print(campaign_report(opts.results, opts.out, cid), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
