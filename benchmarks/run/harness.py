"""One benchmark run: data -> model -> timed epochs -> samples -> one record.

The clock covers `train_epoch` only (batches are built before it starts, validation
runs after it stops), and backends finish all device work before `train_epoch`
returns, so each epoch's seconds are honest. The first epoch is reported as warm-up
(it includes compilation, hybridization and allocator growth); throughput is the
median over the later epochs. Whatever happens — a NaN loss, Ctrl-C, an exception in
the middle — the epochs already run are written as one record, atomically.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import platform
import resource
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from backends import default_threads, load_backend
from backends.base import Backend, LanguageModel, parse_device
from backends.heap import heap_settings
from benchmarks.pipe import Gate, epoch_rounds
from common import metrics
from common.batches import eval_splits, train_batches
from common.corpus import Corpus, load_corpus
from common.environment import machine_environment, machine_fingerprint
from common.errors import ResultsUnwritable, RunInterrupted, SpecError
from common.flops import train_flops_per_token
from common.memory import check_fits
from common.metrics import perplexity, reached_target, steady_state
from common.params import init_params
from common.records import SCHEMA, append_record, new_campaign_id, new_run_id, utc_now
from common.rss import Watermark, process_peak_mib
from common.specs import RunSpec, preset_name

SAMPLE_PREFIXES = {"time_machine": ("time traveller", "traveller"), "jaychou_lyrics": ("分开", "不分开"),
                   "ptb": ("the company", "in the")}
SAMPLE_LENGTH = {"char": 50, "word": 20}


@dataclass
class RunRequest:
    backend: str
    spec: RunSpec
    preset: str | None = None
    book: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    mode: str | None = None
    threads: int | None = None
    data_dir: str | None = None
    results_dir: Path = Path("results/runs")
    measure_peak: bool = True
    tag: str | None = None  # a study this run belongs to (e.g. "scaling"), stored as the record's `tag`
    campaign: str | None = None  # the campaign id; a run on its own is a campaign of one
    rounds: int = 1  # slices of the epochs after the warm-up (benchmarks.pipe)
    gated: bool = False  # wait for the campaign driver's `go` before each round
    contender: str | None = None  # the campaign's name for this process (backend[/mode][@checkout])
    run_id: str | None = None  # chosen by the campaign driver, so it can find the record
    build: Callable[..., LanguageModel] | None = None  # another model builder (a data-parallel worker's)
    seeds: tuple[int, int] = (0, 1)  # (k, S): this run is seed k of S (spec.train.seed is the drawn seed)
    perturb_init: bool = False  # every initial parameter nudged by one ulp (the chaos check)
    extendable: bool = False  # after the planned rounds, train timing-only rounds while the driver asks
    parity: bool = False  # check loss and gradients against the numpy reference before timing
    twin_of: str | None = None  # this process is an A/A twin of that contender (never ranked)
    process: tuple[int, int] = (1, 1)  # (k, N): process k of the N that share this contender's rounds
    settings: dict[str, Any] = field(default_factory=dict)  # the campaign's verdict settings (precision, noise)

    @classmethod
    def from_args(cls, args, spec: RunSpec, book: dict[str, Any], **changes) -> RunRequest:
        """The request of a `run` command line (`args` from benchmarks.options), for the
        resolved `spec`; `changes` set the fields its caller decides (a worker's folder,
        the launcher's mode and threads, one seed of several)."""
        asked = dict(backend=args.backend, spec=spec, preset=args.preset, book=book, device=args.device,
                     mode=args.mode, threads=args.threads, data_dir=args.data_dir, results_dir=args.results,
                     measure_peak=args.peak, tag=args.tag, campaign=args.campaign, rounds=args.rounds,
                     gated=args.gate, contender=args.contender, run_id=args.run_id)
        return cls(**{**asked, **changes})


EXIT_CODES = {"ok": 0, "interrupted": 130}  # any other status (diverged, error) exits 1


def exit_code(record: dict[str, Any]) -> int:
    """The process's exit code for a finished run's record."""
    return EXIT_CODES.get(record["status"], 1)


@dataclass
class DeviceMemory:
    """The framework's own allocator on a GPU over training (Backend.device_memory):
    its level when training starts and its peak since, read after every epoch. On the
    CPU the framework says nothing and the fields stay None."""

    read: Callable[[], tuple[float, float] | None]
    start_mib: float | None = None
    peak_mib: float | None = None

    def sample(self) -> None:
        got = self.read()
        if got is None:
            return
        now, peak = got
        self.start_mib = now if self.start_mib is None else self.start_mib
        self.peak_mib = max(now, peak, self.peak_mib or 0.0)

    def fields(self) -> dict[str, float | None]:
        return {"train_peak_device_mib": self.peak_mib, "device_start_mib": self.start_mib}


@dataclass
class RunState:
    """What a run has produced so far; turned into a record at any stop."""

    epochs: list[dict[str, Any]] = field(default_factory=list)
    status: str = "ok"
    error: str | None = None
    samples: dict[str, str] = field(default_factory=dict)
    peak_flops: float | None = None  # the plain matmul (`a @ b`), recorded as such
    peaks: dict[str, float] = field(default_factory=dict)  # every matmul the framework offers
    vocab_size: int = 0
    test_ppl: float | None = None
    val_stream_ppl: float | None = None  # validation cut as the test split, after training (valid_batch_size set)
    extra_epochs: list[dict[str, Any]] = field(default_factory=list)  # timing-only rounds after the preset
    parity: dict[str, Any] | None = None  # the pre-timing check against the numpy reference
    loads: dict[int, dict] = field(default_factory=dict)  # per round: CPU others took (common.load)
    memory: Watermark | None = None  # resident memory from the first epoch on (common.rss)
    device: DeviceMemory | None = None  # a GPU's allocator over training (None: not asked)


def results_file(req: RunRequest) -> Path:
    host = platform.node().split(".")[0] or "host"
    return Path(req.results_dir) / f"{host}-{req.backend}.jsonl"


def run(req: RunRequest, on_epoch: Callable[[dict], None] = lambda e: None) -> dict[str, Any]:
    """Run one benchmark and append its record; returns the record.

    User errors (spec, data, backend, device, a results folder that cannot be written)
    are raised before anything is written or trained. SIGTERM is handled like Ctrl-C
    (SIGINT): during training either one stops it and the epochs done are written as
    an `interrupted` record; before training (data, framework, model build) there is
    nothing to record, so it ends as RunInterrupted, a one-line error. Signals that
    come while the record is being written wait until it is on disk.
    """
    started = time.perf_counter()
    check_results_writable(results_file(req))
    with StopSignals() as stop:
        try:
            corpus = load_corpus(req.spec.data, req.data_dir)
            held_out = eval_splits(corpus, req.spec)
            train_batches(corpus, req.spec, 0)  # raises SpecError now for sizes that cannot fit
            check_fits(req.spec, len(corpus.vocab))  # nor memory: before a framework allocates
            backend = load_backend(req.backend, req.threads)
            model = build_model(backend, req, len(corpus.vocab))
            machine_fingerprint()  # worked out now, so the record is quick to write at a stop
        except KeyboardInterrupt:
            raise RunInterrupted(f"interrupted by {stop.reason or 'Ctrl-C'} before training started "
                                 f"(loading data, framework or model): nothing was recorded") from None
        state = RunState(vocab_size=len(corpus.vocab))
        gate = round_gate(req)
        state.loads = gate.loads if gate is not None else {}
        try:
            state.parity = parity_check(backend, corpus, req) if req.parity else None
            state.peaks = measure_peaks(backend, req.device) if req.measure_peak else {}
            state.peak_flops = state.peaks.get("plain")
            backend.reset_device_peak(req.device)
            state.device = DeviceMemory(lambda: backend.device_memory(req.device))
            state.device.sample()
            train(model, corpus, req.spec, held_out.get("valid"), state, on_epoch, gate)
            if state.status == "ok":
                state.test_ppl = evaluate_split(model, held_out.get("test"))
                state.val_stream_ppl = evaluate_split(model, held_out.get("valid_stream"))
                state.samples = samples(model, corpus, req.spec)
                if gate is not None and gate.extendable:
                    train_extra(model, corpus, req.spec, state, gate)
            if gate is not None:
                gate.finish(state.epochs + state.extra_epochs)
            stop.hold()
        except KeyboardInterrupt as exc:
            stop.hold()
            state.status, state.error = "interrupted", f"interrupted by {stop.reason or _said(exc)}"
        except Exception as exc:  # recorded, then re-raised for the CLI to report
            stop.hold()
            state.status, state.error = "error", f"{type(exc).__name__}: {exc}"
            write_record(req, backend, model, state, started)
            raise
        return write_record(req, backend, model, state, started)


def _said(stop: KeyboardInterrupt) -> str:
    """Who stopped the run when no signal did: the campaign's reason, else the user."""
    return str(stop) if stop.args and isinstance(stop.args[0], str) and stop.args[0] else "the user (Ctrl-C)"


REARM_S = 0.2  # far longer than an interrupt takes to reach run()'s handler, shorter than nox's 0.3 s


class StopSignals:
    """SIGINT (Ctrl-C) and SIGTERM (`kill`, a scheduler, nox after Ctrl-C) during a run.

    The first one raises KeyboardInterrupt wherever the run is, so the epochs done are
    recorded as `interrupted`; any after `hold()` (the record is being written) is only
    noted, because nox follows Ctrl-C with SIGTERM 0.3 s later and that must not cut the
    record short. Until `hold()`, the stop is raised again every REARM_S (a timer,
    SIGALRM): a KeyboardInterrupt that lands in a finalizer (MXNet frees arrays in
    `__del__`) is swallowed by Python, and the run would otherwise train on. Off the
    main thread signals are left alone.
    """

    def __init__(self) -> None:
        self.reason: str | None = None  # which signal stopped the run
        self.armed = True
        self.raised_at: float | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self.hold()
        for sig, previous in self._previous.items():
            signal.signal(sig, signal.SIG_DFL if previous is None else previous)

    def _handle(self, signum: int, frame: object) -> None:
        if self.reason is None and signum != signal.SIGALRM:
            self.reason = "the user (Ctrl-C)" if signum == signal.SIGINT else signal.Signals(signum).name
        now = time.monotonic()
        if self.armed and (self.raised_at is None or now - self.raised_at > REARM_S):
            if self.raised_at is None:  # until hold(), raise again every REARM_S in case this one is swallowed
                signal.setitimer(signal.ITIMER_REAL, REARM_S, REARM_S)
            self.raised_at = now
            raise KeyboardInterrupt

    def hold(self) -> None:
        """From now on signals are only noted: the record is about to be written."""
        self.armed = False
        if self._previous:
            signal.setitimer(signal.ITIMER_REAL, 0)


def check_results_writable(path: Path) -> None:
    """Refuse now, not after hours of training, a results file that cannot be written:
    its folder must exist or be creatable and be a folder, and must take a new file
    (or the file, if there, must open for appending). Writes no record."""
    folder = path.parent
    fix = "give --results a folder you can write to"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ResultsUnwritable(f"results folder {folder} is a file, not a folder: {fix}") from None
    except OSError as exc:
        raise ResultsUnwritable(f"cannot create results folder {folder} ({exc.strerror}): {fix}") from None
    if path.is_dir():
        raise ResultsUnwritable(f"results file {path} is a folder: move it away or {fix}")
    try:
        if path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))  # follows a symlink, writes nothing
        else:
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".rnnbench-probe-")
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise ResultsUnwritable(f"cannot write records to {path} ({exc.strerror}): {fix}") from None


def measure_peaks(backend: Backend, device: str) -> dict[str, float]:
    """The device's float32 matmul FLOP/s in this framework, best of a few, for each
    matmul it offers (`plain` is the one every framework has; {} if none)."""
    try:
        return backend.matmul_peaks(device, n=4096, repeats=3)
    except NotImplementedError:
        return {}


def mode_init(backend: Backend, req: RunRequest) -> str:
    """The initialisation a book mode's source used (MXNet `book`: d2l 0.17's
    train_ch8 re-initialises with init.Normal(0.01)), or '' for the spec's own. The
    spec is left as the preset's, so the run stays in its comparison group; the record
    says `init_from_mode`."""
    if req.spec.model.init == "framework":
        return ""
    return getattr(backend.mode_table.get(backend.check_mode(req.mode)), "init", "") or ""


def build_model(backend: Backend, req: RunRequest, vocab_size: int) -> LanguageModel:
    spec = req.spec
    own = mode_init(backend, req)
    drawn = dataclasses.replace(spec.model, init=own, init_scale=0.0) if own else spec.model
    params = None if spec.model.init == "framework" else init_params(
        drawn, vocab_size, spec.train.seed, spec.train.dtype)
    if req.perturb_init:
        if params is None:
            raise SpecError("--perturb-init changes the canonical initial parameters: it needs init != 'framework'")
        params = {name: np.nextafter(p, np.array(np.inf, p.dtype)) for name, p in params.items()}
    build = backend.build if req.build is None else functools.partial(req.build, backend)
    return build(spec, vocab_size, req.device, params, req.mode)


def round_gate(req: RunRequest) -> Gate | None:
    """The pipe to the campaign driver, or None for a run on its own (rounds still
    label its epochs)."""
    if not req.gated:
        return None
    return Gate(epoch_rounds(req.spec.train.epochs, req.rounds, *req.process), threads=req.threads or default_threads(),
                extendable=req.extendable)


def parity_check(backend: Backend, corpus: Corpus, req: RunRequest) -> dict[str, Any]:
    """Loss and gradients of this backend in this mode against the float64 numpy
    reference, at the preset's shape on its first batch (benchmarks.run.parity), before
    anything is timed: a contender that computes something else is never ranked."""
    from benchmarks.run import parity

    X, Y = train_batches(corpus, req.spec, 0)[0]
    result = parity.compare(backend, req.spec, len(corpus.vocab), X, Y, req.device, req.mode)
    worst = max(result["grads"], key=result["grads"].get)
    out = {"ok": parity.passes(result), "loss_error": result["loss"], "worst_tensor": worst,
           "worst_error": result["grads"][worst], "tolerance": result["tolerance"]}
    if "elementwise" in result:
        name = max(result["elementwise"], key=result["elementwise"].get)
        out.update(worst_entry_tensor=name, worst_entry_share=result["elementwise"][name])
    return out


def train(model: LanguageModel, corpus: Corpus, spec: RunSpec, valid, state: RunState, on_epoch,
          gate: Gate | None = None) -> None:
    """Timed epochs; stops early (status `diverged`) at the first non-finite loss. With a
    gate, waits for the campaign driver before each round (outside the clock). Each
    epoch's learning rate comes from the spec's schedule, set (outside the clock) when
    it changes; `valid` is evaluated after every epoch."""
    lr = spec.train.lr  # what the model was built with
    state.memory = Watermark()  # after the peak measurement and the parity check: training's own peak
    for epoch in range(spec.train.epochs):
        if gate is not None:
            gate.before_epoch(epoch, state.epochs)
        batches = train_batches(corpus, spec, epoch)
        if spec.train.lr_at(epoch + 1) != lr:
            lr = spec.train.lr_at(epoch + 1)
            model.set_learning_rate(lr)
        usage, tic = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        stats = model.train_epoch(batches)
        seconds = time.perf_counter() - tic
        row = {"epoch": epoch + 1, "lr": lr, "train_ppl": perplexity(stats.loss_sum, stats.tokens),
               "tokens": stats.tokens, "seconds": seconds, "tok_s": stats.tokens / seconds,
               **process_usage(usage)}
        if valid:
            val = model.evaluate(valid)
            row["val_ppl"] = perplexity(val.loss_sum, val.tokens)
        state.epochs.append(row)
        if state.device is not None:
            state.device.sample()
        on_epoch(row)
        if not math.isfinite(row["train_ppl"]):
            state.status = "diverged"
            state.error = f"loss became {row['train_ppl']} at epoch {epoch + 1}: lower lr or clip"
            break


def train_extra(model: LanguageModel, corpus: Corpus, spec: RunSpec, state: RunState, gate: Gate) -> None:
    """Timing-only rounds after the preset, while the campaign driver asks for more (to
    replace a disturbed round, or for precision). They go on training the same model
    at the last learning rate, a planned round's epochs each, and are kept apart
    (`extra_epochs`): the record's quality is the preset's, measured before them."""
    per_round = max(1, (spec.train.epochs - 1) // max(1, gate.rounds))
    epoch = spec.train.epochs
    while gate.more(state.epochs + state.extra_epochs):
        for _ in range(per_round):
            batches = train_batches(corpus, spec, epoch)
            tic = time.perf_counter()
            stats = model.train_epoch(batches)
            seconds = time.perf_counter() - tic
            epoch += 1
            state.extra_epochs.append({"epoch": epoch, "round": gate.current, "tokens": stats.tokens,
                                       "seconds": seconds, "tok_s": stats.tokens / seconds,
                                       "train_ppl": perplexity(stats.loss_sum, stats.tokens)})
        if not math.isfinite(state.extra_epochs[-1]["train_ppl"]):
            return


def evaluate_split(model: LanguageModel, batches) -> float | None:
    """A held-out split's perplexity after training (test, the validation stream), or
    None without it."""
    if not batches:
        return None
    stats = model.evaluate(batches)
    return perplexity(stats.loss_sum, stats.tokens)


def process_usage(before: resource.struct_rusage) -> dict[str, float]:
    """This process's CPU time (user, system) and minor page faults since `before`: the
    system time and faults show allocator churn, and CPU over wall time shows whether
    the threads were busy or waiting (a loaded machine)."""
    now = resource.getrusage(resource.RUSAGE_SELF)
    return {"user_s": now.ru_utime - before.ru_utime, "sys_s": now.ru_stime - before.ru_stime,
            "minor_faults": now.ru_minflt - before.ru_minflt}


def samples(model: LanguageModel, corpus: Corpus, spec: RunSpec) -> dict[str, str]:
    """The book's greedy generations from its prefixes."""
    vocab, out = corpus.vocab, {}
    sep = "" if spec.data.token == "char" else " "
    for prefix in SAMPLE_PREFIXES[spec.data.corpus]:
        tokens = list(prefix) if spec.data.token == "char" else prefix.split()
        ids = model.predict(vocab[tokens], SAMPLE_LENGTH[spec.data.token])
        out[prefix] = prefix + sep + sep.join(vocab.to_tokens(ids))
    return out


def summarise(epochs: list[dict], book: dict, train_s: float, test_ppl: float | None = None,
              val_stream_ppl: float | None = None) -> dict[str, Any]:
    tok = steady_state([e["tok_s"] for e in epochs])
    last = epochs[-1] if epochs else {}
    metric = book.get("metric", "train_ppl")
    seen = [e[metric] for e in epochs if e.get(metric) is not None and math.isfinite(e[metric])]
    return {
        "epochs_done": len(epochs),
        "final_train_ppl": last.get("train_ppl"),
        "final_val_ppl": last.get("val_ppl"),
        "test_ppl": test_ppl,
        **({"final_val_stream_ppl": val_stream_ppl} if val_stream_ppl is not None else {}),
        "best_ppl": min(seen) if seen else None,
        "tok_s_median": tok["median"], "tok_s_min": tok["min"], "tok_s_max": tok["max"], "tok_s_iqr": tok["iqr"],
        "warmup_s": epochs[0]["seconds"] if epochs else None,
        "train_s": train_s,
        "target_ppl": book.get("target_ppl"),
        "time_to_target_s": time_to_target(epochs, book),
    }


def utilisation(spec: RunSpec, vocab_size: int, tok_s: float | None, peak: float | None) -> dict[str, Any]:
    """Achieved model FLOP/s (common.flops) and its fraction of the measured matmul peak."""
    per_token = train_flops_per_token(spec.model, vocab_size)
    achieved, share = metrics.utilisation(per_token, tok_s, peak)
    return {"train_flops_per_token": per_token, "achieved_flops": achieved, "peak_flops": peak,
            "utilisation": share}


def time_to_target(epochs: list[dict], book: dict) -> float | None:
    """Training seconds until the preset's metric first reaches its target perplexity."""
    reached = reached_target(epochs, book.get("target_ppl"), book.get("metric", "train_ppl"))
    return reached[1] if reached else None


def thread_warnings(req: RunRequest, framework_env: dict) -> list[str]:
    """Thread fairness: say so when a framework runs with other than the asked threads."""
    asked, used = req.threads or default_threads(), framework_env.get("threads")
    if used is not None and used != asked:
        message = f"{req.backend} used {used} intra-op threads, {asked} were asked: comparisons are not like for like"
        print(f"warning: {message}", file=sys.stderr)
        return [message]
    return []


def campaign_of(req: RunRequest, state: RunState) -> dict[str, Any]:
    """The record's `campaign`: its id, its rounds, and this process's name in it; each
    epoch row gets its `round` (0 = warm-up)."""
    rounds = epoch_rounds(req.spec.train.epochs, req.rounds, *req.process)
    for row in state.epochs:
        row["round"] = rounds[row["epoch"] - 1]
    extra = max((e["round"] for e in state.extra_epochs), default=0)
    out = {"id": req.campaign or new_campaign_id(), "rounds": max([*rounds, extra]), "gated": req.gated,
           "contender": req.contender or req.backend,
           **({"settings": req.settings} if req.settings else {})}
    load = [{"round": r, **v} for r, v in sorted(state.loads.items()) if v]
    out = {**out, "load": load} if load else out
    out = {**out, "process": f"{req.process[0]}/{req.process[1]}"} if req.process[1] > 1 else out
    return {**out, "twin_of": req.twin_of} if req.twin_of else out


def write_record(req: RunRequest, backend: Backend, model: LanguageModel, state: RunState,
                 started: float) -> dict[str, Any]:
    dev = parse_device(req.device)
    env = machine_environment()
    env["framework"] = backend.environment()
    env["heap"] = heap_settings()
    warnings = thread_warnings(req, env["framework"])
    summary = summarise(state.epochs, req.book, sum(e["seconds"] for e in state.epochs), state.test_ppl,
                        state.val_stream_ppl)
    summary.update(wall_s=time.perf_counter() - started, peak_rss_mb=process_peak_mib(),
                   **(state.memory.fields() if state.memory is not None else {}),
                   **(state.device.fields() if state.device is not None else {}))
    summary.update(utilisation(req.spec, state.vocab_size, summary["tok_s_median"], state.peak_flops))
    summary.update(peak_flops_own=max(state.peaks.values()) if state.peaks else None, peaks=state.peaks)
    record = {
        "schema": SCHEMA, "run_id": req.run_id or new_run_id(), "timestamp": utc_now(),
        "campaign": campaign_of(req, state),
        "status": state.status, "error": state.error,
        "backend": backend.name, "mode": model.mode, "mode_default": model.mode == backend.default_mode,
        "track": backend.track_of(model.mode), "mode_description": backend.describe_mode(model.mode),
        "device": {"kind": dev.kind, "index": dev.index, "name": backend.device_name(req.device) or env["cpu_model"]},
        "preset": preset_name(req.preset) if req.preset else req.preset, "tag": req.tag,
        "threads": env["framework"].get("threads"),
        "seed": req.spec.train.seed, "seeds": {"index": req.seeds[0], "count": req.seeds[1]},
        "perturbed_init": req.perturb_init,
        **({"init_from_mode": own} if (own := mode_init(backend, req)) else {}),
        "spec": req.spec.to_dict(), "book": req.book,
        "warnings": warnings, "epochs": state.epochs, "summary": summary, "samples": state.samples, "env": env,
        **({"extra_epochs": state.extra_epochs} if state.extra_epochs else {}),
        **({"parity": state.parity} if state.parity is not None else {}),
    }
    append_record(results_file(req), record)
    return record
