"""The pipe between a campaign's driver and its processes: one run's epochs cut into
rounds, the `go` a process waits for before each, and the lines it answers with.

A run in a campaign is one process per backend (and preset), started by
`benchmarks.campaign.driver`. Its first epoch is the warm-up (compilation, allocator growth),
run on its own when the process starts; the other epochs are split into `rounds`
consecutive slices. Between slices the process stops and waits on its standard input
for the driver's `go`, while the driver lets every other backend train its slice of
the same round: the machine's drift then falls on every backend alike, and each
round gives one paired comparison. The pipe protocol is one line per message, each
starting with PREFIX, so that anything else a framework prints is ignored.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TextIO

from common import load
from common.errors import SpecError

PREFIX = "@rnnbench"
LOAD_FIELDS = ("foreign", "steal", "efficiency", "foreign_cpu_s", "tokens")  # what `paused` says of a round's load
HEARTBEAT_S = 5.0  # a gated run says `alive` this often, so the driver can tell slow from frozen
_WRITE = threading.Lock()  # protocol lines from the main thread and the heartbeat never interleave


def epoch_rounds(epochs: int, rounds: int, process: int = 1, processes: int = 1) -> list[int]:
    """The campaign round of each epoch: 0 for the warm-up epoch, then `rounds` rounds,
    as even as can be. A contender run as several processes (`campaign --processes N`)
    takes turns: process k of N trains rounds k, k + N, k + 2N, ...

    `rounds` larger than the epochs after the warm-up is cut down to that number."""
    if rounds < 1:
        raise SpecError(f"--rounds={rounds} must be at least 1")
    if not 1 <= process <= processes:
        raise SpecError(f"--process {process}/{processes}: give K/N with 1 <= K <= N, e.g. 1/2")
    timed = epochs - 1
    rounds = max(1, min(rounds, timed))
    out = [0]
    for r in range(rounds):
        size = timed // rounds + (1 if r < timed % rounds else 0)
        out += [process + r * processes] * size
    return out[:epochs]


class Gate:
    """The child's side: before the first epoch of each round, say so and wait for `go`.

    Each round is measured for disturbance (common.load): a CPU snapshot when `go`
    arrives and one when the round ends, kept in `loads` (the record's
    `campaign.load`) and said in the round's `paused` line. An `extendable` gate, after
    the planned rounds, offers more (`more()`): the driver answers `go round=N` for one
    more round (replacing a disturbed one, or for precision; N is the campaign's round
    number, since a contender whose intervals are narrow enough sits extra rounds out,
    and rounds pair by number) or `stop`. A closed pipe
    during the planned rounds raises KeyboardInterrupt, so the run is recorded as
    interrupted like any other stop; after them it only ends the extra rounds."""

    def __init__(self, rounds_of_epoch: list[int], out: TextIO = sys.stdout, inp: TextIO = sys.stdin,
                 threads: int = 1, extendable: bool = False):
        self.rounds_of_epoch, self.out, self.inp = rounds_of_epoch, out, inp
        self.threads, self.extendable = threads, extendable
        self.loads: dict[int, dict] = {}
        self.stopped_by = "the campaign driver going away (its pipe closed)"
        self.current = 0  # the round being trained (0: the warm-up)
        self._start: load.Snapshot | None = None

    @property
    def rounds(self) -> int:
        """How many planned rounds this process trains."""
        return len({r for r in self.rounds_of_epoch if r})

    def before_epoch(self, index: int, rows: list[dict]) -> None:
        """Called before epoch `index` (0-based), `rows` the epochs done; blocks at each
        round's start, after saying how fast the round before went."""
        this = self.rounds_of_epoch[index]
        if this == 0 or (index > 0 and self.rounds_of_epoch[index - 1] == this):
            return
        if not self.current:
            say(self.out, "ready", rounds=self.rounds, extendable=int(self.extendable), numbered=1)
        else:
            self.end_round()
            self._say_round("paused", rows, self.current)
        go = self._wait_go()
        if go is None:
            raise KeyboardInterrupt(self.stopped_by)
        if go.get("round", str(this)) != str(this):
            raise SpecError(f"the campaign driver asked for round {go['round']}; this process trains round {this} next")
        self._begin(this)

    def end_round(self) -> None:
        """Close the current round's disturbance measurement (once)."""
        if self.current and self.current not in self.loads:
            measured = load.round_load(self._start, load.snapshot(time.perf_counter()), self.threads)
            self.loads[self.current] = measured or {}

    def more(self, rows: list[dict]) -> bool:
        """After the planned rounds (extendable gates only): say how the last round went
        and wait; True when the driver wants one more round."""
        self.end_round()
        self._say_round("paused", rows, self.current)
        go = self._wait_go()
        if go is None:
            return False
        number = int(go["round"]) if go.get("round", "").isdigit() else self.current + 1
        if number <= self.current:
            raise SpecError(f"the campaign driver asked for round {number} after round {self.current}")
        self._begin(number)
        return True

    def finish(self, rows: list[dict]) -> None:
        """After the last epoch (or an early stop): the last round's speed."""
        self.end_round()
        last = self.current
        say(self.out, "done", round=last, tok_s=f"{self.rate(rows, last):.1f}")

    def rate(self, rows: list[dict], round_number: int) -> float:
        """Tokens over seconds of one round's epochs (a rate: never a mean of rates)."""
        mine = [r for i, r in enumerate(rows) if self.round_of(i, r) == round_number]
        seconds = sum(r["seconds"] for r in mine)
        return sum(r["tokens"] for r in mine) / seconds if seconds > 0 else float("nan")

    def round_of(self, index: int, row: dict) -> int:
        return row["round"] if "round" in row else self.rounds_of_epoch[index]

    def _begin(self, number: int) -> None:
        self.current = number
        self._start = load.snapshot(time.perf_counter())

    def _say_round(self, what: str, rows: list[dict], number: int) -> None:
        measured = self.loads.get(number) or {}
        shares = {k: f"{measured[k]:.4f}" for k in LOAD_FIELDS[:4] if k in measured}
        tokens = sum(r["tokens"] for i, r in enumerate(rows) if self.round_of(i, r) == number)
        say(self.out, what, round=number, tok_s=f"{self.rate(rows, number):.1f}", **shares, tokens=tokens)

    def _wait_go(self) -> dict[str, str] | None:
        """`go`'s fields; None on `stop` (its reason kept in `stopped_by`) or end of input."""
        message = parse(self.inp.readline())
        if message and message[0] == "stop" and message[1].get("reason"):
            self.stopped_by = message[1]["reason"].replace("_", " ")
        return message[1] if message is not None and message[0] == "go" else None


def say(out: TextIO, what: str, **fields) -> None:
    """One protocol line; a driver that is gone (a closed pipe) stops the run like
    Ctrl-C, so it is recorded as `interrupted`, saying why."""
    try:
        with _WRITE:
            out.write(" ".join([PREFIX, what] + [f"{k}={v}" for k, v in fields.items()]) + "\n")
            out.flush()
    except (BrokenPipeError, ValueError) as exc:  # ValueError: the stream was closed
        raise KeyboardInterrupt("the campaign driver going away (its pipe closed)") from exc


def show(text: str) -> None:
    """Print a run's summary on stdout. A campaign driver that is gone (killed: its
    pipe closed) is no error here, since the record is already written: stdout then goes
    to /dev/null, so neither this print nor the flush at exit fails."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def start_heartbeat(out: TextIO = sys.stdout, every: float = HEARTBEAT_S) -> None:
    """Say `alive` every `every` seconds from a daemon thread for as long as the process
    runs: a run that is slow (a long epoch, a long compile) keeps talking, while a
    frozen or stopped one falls silent and the driver's --contender-timeout ends it."""
    def beat() -> None:
        while True:
            try:
                say(out, "alive")
            except KeyboardInterrupt:  # the driver is gone: the main thread finds out itself
                return
            time.sleep(every)

    threading.Thread(target=beat, daemon=True, name="rnnbench-heartbeat").start()


def parse(line: str) -> tuple[str, dict[str, str]] | None:
    """(message, fields) of a protocol line; None for any other output."""
    parts = line.split()
    if len(parts) < 2 or parts[0] != PREFIX:
        return None
    return parts[1], dict(p.split("=", 1) for p in parts[2:] if "=" in p)
