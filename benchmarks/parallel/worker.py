"""One data-parallel worker process: `python -m benchmarks.parallel.worker run|parity ...`.

Started by `benchmarks.parallel.launcher`, with the launcher's environment (rank, worker count,
port, where to write, the hang timeout) and the framework's own (torchrun's, DMLC_*);
or, across machines, by the framework's launcher (`torchrun`, MXNet's `launch.py`, one
process per host for JAX) with RNNBENCH_OUT set (README, "Across machines"). The rank
is the engine's, from joining its group. It joins its framework's group when the model is built, then:

- `run`: the harness's ordinary run (same batches, same epochs, same gate), with the
  backend's data-parallel model; its record goes to a private folder, from which the
  launcher takes worker 0's. After the epochs it times the engine's all-reduce of the
  gradient's size (every worker takes part). Each epoch is announced on stdout
  (`@rnnbench epoch row=...`), which is also the launcher's sign of life;
- `parity`: the averaged loss and gradients for the first batch, then a few steps;
  worker 0 saves them for the launcher to compare.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import traceback
from pathlib import Path

import numpy as np

from backends import load_backend
from backends.distributed import load_distributed
from benchmarks.pipe import say
from common.errors import RnnbenchError

OUT, TIMEOUT = "RNNBENCH_OUT", "RNNBENCH_WORKER_TIMEOUT"
PARITY_STEPS = 3  # optimizer steps compared after the gradients
DEFAULT_TIMEOUT_S = 600.0  # collectives' timeout when a foreign launcher sets no RNNBENCH_WORKER_TIMEOUT


def main(argv: list[str]) -> int:
    from benchmarks.options import parse_args, resolve_spec

    args = parse_args(argv)
    spec, book = resolve_spec(args)
    if not os.environ.get(OUT):
        raise RnnbenchError(f"{OUT} is not set: name the folder this worker writes to, e.g. {OUT}=/tmp/parity "
                            "(README, Across machines)")
    out = Path(os.environ[OUT])
    out.mkdir(parents=True, exist_ok=True)
    backend = load_backend(args.backend, args.threads)
    dist = load_distributed(args.backend)
    built = {}

    def build(backend, spec, vocab_size, device, params, mode):
        built["rank"], built["workers"] = dist.join(float(os.environ.get(TIMEOUT, DEFAULT_TIMEOUT_S)))
        built["model"] = dist.build(backend, spec, vocab_size, device, params, mode)
        return built["model"]

    task = run_task if args.command == "run" else parity_task
    code = task(args, spec, book, out, backend, build, dist, built)
    built.clear()  # the model (DDP's reducer holds the group) goes before the group: see leave()
    gc.collect()
    dist.leave()
    return code


def run_task(args, spec, book, out: Path, backend, build, dist, built: dict) -> int:
    from benchmarks.run.harness import RunRequest, exit_code, run

    req = RunRequest.from_args(args, spec, book, results_dir=out, measure_peak=False, build=build)
    record = run(req, lambda row: say(sys.stdout, "epoch", row=json.dumps(row, separators=(",", ":"))))
    if record["status"] == "ok":
        numel = sum(p.size for p in built["model"].get_params().values())
        say(sys.stdout, "comm", numel=numel, allreduce_s=f"{dist.allreduce_seconds(numel):.6g}")
    return exit_code(record)


def parity_task(args, spec, book, out: Path, backend, build, dist, built: dict) -> int:
    """Loss and averaged gradients of the first batch, then PARITY_STEPS steps."""
    from benchmarks.run.parity import inputs

    X, Y, params, batches = inputs(spec, args.data_dir, PARITY_STEPS)
    model = build(backend, spec, params["dense.b"].shape[0], args.device, params, args.mode)
    loss, grads = model.loss_and_grads(X, Y)
    model.train_epoch(batches)
    after = model.get_params()
    if built["rank"] == 0:
        np.savez(out / "parity.npz", loss=np.float64(loss), workers=np.int64(built["workers"]),
                 **{f"grad:{k}": v for k, v in grads.items()}, **{f"param:{k}": v for k, v in after.items()})
    return 0


def _exit_now(code: int) -> None:
    """Exit without finalizers: a framework's teardown after a failure can block on
    peers that are gone (ps-lite's exit barrier), and the launcher waits for the exit."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    try:
        code = main(sys.argv[1:])
    except SystemExit:  # argparse; MXNet's server and scheduler roles end inside `import mxnet`
        raise
    except RnnbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        _exit_now(2)
    except BaseException:  # noqa: BLE001 - reported, then the process ends at once
        traceback.print_exc()
        _exit_now(1)
    if code != 0:
        _exit_now(code)
    sys.exit(0)
