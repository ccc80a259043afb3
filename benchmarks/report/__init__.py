"""`python -m benchmarks report`: recorded runs -> REPORT.md, REPORT.html, summary.json,
CSVs and plots, campaign by campaign, the headline first.

Runs in its own environment with pandas, scipy, matplotlib and tabulate; no framework
is imported. One axis splits the package: `data` reads records and micro-benchmark
JSON into frames, `stats` holds the statistics (scipy), `tables` derives every table
(raw values: the CSVs and summary.json), `plots` draws, `display` turns numbers into
strings, `render` writes Markdown and HTML; this module assembles the document and
`compare` sets two campaigns side by side.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from benchmarks.options import add_report_arguments
from benchmarks.report import display as fmt
from benchmarks.report import tables
from benchmarks.report.data import (
    load_microbench,
    load_runs,
    parse_time,
    preset_info,
    split_scaling,
    threads_label,
    with_group_ids,
)
from benchmarks.report.parallel import workers_blocks, workers_table
from benchmarks.report.plots import write_forest_plots, write_plots, write_scaling_plots
from benchmarks.report.render import escape_md, to_html, to_markdown
from benchmarks.report.stats import METHOD
from benchmarks.report.tables import (
    environments_table,
    reproduction_table,
    samples_table,
    throughput_table,
    time_to_quality_table,
)
from common.files import replacing, write_text

TITLE = "rnnbench report"
HOW_TO_READ = (
    "A comparison group (G1, G2, ...) is one preset in one campaign (one `nox -s bench`: one machine, one code "
    "version), one device, one spec and one thread count; numbers from different groups are never compared. "
    "Tokens/sec is the median over the epochs after the first (the first holds compilation/warm-up, shown "
    "separately), with min–max and IQR. "
    "When one row has several records, the latest `ok` one is shown (column `shown`); diverged, interrupted "
    "and failed runs keep their status and never count as the fastest. `vs fastest` is tokens/sec over the "
    "fastest `ok` row of the group.")
UTILISATION = (
    "Utilisation: `GFLOP/s` is the model's training FLOPs per token × the median tokens/sec. The FLOPs count the "
    "products the model needs (common.flops, the MFU convention of PaLM's appendix B): forward = the sum over "
    "layers of 2·G·h·(in + h), plus 2·V·h for the output layer (G gate blocks: LSTM 4, GRU 3, RNN 1; h hidden "
    "units; in the layer's input width, V for one-hot; V the vocabulary); training = the forward products, their "
    "weight gradients and their input gradients, less the first layer's input gradient for one-hot input, which "
    "nothing needs: 3 × forward − 2·G·h·V. The same count serves the `recurrent` micro-benchmark (its layers' "
    "share) and generation (forward only). The ceiling is one number per campaign: the best float32 matmul "
    "(4096², best of 3) that any framework measured in it with any library it offers (`a @ b`, `nd.dot`, "
    "`jnp.dot`, and PyTorch's oneDNN packed matmul, MXNet's `FullyConnected`), never pooled across campaigns; "
    "`of ceiling` = GFLOP/s ÷ that ceiling. `own peak` is each framework's own best, shown apart. Above 100% "
    "of the ceiling is flagged as a measurement error, never printed as utilisation.")
TRACKS_TEXT = (
    "Tracks: every row is one backend in one mode, and every mode belongs to a track. `out-of-box`: the framework "
    "as its documentation and the book teach it (its own recurrent layers, optimizer and clipping); `tuned`: the "
    "fastest this project makes it go, every trick named in the mode's description (`python -m benchmarks list`); "
    "`book`: d2l's own training loop with its per-step host syncs, on the book's library layers.")


def _intro(runs: pd.DataFrame, results_dir: Path, since: str | None, commit: str | None,
           n_scaling: int = 0) -> list[tuple]:
    filters = ([f"since {since}"] if since else []) + ([f"git commit {commit}*"] if commit else [])
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    text = (f"Generated {now} from {len(runs) + n_scaling} record(s) under `{results_dir}`"
            + (f" (filtered: {', '.join(filters)})" if filters else "")
            + (f"; {n_scaling} of them tagged `scaling` (section 5 only)" if n_scaling else "") + ".")
    if len(runs):
        text += (f" Records from {runs['timestamp'].min():%Y-%m-%d %H:%M} to {runs['timestamp'].max():%Y-%m-%d %H:%M}"
                 f" UTC; {runs['group'].nunique()} comparison group(s).")
    return [("h", 1, TITLE), ("p", text)]


def _group_heading(rows: pd.DataFrame) -> str:
    first = rows.iloc[0]
    device = fmt.where(first["device"])
    return f"{first['group']} · {first['preset']} · {device} on {first['machine']} · {threads_label(first['threads'])}"


def _headline_blocks(runs: pd.DataFrame, lead: str | None, out_dir: Path) -> list[tuple]:
    """The answer first: each campaign's verdicts, the lead campaign (the newest, or the
    one asked for) at the top; per preset the answer in one sentence, the twin's
    calibration, the forest plot (every ratio to the fastest with its interval), then
    the table. The campaign's machine line and how to read it come after."""
    blocks: list[tuple] = [("h", 2, "Headline: which framework is fastest here, and how sure")]
    if runs.empty:
        return blocks + [("p", "No records.")]
    order = tables.campaigns_by_time(runs)
    order = ([lead] if lead in order else []) + [c for c in order if c != lead]
    per_campaign = {cid: tables.headline_rows(runs[runs["campaign"] == cid]) for cid in order}
    forest = write_forest_plots(pd.concat(per_campaign.values(), ignore_index=True), out_dir / "plots")
    for cid, rows in per_campaign.items():
        blocks += [("h", 3, f"Campaign {escape_md(cid)}" + (" (this report's)" if cid == lead else ""))]
        for gid, group in rows.groupby("group", sort=True):
            note = fmt.calibration(group)
            blocks += [("p", fmt.answer(group))] + ([("p", note)] if note else [])
            if gid in forest:
                blocks += [("img", forest[gid].relative_to(out_dir).as_posix(), f"{gid} verdict")]
            blocks += [("table", fmt.headline(group))]
            speedups = fmt.speedups(tables.track_speedups(group))
            changes = fmt.version_changes(group)
            blocks += [("p", line) for line in (speedups, changes) if line]
        blocks += [("p", fmt.campaign_heading(runs, cid))]
    return blocks + [("p", HOW_TO_READ), ("p", TRACKS_TEXT), ("p", METHOD)]


def _throughput_blocks(table: pd.DataFrame, plots: dict[str, list[Path]], out_dir: Path) -> list[tuple]:
    blocks: list[tuple] = [("h", 2, "1. Throughput and quality"), ("p", UTILISATION)]
    if table.empty:
        return blocks + [("p", "No records.")]
    for gid, rows in table.groupby("group", sort=True):
        blocks += [("h", 3, _group_heading(rows))]
        spec = rows["overrides"].iloc[0]
        blocks += [("p", f"Spec: {'as the preset' if not spec else 'preset with ' + spec}.")]
        blocks += [("table", fmt.throughput(rows))]
        blocks += [("img", p.relative_to(out_dir).as_posix(), f"{gid} {p.stem}") for p in plots.get(gid, [])]
    return blocks


def _reproduction_blocks(table: pd.DataFrame) -> list[tuple]:
    blocks: list[tuple] = [("h", 2, "2. Book reproduction"), (
        "p", "The book's tokens/sec come from other hardware: they are shown as reported, beside this machine's, "
             "never as a pass/fail. `reproduces` is yes when a full, unmodified run of the preset reaches the "
             "target perplexity.")]
    for name, rows in table.groupby("preset", sort=True):
        first = rows.iloc[0]
        target = "no target" if pd.isna(first["target_ppl"]) else f"target {first['metric']} ≤ {first['target_ppl']:g}"
        blocks += [("h", 3, f"{name} ({target})"), ("table", fmt.reproduction(rows))]
    return blocks


def _quality_blocks(table: pd.DataFrame) -> list[tuple]:
    return [("h", 2, "3. Time to quality"),
            ("p", "Training seconds (epochs summed, warm-up included) until the preset's target perplexity is "
                  "first reached, per row of table 1 — the DAWNBench/MLPerf measure."),
            ("table", fmt.time_to_quality(table))]


def _environment_blocks(table: pd.DataFrame) -> list[tuple]:
    return [("h", 2, "4. Environments"), ("table", fmt.environments(table))]


def _scaling_blocks(table: pd.DataFrame, plots: dict[tuple, Path], out_dir: Path) -> list[tuple]:
    blocks: list[tuple] = [("h", 2, "5. Scaling curves"), (
        "p", "Runs tagged `scaling` (`nox -s bench -- --suite scaling`): quick-lstm (and quick-gru for the batch "
             "size) with one size varied at a time, a few epochs each (the first is warm-up). Tokens/sec is the "
             "median of the later epochs; in brackets its utilisation, GFLOP/s (as in section 1) over the best "
             "matmul peak measured on that machine with that thread count. Peak MB is the process's peak RSS, "
             "framework included. The preset's own run is a point of every curve.")]
    if table.empty:
        return blocks + [("p", "No scaling runs recorded.")]
    for (sgroup, preset), rows in table.groupby(["sgroup", "preset"], sort=True):
        blocks += [("h", 3, fmt.scaling_title(rows))]
        if (sgroup, preset) in plots:
            blocks += [("img", plots[(sgroup, preset)].relative_to(out_dir).as_posix(), f"{sgroup} {preset} scaling")]
        base = preset_info(preset)[0]
        for axis, points in (tables.with_baseline(rows, base) if base else {}).items():
            blocks += [("p", f"Varying {tables.AXIS_LABEL[axis]}:"), ("table", fmt.scaling(points, axis))]
        other = rows[rows["axis"].eq(tables.OTHER)]
        if len(other):
            blocks += [("p", "Not on a curve (more than one size changed): " + "; ".join(
                f"{r.backend} {r.mode}: {r.overrides}" for r in other.itertuples()))]
    return blocks


def _micro_blocks(table: pd.DataFrame, folder: Path) -> list[tuple]:
    blocks: list[tuple] = [("h", 2, "6. Micro-benchmarks"), (
        "p", f"pytest-benchmark timings from `{folder}` (`nox -s microbench`): one training step (forward, backward, "
             "clip, update on one batch of 32 × 35), one forward and backward pass of the recurrent layers alone "
             "(`recurrent`: the same batch, no output layer, loss or update) and one greedy generation step (one "
             "token) per backend, cell and mode at d2l-deep-lstm's shape (2 × 256, one-hot over 28 characters), "
             "each call ending with the device finished. tok/s = tokens per call ÷ median time; GFLOP/s = tok/s × "
             "model FLOPs per token (as in section 1: training and `recurrent` count forward, weight-gradient and "
             "needed input-gradient products, generation forward only); `of ceiling` against the best float32 "
             "matmul peak the files measured; "
             "`vs fastest` within the same step and cell.")]
    if table.empty:
        return blocks + [("p", "No micro-benchmark results.")]
    for (machine, device, threads), rows in table.groupby(tables.MICRO_KEYS, sort=True):
        where = fmt.where(device)
        blocks += [("h", 3, f"{where} on {machine} · {threads_label(int(threads))}"), ("table", fmt.micro(rows))]
    return blocks


def _sample_blocks(table: pd.DataFrame) -> list[tuple]:
    blocks: list[tuple] = [("h", 2, "Sample generations"),
                           ("p", "Greedy continuations of each prefix by the runs shown in table 1.")]
    for name, rows in table.groupby("preset", sort=True):
        blocks += [("h", 3, str(name)), ("table", fmt.samples(rows))]
    return blocks


def _load(results_dir: Path, since: str | None, commit: str | None,
          micro_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[str]]:
    """(main runs with group ids, scaling runs, micro-benchmarks), plus the warnings
    about skipped input (also re-issued as warnings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = load_runs(results_dir, since, commit)
        benches = load_microbench(micro_dir)
    skipped = [str(w.message) for w in caught]
    for message in skipped:
        warnings.warn(message, UserWarning, stacklevel=3)
    main, tagged = split_scaling(runs)
    return (with_group_ids(main) if not main.empty else main), tagged, benches, skipped


def default_micro_dir(results_dir: Path) -> Path:
    """results/microbench beside results/runs (or beside the one .jsonl file's folder)."""
    folder = results_dir if results_dir.suffix != ".jsonl" else results_dir.parent
    return folder.parent / "microbench"


def lead_campaign(runs: pd.DataFrame, campaign: str | None) -> str | None:
    """The campaign the report leads with: the one asked for, else the newest."""
    if campaign is not None:
        if runs.empty or campaign not in set(runs["campaign"]):
            raise KeyError(campaign)
        return campaign
    order = tables.campaigns_by_time(runs)
    return order[0] if order else None


def build_report(results_dir: Path, out_dir: Path, since: str | None = None, commit: str | None = None,
                 micro_dir: Path | None = None, campaign: str | None = None) -> Path:
    """Write REPORT.md (headline first), REPORT.html, summary.json (the lead campaign's
    headline as data), the tables as CSV and the plots; return REPORT.md's path."""
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    micro_dir = Path(micro_dir) if micro_dir else default_micro_dir(results_dir)
    runs, tagged, benches, skipped = _load(results_dir, since, commit, micro_dir)
    scaling_only = campaign is not None and not tagged.empty and campaign in set(tagged["campaign"])
    lead = None if scaling_only and (runs.empty or campaign not in set(runs["campaign"])) else \
        lead_campaign(runs, campaign)
    out_dir.mkdir(parents=True, exist_ok=True)
    if lead is not None:
        tables.write_summary(runs, lead, out_dir / "summary.json")
    frames = {"throughput": throughput_table(runs), "reproduction": reproduction_table(runs),
              "time_to_quality": time_to_quality_table(runs), "environments": environments_table(runs),
              "scaling": tables.scaling_table(tagged, pd.concat([runs, tagged], ignore_index=True)),
              "microbench": tables.microbench_table(benches), "workers": workers_table(runs)}
    for name, table in frames.items():
        with replacing(out_dir / f"{name}.csv") as tmp:
            table.to_csv(tmp, index=False)
    plots = write_plots(runs, out_dir / "plots")
    scaling_plots = write_scaling_plots(frames["scaling"], _base_specs(frames["scaling"]),
                                                out_dir / "plots" / "scaling")
    blocks = (_intro(runs, results_dir, since, commit, len(tagged)) + _headline_blocks(runs, lead, out_dir)
              + _throughput_blocks(frames["throughput"], plots, out_dir)
              + _reproduction_blocks(frames["reproduction"]) + _quality_blocks(frames["time_to_quality"])
              + _environment_blocks(frames["environments"])
              + _scaling_blocks(frames["scaling"], scaling_plots, out_dir) + workers_blocks(frames["workers"], out_dir)
              + _micro_blocks(frames["microbench"], micro_dir) + _sample_blocks(samples_table(runs)))
    if skipped:
        blocks += [("h", 2, "Skipped input"), ("list", skipped)]
    write_text(out_dir / "REPORT.html", to_html(blocks, TITLE))
    path = out_dir / "REPORT.md"
    write_text(path, to_markdown(blocks))
    return path


def _base_specs(table: pd.DataFrame) -> dict[str, dict]:
    """preset -> its spec as a dict, for the presets of the scaling runs that have one."""
    specs = {name: preset_info(name)[0] for name in table["preset"].unique()} if len(table) else {}
    return {name: spec for name, spec in specs.items() if spec}


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def run_report(args: argparse.Namespace) -> int:
    """The `report` command: 0 on success, 2 on a bad argument or missing results folder."""
    if args.since:
        try:
            parse_time(args.since)
        except ValueError:
            print(f"error: --since {args.since!r} is not an ISO date such as 2024-05-31 or 2024-05-31T12:00",
                  file=sys.stderr)
            return 2
    problem = check_folders(args.results, args.out)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _print_warning
        try:
            path = build_report(args.results, args.out, args.since, args.commit, getattr(args, "microbench", None),
                                getattr(args, "campaign", None))
        except KeyError as exc:
            print(f"error: no campaign {exc.args[0]!r} under {args.results}; {known_campaigns(args.results)}",
                  file=sys.stderr)
            return 2
    print(f"wrote {path}, {path.with_suffix('.html').name}, summary.json, CSVs and plots/ in {args.out}")
    return 0


def check_folders(results: Path, out: Path) -> str | None:
    """Why the report cannot run on these folders, in one line; None when it can."""
    if not results.exists():
        return (f"no results folder {results}; record runs first with `nox -s bench` "
                "(or `python -m benchmarks run --backend NAME`), or pass --results DIR")
    if results.is_file() and results.suffix != ".jsonl":
        return f"--results {results} is not a folder of run records (*.jsonl) nor one .jsonl file"
    if results.is_dir() and not any(results.rglob("*.jsonl")):
        return f"no run records (*.jsonl) under {results}; run `nox -s bench` first, or pass --results DIR"
    if out.exists() and not out.is_dir():
        return f"--out {out} is a file; give a folder for REPORT.md, summary.json and plots/"
    return None


def known_campaigns(results: Path) -> str:
    """`campaigns here: a, b, ...` (newest first), for an error about an unknown id."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = load_runs(results)
    found = tables.campaigns_by_time(runs)
    if not found:
        return "it holds no records"
    more = f" and {len(found) - 8} older" if len(found) > 8 else ""
    return f"campaigns there (newest first): {', '.join(found[:8])}{more}"


def campaign_report(results: Path, out: Path, campaign: str) -> str:
    """Write the report led by `campaign`; return its headline as plain text for the terminal."""
    from tabulate import tabulate

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _print_warning
        path = build_report(results, out, campaign=campaign)
        runs = load_runs(results)
    main, _ = split_scaling(runs)
    mine = main[main["campaign"] == campaign]
    lines = [fmt.campaign_heading(mine, campaign) if len(mine) else f"campaign {campaign}: no main-table runs"]
    rows = tables.headline_rows(with_group_ids(mine)) if len(mine) else mine
    for _, group in (rows.groupby("group", sort=True) if len(rows) else []):
        table = fmt.headline(group).replace("`", "", regex=True)
        sentences = [fmt.answer(group), fmt.calibration(group)]
        lines += [""] + [x.replace("`", "").replace("**", "") for x in sentences if x]
        lines += [tabulate(table, headers="keys", showindex=False, disable_numparse=True)]
        speedups = fmt.speedups(tables.track_speedups(group))
        lines += [line for line in (speedups, fmt.version_changes(group)) if line]
    wrote = f"wrote {path} and {out / 'summary.json'}" if len(mine) else f"wrote {path} (scaling runs: section 5)"
    return "\n".join(lines + ["", wrote])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks report", description=__doc__.splitlines()[0])
    add_report_arguments(parser)
    return run_report(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
