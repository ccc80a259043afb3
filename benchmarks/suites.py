"""Named sets of runs for `nox -s bench -- --suite NAME` (pure Python: the noxfile
imports it before any venv exists).

`default` is the quick answer (LSTM and GRU in every backend, minutes); `book` runs
the book's configurations in full, plus the book's own training loops (mode `book`)
for 30 epochs as the throughput baseline those loops set on this machine.
"""

from __future__ import annotations

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
    "smoke": [{"args": ["--preset", "smoke"]}],
}


class PlanError(ValueError):
    pass


def plan(backend: str, posargs: list[str]) -> list[list[str]]:
    """The `run` argument lists this backend executes for the given nox posargs.

    `--suite NAME [extra run args]` expands a suite; `--backend X ...` is one run for
    backend X only (others get an empty plan); anything else is passed to every
    backend's run. Extra args (e.g. `--threads 2`, `--device gpu:0`) apply to all runs.
    """
    args = list(posargs)
    if "--backend" in args:
        i = args.index("--backend")
        if i + 1 >= len(args):
            raise PlanError("--backend needs a name: pytorch, mxnet or jax")
        chosen = args[i + 1]
        return [args[:i] + args[i + 2:]] if chosen == backend else []
    suite = "default"
    if "--suite" in args:
        i = args.index("--suite")
        if i + 1 >= len(args):
            raise PlanError(f"--suite needs a name: {', '.join(SUITES)}")
        suite, args = args[i + 1], args[:i] + args[i + 2:]
        if suite not in SUITES:
            raise PlanError(f"unknown suite {suite!r}; choose one of: {', '.join(SUITES)}")
    elif args:
        return [args]
    return [entry["args"] + args for entry in SUITES[suite] if backend in entry.get("backends", [backend])]
