"""Before/after of a code change on a noisy machine: the micro-benchmarks' training step
(`benchmarks.micro`, d2l-deep-lstm's shape with the cell swapped) timed in two
checkouts, each in a fresh process, alternated round by round so that the VM's drift
(+-20% minute to minute here) hits both alike. Run it in a venv that has the backend:

    git worktree add ../rnnbench-before HEAD~1
    python -m benchmarks.compare --before ../rnnbench-before --backend mxnet --cell lstm

Each measurement is the median of five timed epochs of `--batches` copies of the one
batch, after two untimed ones (compilation). Prints every round and the ratio of the
medians (after / before).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

from backends import BACKENDS
from common.specs import CELLS

_MEASURE = """
import sys, time
from backends import load_backend
from benchmarks.micro.cases import Case, build_workload
backend, cell, mode, threads, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
work = build_workload(Case(backend, cell, mode or load_backend(backend, threads).default_mode), threads)
batches = [work.batch] * n
for _ in range(2):
    work.model.train_epoch(batches)
times = []
for _ in range(5):
    tic = time.perf_counter()
    work.model.train_epoch(batches)
    times.append(time.perf_counter() - tic)
print(n * work.batch[0].size / sorted(times)[2])
"""


def measure(tree: Path, args: argparse.Namespace) -> float:
    """Tokens/sec of one fresh process importing rnnbench from `tree`."""
    cmd = [sys.executable, "-c", _MEASURE, args.backend, args.cell, args.mode or "", str(args.threads),
           str(args.batches)]
    done = subprocess.run(cmd, cwd=tree, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the run in {tree} failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="the checkout before the change")
    parser.add_argument("--after", type=Path, default=Path.cwd(), help="the checkout after it (default: here)")
    parser.add_argument("--backend", choices=list(BACKENDS), required=True)
    parser.add_argument("--cell", choices=list(CELLS), default="lstm")
    parser.add_argument("--mode", default=None, help="default: the backend's default mode in each checkout")
    parser.add_argument("--rounds", type=int, default=3, help="alternations (default 3)")
    parser.add_argument("--batches", type=int, default=20, help="batches per timed epoch (default 20)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    args = parser.parse_args(argv)
    for flag in ("rounds", "batches", "threads"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be at least 1; got {getattr(args, flag)}")
    for tree in (args.before, args.after):
        if not (tree / "benchmarks" / "micro" / "cases.py").is_file():
            parser.error(f"{tree} is not an rnnbench checkout (no benchmarks/micro/cases.py)")
    rates: dict[str, list[float]] = {"before": [], "after": []}
    for r in range(args.rounds):
        order = ("before", "after") if r % 2 == 0 else ("after", "before")
        for name in order:
            rates[name].append(measure(getattr(args, name), args))
        print(f"round {r + 1}: before {rates['before'][-1]:,.0f}  after {rates['after'][-1]:,.0f} tok/s", flush=True)
    ratio = statistics.median(rates["after"]) / statistics.median(rates["before"])
    print(f"{args.backend} {args.cell} {args.mode or 'default mode'}: before "
          f"{' / '.join(f'{v:,.0f}' for v in rates['before'])}, after "
          f"{' / '.join(f'{v:,.0f}' for v in rates['after'])} tok/s; after / before = {ratio:.3f} (medians)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
