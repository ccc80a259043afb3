"""Command line: `python -m benchmarks run|parity|report|list` (DESIGN.md's contract).

Mistakes a user can fix (unknown names, impossible sizes, missing data, absent
devices) end with one line on stderr and exit code 2; a run that diverged or failed
exits 1; Ctrl-C exits 130 after writing the `interrupted` record.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from backends import BACKENDS
from benchmarks import workers
from common.errors import RnnbenchError
from common.files import describe_os_error
from common.specs import RunSpec, load_preset, preset_names

DEFAULT_PRESET = "quick-lstm"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=(
        "Train identical recurrent language models (d2l chapter 8) in PyTorch, MXNet and JAX, "
        "and record perplexity and tokens/sec."))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="train one model in one backend and record the result")
    _spec_arguments(run)
    run.add_argument("--results", type=Path, default=Path("results/runs"), help="folder for JSON Lines records")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--no-peak", dest="peak", action="store_false",
                     help="skip measuring the matmul peak (a few seconds) used for utilisation")
    run.add_argument("--tag", default=None, metavar="NAME",
                     help="label stored in the record (e.g. `scaling`: the report's scaling curves)")
    run.add_argument("--seeds", type=int, default=None, metavar="S",
                     help="train S seeds (the spec's seed, seed+1, ...; each draws its own initial parameters and "
                          "batch offsets, the same draw in every backend), one record each; default: the preset's "
                          "`seeds`, else 1")
    run.add_argument("--seed-index", type=int, default=None, metavar="K",
                     help="train only seed K (0-based) of the S (a campaign runs each seed in its own process)")
    run.add_argument("--perturb-init", action="store_true",
                     help="nudge every initial parameter by one float ulp (a chaos check: does a change in the "
                          "last bit spread the result as widely as changing framework?)")
    camp = run.add_argument_group("campaign (set by `python -m benchmarks campaign`; a run on its own is "
                                  "a campaign of one)")
    camp.add_argument("--campaign", default=None, metavar="ID", help="the campaign this run belongs to")
    camp.add_argument("--rounds", type=int, default=1, help="slices of the epochs after the warm-up (default 1)")
    camp.add_argument("--gate", action="store_true",
                      help="wait for the driver's `go` on stdin before each round (the campaign's pipe)")
    camp.add_argument("--contender", default=None, help="this process's name in the campaign")
    camp.add_argument("--run-id", default=None, help="the record's run id (default: a new one)")
    camp.add_argument("--extendable", action="store_true",
                      help="with --gate: after the planned rounds, train timing-only rounds while the driver asks "
                           "(replacing disturbed rounds, or for precision); the record's quality stays the preset's")
    camp.add_argument("--parity-check", action="store_true",
                      help="before timing, check loss and gradients against the numpy reference at the preset's "
                           "shape (the record's `parity`; a contender that fails is never ranked)")
    camp.add_argument("--twin-of", default=None, metavar="CONTENDER",
                      help="this process is an A/A twin of CONTENDER (the campaign's calibration, never ranked)")
    camp.add_argument("--process", type=process_arg, default=(1, 1), metavar="K/N",
                      help="with --gate: this is process K of the N that take turns at this contender's rounds "
                           "(K, K+N, K+2N, ...), so its interval spans process-to-process differences")
    camp.add_argument("--campaign-settings", type=json.loads, default=None, help=argparse.SUPPRESS)
    parity = sub.add_parser("parity", help="compare a backend's loss and gradients with the numpy reference")
    _spec_arguments(parity)
    parity.add_argument("--launched", type=Path, default=None, metavar="DIR",
                        help="check the parity.npz that workers started by torchrun, MXNet's launch.py or by hand "
                             "wrote to DIR (their RNNBENCH_OUT; README, Across machines)")
    report = sub.add_parser("report", help="turn recorded runs into tables and plots (needs pandas, matplotlib)")
    _report_arguments(report)
    listing = sub.add_parser("list", help="presets, backends, devices, and each backend's modes with their track")
    listing.add_argument("--json", action="store_true", help="the same as one JSON object on stdout")
    sub.add_parser("campaign", add_help=False,
                   help="a suite in every backend, interleaved round by round (`campaign --help`)")
    compare = sub.add_parser("compare", help="two campaigns side by side: NEW over BASE per preset, backend, mode")
    _compare_arguments(compare)
    past = sub.add_parser("history", help="every campaign's tokens/sec over time, per machine; steps marked")
    _history_arguments(past)
    return parser.parse_args(argv)


def process_arg(text: str) -> tuple[int, int]:
    """`--process K/N` as (K, N); argparse turns the ValueError into a one-line error."""
    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise argparse.ArgumentTypeError(f"{text!r} is not K/N with 1 <= K <= N, e.g. 1/2")
    return int(k), int(n)


def _spec_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", required=True, choices=list(BACKENDS), help="framework to run")
    p.add_argument("--preset", default=DEFAULT_PRESET, help=f"preset name (default {DEFAULT_PRESET}; see `list`)")
    p.add_argument("--device", default="cpu", help="cpu or gpu:N (default cpu)")
    p.add_argument("--mode", default=None, help="execution mode (default: the backend's fastest; see `list`)")
    p.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any spec field, e.g. --set cell=gru --set train.lr=1 (repeatable)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: all cores)")
    p.add_argument("--data-dir", default=None,
                   help="folder with the data files (default: $RNNBENCH_DATA, then the cache)")
    workers.add_arguments(p)


def _report_arguments(p: argparse.ArgumentParser) -> None:
    try:
        from benchmarks.report import add_report_arguments
    except ImportError:  # the report's own dependencies are checked when it runs
        p.add_argument("--results", type=Path, default=Path("results/runs"))
        p.add_argument("--out", type=Path, default=Path("results"))
        p.add_argument("--since", default=None)
        p.add_argument("--commit", default=None)
        p.add_argument("--microbench", type=Path, default=None)
        return
    add_report_arguments(p)


def resolve_spec(args: argparse.Namespace) -> tuple[RunSpec, dict]:
    """The preset with --epochs and --set applied; checks --threads (an error below 1,
    a one-line warning above the core count: oversubscribed threads make timings slow
    and noisy, so such a run is not comparable)."""
    cores = os.cpu_count() or 1
    if args.threads is not None and args.threads < 1:
        raise RnnbenchError(f"--threads={args.threads} must be at least 1")
    if args.threads is not None and args.threads > cores:
        print(f"warning: --threads={args.threads} is more than the {cores} cores here, so threads share cores "
              f"and timings are slower and noisier: use --threads {cores} or fewer", file=sys.stderr)
    spec, book = load_preset(args.preset)
    overrides = list(args.overrides) + ([f"epochs={args.epochs}"] if args.epochs is not None else [])
    return spec.with_overrides(overrides), book


def _history_arguments(p: argparse.ArgumentParser) -> None:
    try:
        from benchmarks.report.history import add_arguments
    except ImportError:  # the report's own dependencies are checked when it runs
        p.add_argument("--results", type=Path, action="append", default=None)
        p.add_argument("--out", type=Path, default=Path("results"))
        p.add_argument("--min-effect", type=float, default=0.10)
        return
    add_arguments(p)


def _compare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("base", help="campaign id, or a results folder (its latest campaign)")
    p.add_argument("new", help="campaign id, or a results folder (its latest campaign)")
    p.add_argument("--results", type=Path, action="append", default=None,
                   help="folders searched for campaign ids (default: results/runs and results/reference/runs)")
    p.add_argument("--json", action="store_true", help='print {"rows": [...]} instead of a table')
    p.add_argument("--force", action="store_true", help="compare campaigns from different machines anyway")
    p.add_argument("--min-effect", type=float, default=0.10,
                   help="smallest change called faster/slower between campaigns (default 0.10, as asv)")


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # an ASCII-only terminal gets \u escapes, never a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["campaign"]:
        from benchmarks.campaign import main as campaign_main

        return campaign_main(argv[1:])
    args = parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except RnnbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except OSError as exc:  # a full disk, a folder without permission: what and where, not a traceback
        print(f"error: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    except MemoryError:
        print("error: out of memory: choose a smaller preset or --set num_hiddens/batch_size lower",
              file=sys.stderr)
        return 1


def cmd_run(args: argparse.Namespace) -> int:
    from benchmarks.harness import RunRequest, run
    from benchmarks.progress import Progress
    from benchmarks.rounds import epoch_rounds, show, start_heartbeat
    from benchmarks.summary import describe_run
    from common.records import check_name, new_campaign_id

    for flag in ("tag", "campaign", "contender", "twin_of", "run_id"):
        check_name("--" + flag.replace("_", "-"), getattr(args, flag, None))
    spec, book = resolve_spec(args)
    epoch_rounds(spec.train.epochs, args.rounds, *args.process)  # --rounds 0 is an error before anything runs
    if args.gate and spec.train.epochs < 2:
        raise RnnbenchError(f"a campaign run needs at least 2 epochs (a warm-up and a timed one); "
                            f"{args.preset} has {spec.train.epochs}: raise --epochs")
    if args.gate:  # the campaign driver hears from this process while it works (not from its workers)
        start_heartbeat()
    if workers.wanted(args):
        return workers.cmd_run(args, spec, book)
    count, indices = seed_plan(args, book)
    campaign = args.campaign or (new_campaign_id() if len(indices) > 1 else None)  # the seeds form one campaign
    codes = []
    for k in indices:
        seeded = spec.with_overrides([f"seed={spec.train.seed + k}"]) if k else spec
        req = RunRequest(args.backend, seeded, args.preset, book, args.device, args.mode, args.threads,
                         args.data_dir, args.results, args.peak, args.tag, campaign=campaign,
                         rounds=args.rounds, gated=args.gate, contender=args.contender, run_id=args.run_id,
                         seeds=(k, count), perturb_init=args.perturb_init, extendable=args.extendable and args.gate,
                         parity=args.parity_check, twin_of=args.twin_of, process=args.process,
                         settings=args.campaign_settings or {})
        label = f"{args.backend} {args.preset}" + (f" seed {seeded.train.seed}" if count > 1 else "")
        progress = Progress(spec.train.epochs, label, enabled=None if not args.quiet else False)
        try:
            record = run(req, progress.update)
        finally:
            progress.close()
        show(describe_run(record))
        codes.append({"ok": 0, "interrupted": 130}.get(record["status"], 1))
        if codes[-1] == 130:
            break
    return max(codes)


def seed_plan(args: argparse.Namespace, book: dict) -> tuple[int, list[int]]:
    """(S, the seed indices this process trains): --seeds, else the preset's `seeds`."""
    count = args.seeds if args.seeds is not None else int(book.get("seeds", 1))
    if count < 1:
        raise RnnbenchError(f"--seeds={count} must be at least 1 (how many seeds to train, e.g. --seeds 5)")
    if args.seed_index is not None:
        if not 0 <= args.seed_index < count:
            raise RnnbenchError(f"--seed-index={args.seed_index} must be from 0 to {count - 1} (one of the "
                                f"--seeds {count})")
        return count, [args.seed_index]
    if count > 1 and (args.gate or args.run_id):
        raise RnnbenchError(f"a campaign run trains one seed per process: add --seed-index K (0 to {count - 1})")
    return count, list(range(count))


def cmd_parity(args: argparse.Namespace) -> int:
    from benchmarks.parity import check, print_report

    spec, _ = resolve_spec(args)
    if args.launched is not None:
        return workers.cmd_launched_parity(args, spec)
    if workers.wanted(args):
        return workers.cmd_parity(args, spec)
    result = check(args.backend, spec, args.device, args.data_dir, args.threads, args.mode)
    return 0 if print_report(args.backend, result) else 1


def cmd_report(args: argparse.Namespace) -> int:
    try:
        from benchmarks.report import run_report
    except ImportError as exc:
        raise RnnbenchError(f"the report needs pandas and matplotlib ({exc}): run `nox -s report`") from exc
    return run_report(args)


def cmd_list(args: argparse.Namespace) -> int:
    """Presets and backends (their modes: track, description, default); `--json` gives
    {"presets": [{name, description}], "tracks": {track: meaning}, "backends": [...]}."""
    import json

    from backends.base import TRACK_MEANING
    from benchmarks.summary import backend_listing, describe_environment

    presets = [{"name": name, "description": load_preset(name)[1].get("description", "")} for name in preset_names()]
    listings = [backend_listing(name) for name in BACKENDS]
    if args.json:
        print(json.dumps({"presets": presets, "tracks": TRACK_MEANING, "backends": listings}, indent=1))
        return 0
    print("presets:")
    for p in presets:
        print(f"  {p['name']:16s} {p['description']}")
    print("tracks:")
    for track, meaning in TRACK_MEANING.items():
        print(f"  {track:12s} {meaning}")
    print(describe_environment(listings))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    try:
        from benchmarks.report.compare import run_compare
    except ImportError as exc:
        raise RnnbenchError(f"compare needs pandas and scipy ({exc}): run `nox -s compare -- BASE NEW`") from exc
    return run_compare(args)


def cmd_history(args: argparse.Namespace) -> int:
    try:
        from benchmarks.report.history import run_history
    except ImportError as exc:
        raise RnnbenchError(f"history needs pandas, scipy and matplotlib ({exc}): run `nox -s history`") from exc
    return run_history(args)


COMMANDS = {"run": cmd_run, "parity": cmd_parity, "report": cmd_report, "list": cmd_list, "compare": cmd_compare,
            "history": cmd_history}
