"""The command line's grammar: every subcommand's arguments, and the spec they ask for.

Kept apart from `cli` (which runs the commands) so that a data-parallel worker
(`benchmarks.parallel.worker`) parses the same `run`/`parity` command line without
importing the command layer above it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from backends import BACKENDS
from common.errors import RnnbenchError
from common.specs import RunSpec, load_preset

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
    add_report_arguments(report)
    listing = sub.add_parser("list", help="presets, backends, devices, and each backend's modes with their track")
    listing.add_argument("--json", action="store_true", help="the same as one JSON object on stdout")
    sub.add_parser("campaign", add_help=False,
                   help="a suite in every backend, interleaved round by round (`campaign --help`)")
    compare = sub.add_parser("compare", help="two campaigns side by side: NEW over BASE per preset, backend, mode")
    _compare_arguments(compare)
    past = sub.add_parser("history", help="every campaign's tokens/sec over time, per machine; steps marked")
    add_history_arguments(past)
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
    _workers_arguments(p)


DEFAULT_RESULTS, DEFAULT_OUT = Path("results/runs"), Path("results")
MIN_EFFECT = 0.10  # the smallest change called between campaigns (as asv); report.stats.COMPARE_MIN_EFFECT


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                   help=f"folder (or one .jsonl file) of run records (default: {DEFAULT_RESULTS})")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help=f"where REPORT.md, REPORT.html, the CSVs and plots/ go (default: {DEFAULT_OUT})")
    p.add_argument("--since", metavar="DATE", help="only records at or after this ISO date/time (UTC)")
    p.add_argument("--commit", metavar="PREFIX", help="only records whose git commit starts with PREFIX")
    p.add_argument("--campaign", metavar="ID", default=None,
                   help="the campaign the report leads with and summary.json holds (default: the newest)")
    p.add_argument("--microbench", type=Path, default=None, metavar="DIR",
                   help="pytest-benchmark JSON of `nox -s microbench` (default: microbench/ beside --results)")


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


def add_history_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", type=Path, action="append", default=None,
                   help="folders of records (default: results/runs and results/reference/runs)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where history.json and plots/ go")
    p.add_argument("--min-effect", type=float, default=MIN_EFFECT,
                   help=f"smallest change marked as a step between campaigns (default {MIN_EFFECT:.2f}, as compare)")


def _compare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("base", help="campaign id, or a results folder (its latest campaign)")
    p.add_argument("new", help="campaign id, or a results folder (its latest campaign)")
    p.add_argument("--results", type=Path, action="append", default=None,
                   help="folders searched for campaign ids (default: results/runs and results/reference/runs)")
    p.add_argument("--json", action="store_true", help='print {"rows": [...]} instead of a table')
    p.add_argument("--force", action="store_true", help="compare campaigns from different machines anyway")
    p.add_argument("--min-effect", type=float, default=MIN_EFFECT,
                   help=f"smallest change called faster/slower between campaigns (default {MIN_EFFECT:.2f}, as asv)")



def _workers_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data-parallel workers (each framework's own engine; see README)")
    g.add_argument("--workers", type=int, default=1,
                   help="worker processes, each training on batch_size/N sequences of every batch (default 1)")
    g.add_argument("--port", type=int, default=0,
                   help="loopback port for the workers' rendezvous (default: a free one)")
    g.add_argument("--worker-timeout", type=float, default=600.0, metavar="S",
                   help="seconds without progress from any worker before the run is ended as a hang (default 600)")


def wants_workers(args: argparse.Namespace) -> bool:
    """Whether this command runs data-parallel workers (anything but --workers 1)."""
    return getattr(args, "workers", 1) != 1
