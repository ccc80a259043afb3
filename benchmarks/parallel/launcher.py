"""`run --workers N` and `parity --workers N`: data-parallel training on each framework's engine.

This process is the launcher. It checks the request (worker count against the batch,
the mode, the port, GPUs), starts N worker processes (`benchmarks.parallel.worker`) and any
helpers the engine needs, all on loopback, with the machine's threads divided among
the workers (N workers together use the threads one run would), and supervises them
(`benchmarks.parallel.supervise`): a worker that dies or hangs ends the run as `error` within
`--worker-timeout` seconds plus a grace period, never a hang.

Why a launcher of our own rather than torchrun (for PyTorch) or MXNet's `launch.py`:
one launcher for the three frameworks gives them the same failure handling, the same
thread division and one record; each worker still joins through its framework's own
rendezvous (torchrun's `env://` variables, MXNet's DMLC_* roles, `jax.distributed`'s
coordinator), so it would join the same way under those launchers across machines
(README). The record written is worker 0's, with `workers`, `engine`, `worker_threads`
and `comm` (the engine's all-reduce of the gradient's size, timed) added; when worker 0
left none, the launcher writes one from the epochs the workers announced.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from backends import load_backend
from backends.distributed import DATA_PARALLEL_MODE, LOOPBACK, PORT, RANK, WORKERS, check_mode, gpu_of, load_distributed
from benchmarks import pipe
from benchmarks.parallel.supervise import Group, Outcome
from benchmarks.parallel.worker import OUT, PARITY_STEPS, TIMEOUT
from benchmarks.run.parity import inputs
from common import reference
from common.batches import train_batches
from common.corpus import load_corpus
from common.errors import SpecError
from common.records import append_record, iter_records
from common.shards import check_workers
from common.specs import RunSpec

# -- checks ------------------------------------------------------------------------------


def worker_threads(threads: int | None, workers: int) -> int:
    """Each worker's share of the threads one run would use (at least 1)."""
    total = threads or os.cpu_count() or 1
    if workers > total:
        print(f"warning: {workers} workers on {total} threads: each gets 1 thread, so they share cores",
              file=sys.stderr)
    return max(1, total // workers)


def free_port(port: int) -> int:
    """`port` if it is free on loopback (0: pick a free one); a port in use is a one-line error."""
    if not 0 <= port <= 65535:
        raise SpecError(f"--port={port} is not a port: use 1..65535, or leave --port out to pick a free one")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            raise SpecError(f"port {port} on {LOOPBACK} is in use (another run or program listens there): "
                            f"give --port a free port, or leave --port out to pick one") from None
        return s.getsockname()[1]


def check_request(args: argparse.Namespace, spec: RunSpec):
    """Everything a user can get wrong, before any process starts (and, but for GPUs,
    before the framework is imported): (backend, dist module, mode, threads per worker, the
    rendezvous port: --port checked free, or a free one picked)."""
    mode = check_mode(args.backend, args.mode, DATA_PARALLEL_MODE[args.backend])
    corpus = load_corpus(spec.data, args.data_dir)
    check_workers(args.workers, [X.shape[0] for X, _ in train_batches(corpus, spec, 0)], spec.train.batch_size)
    if args.worker_timeout <= 0:
        raise SpecError(f"--worker-timeout={args.worker_timeout:g} must be positive (seconds)")
    port = free_port(args.port)
    threads = worker_threads(args.threads, args.workers)
    backend = load_backend(args.backend, threads)
    dist = load_distributed(args.backend)
    if args.device.strip().lower() != "cpu":
        gpus = [d for d in backend.devices() if d.startswith("gpu")]
        if len(gpus) < args.workers:
            raise SpecError(f"--workers {args.workers} on GPUs needs {args.workers} GPUs (one per worker); "
                            f"{backend.framework} sees {len(gpus)}: use --device cpu, or fewer workers")
    return backend, dist, mode, threads, port


# -- the processes -----------------------------------------------------------------------


def worker_argv(command: str, args: argparse.Namespace, mode: str, threads: int, device: str,
                out: Path) -> list[str]:
    """The worker's own command line: the same spec, its share of the threads and its device."""
    argv = [sys.executable, "-m", "benchmarks.parallel.worker", command, "--backend", args.backend,
            "--preset", args.preset, "--device", device, "--mode", mode, "--threads", str(threads)]
    argv += ["--epochs", str(args.epochs)] if args.epochs is not None else []
    for override in args.overrides:
        argv += ["--set", override]
    argv += ["--data-dir", str(Path(args.data_dir).resolve())] if args.data_dir else []
    if command == "run":
        argv += ["--results", str(out), "--quiet", "--no-peak", "--rounds", str(args.rounds)]
        for flag in ("tag", "campaign", "contender", "run_id"):
            if getattr(args, flag) is not None:
                argv += [f"--{flag.replace('_', '-')}", getattr(args, flag)]
        argv += ["--gate"] if args.gate else []
    return argv


def start(command: str, args: argparse.Namespace, dist, mode: str, threads: int, port: int, folder: Path) -> Group:
    launch = dist.launch(args.workers, port, args.device)
    group = Group(folder, args.worker_timeout, gated=getattr(args, "gate", False))
    quiet_env = {"PYTHONUNBUFFERED": "1"}
    for helper in launch.helpers:
        group.start(helper.name, [sys.executable, "-c", helper.code], {**quiet_env, **helper.env}, worker=False)
    for rank in range(args.workers):
        out = folder / f"rank{rank}"
        out.mkdir()
        device = gpu_of(rank, args.device)
        env = {**quiet_env, **launch.worker_env[rank], RANK: str(rank), WORKERS: str(args.workers),
               PORT: str(port), OUT: str(out), TIMEOUT: str(args.worker_timeout), "RNNBENCH_DEVICE": device}
        group.start(f"worker {rank}", worker_argv(command, args, mode, threads, device, out), env, worker=True)
    return group


# -- run ---------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, spec: RunSpec, book: dict) -> int:
    from benchmarks.run.harness import (
        RunRequest,
        RunState,
        check_results_writable,
        exit_code,
        results_file,
        write_record,
    )
    from benchmarks.run.progress import Progress
    from benchmarks.run.summary import describe_run

    started = time.perf_counter()
    backend, dist, mode, threads, port = check_request(args, spec)
    req = RunRequest.from_args(args, spec, book, mode=mode, threads=threads, measure_peak=False)
    check_results_writable(results_file(req))
    folder = Path(tempfile.mkdtemp(prefix="rnnbench-workers-"))
    rows, extra = [], {}
    progress = Progress(spec.train.epochs, f"{args.backend} x{args.workers} {args.preset}",
                        enabled=None if not args.quiet else False)

    def on_message(proc, what: str, fields: dict) -> bool:
        if proc.name != "worker 0":
            return False
        if what == "epoch":
            import json

            rows.append(json.loads(fields["row"]))
            progress.update(rows[-1])
        elif what == "comm":
            extra["comm"] = {"numel": int(fields["numel"]), "allreduce_s": float(fields["allreduce_s"])}
        elif what in ("ready", "paused", "done"):
            pipe.say(sys.stdout, what, **fields)  # to the campaign driver
            return what != "done"
        return False

    try:
        outcome = start("run", args, dist, mode, threads, port, folder).supervise(on_message)
    finally:
        progress.close()
    record = worker_record(folder / "rank0") or fallback_record(req, backend, mode, rows, outcome, started,
                                                               folder, write_record, RunState)
    record = finish_record(record, outcome, args.workers, dist.engine(args.device), threads, extra)
    append_record(results_file(req), record)
    pipe.show(describe_run(record) + "\n" + describe_workers(record))
    if record["status"] != "error":
        shutil.rmtree(folder, ignore_errors=True)  # logs are kept when something failed
    else:
        print(f"error: {record['error']}", file=sys.stderr)
    return exit_code(record)


def describe_workers(record: dict) -> str:
    comm = record.get("comm")
    line = (f"{'workers':>23s}  {record['workers']} x {record['worker_threads']} thread(s), {record['engine']}")
    if comm:
        line += f"; one all-reduce of the gradient ({comm['numel']:,} floats): {comm['allreduce_s'] * 1e3:.2f} ms"
    return line


def worker_record(folder: Path) -> dict | None:
    records = list(iter_records(folder)) if folder.exists() else []
    return records[-1] if records else None


def fallback_record(req, backend, mode: str, rows: list, outcome: Outcome, started: float, folder: Path,
                    write_record, RunState) -> dict:
    """Worker 0 wrote nothing (killed or stopped): a record of the epochs it announced."""
    from dataclasses import replace

    state = RunState(epochs=rows, status=outcome.status, error=outcome.message)
    private = replace(req, results_dir=folder / "launcher")
    return write_record(private, backend, SimpleNamespace(mode=mode), state, started)


def finish_record(record: dict, outcome: Outcome, workers: int, engine: str, threads: int, extra: dict) -> dict:
    """The launcher's word wins: a failure it saw is the record's error."""
    record.update(workers=workers, engine=engine, worker_threads=threads, threads=threads * workers, **extra)
    if outcome.status != "ok":
        said = record.get("error")
        record["status"] = outcome.status
        done = f" after {len(record['epochs'])} of {record['spec']['train']['epochs']} epochs"
        record["error"] = (outcome.message.replace(";", done + ";", 1)
                           + (f" (worker 0 said: {said})" if said and said != outcome.message else ""))
    return record


# -- parity ------------------------------------------------------------------------------


def cmd_parity(args: argparse.Namespace, spec: RunSpec) -> int:
    """N workers against one process on the whole batch, and against the numpy reference."""
    backend, dist, mode, threads, port = check_request(args, spec)
    folder = Path(tempfile.mkdtemp(prefix="rnnbench-parity-"))
    outcome = start("parity", args, dist, mode, threads, port, folder).supervise(lambda *a: False)
    if outcome.status != "ok":
        raise SpecError(f"parity with {args.workers} workers did not finish: {outcome.message}")
    saved = sorted(folder.glob("rank*/parity.npz"))  # the engine's rank 0 (MXNet's scheduler numbers them)
    if not saved:
        raise SpecError(f"parity with {args.workers} workers left no parity.npz: their logs are in {folder}")
    got = np.load(saved[0])
    result = compare(backend, spec, args, mode, got)
    shutil.rmtree(folder, ignore_errors=True)
    return 0 if print_parity(args.backend, mode, args.workers, dist.engine(args.device), result) else 1


def cmd_launched_parity(args: argparse.Namespace, spec: RunSpec) -> int:
    """The same check for workers another launcher started (torchrun, MXNet's
    `launch.py`, JAX processes by hand): their worker 0 left `parity.npz` in DIR."""
    mode = check_mode(args.backend, args.mode, DATA_PARALLEL_MODE[args.backend])
    saved = args.launched / "parity.npz"
    if not saved.is_file():
        raise SpecError(f"{saved} not found: start the workers with "
                        f"`python -m benchmarks.parallel.worker parity ...` and "
                        f"{OUT}={args.launched} (README, Across machines), then run this again")
    try:
        got = dict(np.load(saved))
    except (OSError, ValueError, EOFError) as exc:  # numpy's text for a non-npz file would advise unpickling it
        raise SpecError(f"{saved} is not a parity.npz that `benchmarks.parallel.worker parity` wrote "
                        f"({type(exc).__name__}): run the workers again") from None
    backend = load_backend(args.backend, args.threads)
    result = compare(backend, spec, args, mode, got)
    engine = load_distributed(args.backend).engine(args.device)
    return 0 if print_parity(args.backend, mode, int(got["workers"]), engine, result) else 1


def compare(backend, spec: RunSpec, args, mode: str, got) -> dict:
    """Relative errors of the workers' loss, gradients and stepped parameters."""
    X, Y, params, batches = inputs(spec, args.data_dir, PARITY_STEPS)
    single = backend.build(spec, params["dense.b"].shape[0], gpu_of(0, args.device), params, mode)
    loss, grads = single.loss_and_grads(X, Y)
    single.train_epoch(batches)
    after = single.get_params()
    ref_loss, ref_grads, _ = reference.loss_and_grads({k: v.astype(np.float64) for k, v in params.items()},
                                                      spec.model, X, Y)
    worst = lambda want: max((reference.relative_error(got[f"{kind}:{k}"], v), k)  # noqa: E731
                             for kind, table in want.items() for k, v in table.items())
    return {
        "vs_single": {"loss": abs(float(got["loss"]) - loss) / abs(loss), "grads": worst({"grad": grads}),
                      "params": worst({"param": after})},
        "vs_reference": {"loss": abs(float(got["loss"]) - ref_loss) / abs(ref_loss),
                         "grads": worst({"grad": ref_grads})},
        "tolerance": reference.PARITY_TOLERANCE[spec.train.dtype], "shape": X.shape,
    }


def print_parity(backend: str, mode: str, workers: int, engine: str, result: dict) -> bool:
    tol, ok = result["tolerance"], True
    print(f"{backend} ({mode} mode, {workers} workers, {engine}): batch {result['shape'][0]}x{result['shape'][1]}, "
          f"{result['shape'][0] // workers} sequences per worker; tolerance {tol:.0e}")
    sides = (("one process, whole batch", result["vs_single"]), ("numpy reference", result["vs_reference"]))
    for against, errs in sides:
        parts = [f"loss {errs['loss']:.2e}", f"gradients {errs['grads'][0]:.2e} ({errs['grads'][1]})"]
        if "params" in errs:
            parts.append(f"parameters after {PARITY_STEPS} steps {errs['params'][0]:.2e} ({errs['params'][1]})")
        good = max(errs["loss"], *(v[0] for k, v in errs.items() if k != "loss")) <= tol
        ok &= good
        print(f"  vs {against}: " + ", ".join(parts) + f": {'PASS' if good else 'FAIL'}")
    return ok
