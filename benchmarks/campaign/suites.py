"""Named sets of runs for `nox -s bench -- --suite NAME` (pure Python: the noxfile
imports it before any venv exists).

`default` is the quick answer (LSTM and GRU in every backend, minutes), each backend
in each track (`SUITE_TRACKS`: out-of-box, tuned, and the book's loop where the book
has one), so every contender is a backend x mode; `book` runs
the book's configurations in full, plus the book's own training loops (mode `book`)
for 30 epochs as the throughput baseline those loops set on this machine; `paper`
reproduces Zaremba et al. 2014's non-regularized PTB LSTM (table 1); `scaling`
varies one size at a time around quick-lstm/quick-gru (see `scaling_runs`).
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

PRESETS = Path(__file__).resolve().parents[1] / "presets"
SCALING_TAG = "scaling"
# One size varied at a time around the quick presets' own (batch 32, 35 steps, 2 x 256);
# the unvaried point (the preset itself) is run once and belongs to every curve.
SCALING_AXES: dict[str, tuple[int, ...]] = {
    "batch_size": (1, 4, 16, 64, 128, 256),
    "num_hiddens": (64, 128, 512, 1024),
    "num_steps": (10, 70, 140),
    "num_layers": (1, 3, 4),
}
SCALING_PRESETS = {"quick-lstm": tuple(SCALING_AXES), "quick-gru": ("batch_size",)}
QUICK_SHAPE = {"tokens": 10_000, "batch_size": 32, "num_steps": 35}  # the quick presets' corpus and batches
SCALING_MIN_STEPS = 8  # timed optimizer steps per point, at least


def scaling_epochs(batch_size: int, num_steps: int, shape: dict = QUICK_SHAPE) -> int:
    """Epochs for one scaling point: one warm-up epoch, then enough for SCALING_MIN_STEPS
    timed steps and at least two timed epochs (an epoch of sequential batches has
    ((tokens - num_steps - 1) // batch_size) // num_steps steps at worst, e.g. one at batch 256)."""
    per_epoch = max(1, ((shape["tokens"] - num_steps - 1) // batch_size) // num_steps)
    return 1 + max(2, math.ceil(SCALING_MIN_STEPS / per_epoch))


def scaling_runs() -> list[dict]:
    """The `scaling` suite: each preset once as is, then once per varied value, all tagged
    `scaling` (the report plots them and keeps them out of its main tables)."""
    runs = []
    for preset, axes in SCALING_PRESETS.items():
        points = [("", None)] + [(axis, value) for axis in axes for value in SCALING_AXES[axis]]
        for axis, value in points:
            size = {**QUICK_SHAPE, **({axis: value} if axis else {})}
            args = ["--preset", preset, "--tag", SCALING_TAG,
                    "--epochs", str(scaling_epochs(size["batch_size"], size["num_steps"]))]
            runs.append({"args": args + (["--set", f"{axis}={value}"] if axis else [])})
    return runs

SUITES: dict[str, list[dict]] = {
    "default": [
        {"args": ["--preset", "quick-lstm"]},
        {"args": ["--preset", "quick-gru"]},
    ],
    "book": [
        {"args": ["--preset", "d2l-deep-lstm"]},
        {"args": ["--preset", "d2l-deep-lstm", "--mode", "book", "--epochs", "30"], "backends": ["pytorch", "mxnet"]},
        {"args": ["--preset", "d2l-deep-gru"]},
        {"args": ["--preset", "jay-gru"]},
        {"args": ["--preset", "jay-lstm"]},
        {"args": ["--preset", "jay-deep"]},
    ],
    "paper": [{"args": ["--preset", "ptb-small"]}],
    "smoke": [{"args": ["--preset", "smoke"]}],
    "scaling": scaling_runs(),
}


# Rounds per preset when --rounds is not given: enough paired rounds for a confidence
# interval, each round still several epochs long (a book preset's 500 epochs: 50 each).
# The default suite's quick presets run one epoch per round: the machine's slow drift
# (tens of seconds) then changes little within a round, where the pairing cancels it,
# and more, shorter rounds narrow the intervals faster; 20 planned rounds, which every
# contender trains, then precision rounds only for the intervals still too wide
# (docs/design.md).
SUITE_ROUNDS = {"default": 20, "book": 10, "paper": 6, "smoke": 2, "scaling": 2}
# The tracks (backends.base.TRACKS) a suite runs every backend in, as contenders of one
# campaign (`run --mode TRACK` builds that track's mode); a suite not named here runs
# each backend's default mode. `book` only where the book has a loop (BOOK_BACKENDS).
SUITE_TRACKS = {"default": ("tuned", "out-of-box", "book")}
BOOK_BACKENDS = ("pytorch", "mxnet")
# Processes per contender (`campaign --processes`): two processes of the same code can
# differ by a few percent for the whole of their lives (memory layout, thread
# placement), which no interval over one process's rounds can see; taking turns, each
# of them trains half the rounds, so every interval spans that difference. The quick
# presets are cut to 10 rounds per process for it (20 per contender, as before).
SUITE_PROCESSES = {"default": 2}
DEFAULT_ROUNDS = 7
BACKEND_NAMES = ("pytorch", "mxnet", "jax")  # backends.BACKENDS, without importing it here


class PlanError(ValueError):
    pass


def suite_of(posargs: list[str]) -> str | None:
    """The suite named by `--suite NAME`, `default` when no run is named, else None."""
    if "--suite" in posargs:
        i = posargs.index("--suite")
        return posargs[i + 1] if i + 1 < len(posargs) else None
    return None if posargs and any(a.startswith("--preset") for a in posargs) else "default"


def default_rounds(posargs: list[str]) -> int:
    return SUITE_ROUNDS.get(suite_of(posargs) or "", DEFAULT_ROUNDS)


def suite_processes(posargs: list[str]) -> int:
    return SUITE_PROCESSES.get(suite_of(posargs) or "", 1)


def suite_tracks(posargs: list[str]) -> tuple[str, ...] | None:
    """The tracks the suite runs every backend in; None: each backend's default mode."""
    return SUITE_TRACKS.get(suite_of(posargs) or "")


def has_track(backend: str, track: str | None) -> bool:
    """Whether a backend runs in `track` (None, a mode name: let the run decide)."""
    return track != "book" or backend in BOOK_BACKENDS


def plan(backend: str, posargs: list[str]) -> list[list[str]]:
    """The `run` argument lists this backend executes for the given nox posargs.

    `--suite NAME [extra run args]` expands a suite; `--backend X ...` is one run for
    backend X only (others get an empty plan); arguments naming a `--preset` are one run
    in every backend. Other extra args (e.g. `--threads 2`, `--device gpu:0`) apply to
    every run of the suite (the default suite when none is named), as suite_of says.
    """
    args = list(posargs)
    if "--backend" in args:
        i = args.index("--backend")
        if i + 1 >= len(args):
            raise PlanError("--backend needs a name: pytorch, mxnet or jax")
        chosen = args[i + 1]
        if chosen not in BACKEND_NAMES:
            raise PlanError(f"--backend {chosen!r} is not a backend; choose one of: {', '.join(BACKEND_NAMES)}")
        return [args[:i] + args[i + 2:]] if chosen == backend else []
    suite = "default"
    if "--suite" in args:
        i = args.index("--suite")
        if i + 1 >= len(args):
            raise PlanError(f"--suite needs a name: {', '.join(SUITES)}")
        suite, args = args[i + 1], args[:i] + args[i + 2:]
        if suite not in SUITES:
            raise PlanError(f"unknown suite {suite!r}; choose one of: {', '.join(SUITES)}")
    elif suite_of(args) is None:
        return per_seed(args)
    return [run for entry in SUITES[suite] if backend in entry.get("backends", [backend])
            for run in per_seed(entry["args"] + args)]


def per_seed(args: list[str]) -> list[list[str]]:
    """One run per seed: `--seeds S` (else the preset's own `seeds`) becomes S runs with
    `--seed-index k`, each its own process in a campaign, so seed k of every backend
    trains in the same rounds and pairs across frameworks."""
    if "--seed-index" in args:
        return [args]
    count = _int(_value(args, "--seeds")) or preset_seeds(_value(args, "--preset") or "quick-lstm")
    if count <= 1:
        return [args]
    rest = [a for i, a in enumerate(args) if a != "--seeds" and (i == 0 or args[i - 1] != "--seeds")]
    return [rest + ["--seeds", str(count), "--seed-index", str(k)] for k in range(count)]


def _value(args: list[str], flag: str) -> str | None:
    i = len(args) - 1 - args[::-1].index(flag) if flag in args else -1
    return args[i + 1] if 0 <= i < len(args) - 1 else None


def _int(text: str | None) -> int:
    try:
        return int(text) if text is not None else 0
    except ValueError:
        return 0  # the run itself refuses it, in one line


def preset_seeds(name: str) -> int:
    """A preset's `seeds` (1 when it sets none or cannot be read: the run reports that)."""
    try:
        raw = tomllib.loads((PRESETS / f"{name}.toml").read_text(encoding="utf-8"))
        return max(1, int(raw.get("seeds", 1)))
    except (OSError, ValueError, TypeError, tomllib.TOMLDecodeError):
        return 1
