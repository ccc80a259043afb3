"""Command line: `python -m benchmarks run|parity|report|list` (DESIGN.md's contract).

Mistakes a user can fix (unknown names, impossible sizes, missing data, absent
devices) end with one line on stderr and exit code 2; a run that diverged or failed
exits 1; Ctrl-C exits 130 after writing the `interrupted` record.
"""

from __future__ import annotations

import argparse
import sys

from backends import BACKENDS
from benchmarks.options import parse_args, resolve_spec, wants_workers
from common.errors import RnnbenchError
from common.files import describe_os_error
from common.specs import load_preset, preset_names


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # an ASCII-only terminal gets \u escapes, never a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["campaign"]:
        from benchmarks.campaign.driver import main as campaign_main

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
    from benchmarks.pipe import epoch_rounds, show, start_heartbeat
    from benchmarks.run.harness import RunRequest, exit_code, run
    from benchmarks.run.progress import Progress
    from benchmarks.run.summary import describe_run
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
    if wants_workers(args):
        from benchmarks.parallel import launcher

        return launcher.cmd_run(args, spec, book)
    count, indices = seed_plan(args, book)
    campaign = args.campaign or (new_campaign_id() if len(indices) > 1 else None)  # the seeds form one campaign
    codes = []
    for k in indices:
        seeded = spec.with_overrides([f"seed={spec.train.seed + k}"]) if k else spec
        req = RunRequest.from_args(args, seeded, book, campaign=campaign, seeds=(k, count),
                                   perturb_init=args.perturb_init, extendable=args.extendable and args.gate,
                                   parity=args.parity_check, twin_of=args.twin_of, process=args.process,
                                   settings=args.campaign_settings or {})
        label = f"{args.backend} {args.preset}" + (f" seed {seeded.train.seed}" if count > 1 else "")
        progress = Progress(spec.train.epochs, label, enabled=None if not args.quiet else False)
        try:
            record = run(req, progress.update)
        finally:
            progress.close()
        show(describe_run(record))
        codes.append(exit_code(record))
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
    from benchmarks.run.parity import check, print_report

    spec, _ = resolve_spec(args)
    if args.launched is not None or wants_workers(args):
        from benchmarks.parallel import launcher

        if args.launched is not None:
            return launcher.cmd_launched_parity(args, spec)
        return launcher.cmd_parity(args, spec)
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
    from benchmarks.run.summary import backend_listing, describe_environment

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
