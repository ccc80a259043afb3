"""`python -m benchmarks compare BASE NEW`: two campaigns side by side, as asv's compare.

Per preset x backend x mode: NEW's tokens/sec over BASE's, its 95% interval and a
verdict (`faster`, `slower`, `same`; benchmarks.report.stats). Campaigns measured on
different machines (fingerprints), or whose matmul peaks say the machine was in a
different state, are refused unless --force: their ratio would be the machines'.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from benchmarks.report import display as fmt
from benchmarks.report.data import load_runs, pick_rows, split_scaling, with_group_ids
from benchmarks.report.stats import round_rates, unpaired_ratio
from benchmarks.report.tables import campaign_ceiling, campaigns_by_time
from common.errors import RnnbenchError

DEFAULT_FOLDERS = (Path("results/runs"), Path("results/reference/runs"))
MATCH = ["preset_label", "contender", "backend", "mode"]
PEAK_FACTOR = 1.5  # campaign ceilings further apart than this are not the same machine state


def _records(folder: Path) -> pd.DataFrame:
    """The folder's main-table runs; what was skipped reading it is said once per line
    on stderr (`warning: path: ...`), as `report` does."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = load_runs(folder)
    for message in dict.fromkeys(str(w.message) for w in caught):
        print(f"warning: {message}", file=sys.stderr)
    return split_scaling(runs)[0] if not runs.empty else runs


def resolve(ref: str, folders: list[Path]) -> tuple[pd.DataFrame, str]:
    """A campaign's runs and id from a campaign id (or a unique prefix of one) looked up
    in `folders`, or from a results folder (its newest campaign)."""
    path = Path(ref)
    if path.exists():
        if not (path.is_dir() and any(path.rglob("*.jsonl"))) and path.suffix != ".jsonl":
            raise RnnbenchError(f"{ref} holds no run records (*.jsonl); give a results folder or a campaign id")
        runs = _records(path)
        if runs.empty:
            raise RnnbenchError(f"{ref} holds no rnnbench run records; run `nox -s bench` first")
        cid = campaigns_by_time(runs)[0]
        return runs[runs["campaign"] == cid], cid
    pools = [_records(f) for f in folders if f.exists()]
    runs = pd.concat([p for p in pools if not p.empty], ignore_index=True) if any(len(p) for p in pools) else None
    if runs is None:
        raise RnnbenchError(f"no campaign {ref!r}: no records in {', '.join(map(str, folders))}; pass --results DIR")
    ids = campaigns_by_time(runs)
    matches = [c for c in ids if c == ref] or [c for c in ids if c.startswith(ref)]
    if len(matches) != 1:
        what = "is ambiguous" if matches else "is not a campaign there"
        raise RnnbenchError(f"{ref!r} {what} ({', '.join(map(str, folders))}); campaigns (newest first): "
                            f"{', '.join(ids[:6])}{' ...' if len(ids) > 6 else ''}")
    return runs[runs["campaign"] == matches[0]], matches[0]


def check_same_machine(base: pd.DataFrame, new: pd.DataFrame) -> str | None:
    """Why two campaigns are not comparable, or None."""
    fb, fn = base["fingerprint"].mode().iloc[0], new["fingerprint"].mode().iloc[0]
    if fb != fn:
        return (f"BASE ran on machine {fb} ({base['machine'].iloc[0]}), NEW on {fn} ({new['machine'].iloc[0]}): "
                "a ratio between them measures the machines; pass --force to compare anyway")
    pb, pn = (campaign_ceiling(c) / int(c["threads"].max() or 1) for c in (base, new))  # per thread used
    if not (math.isnan(pb) or math.isnan(pn)) and max(pb, pn) / min(pb, pn) > PEAK_FACTOR:
        return (f"the campaigns' matmul peaks per thread differ {max(pb, pn) / min(pb, pn):.1f}x "
                f"({fmt.gflops(pb)} vs {fmt.gflops(pn)} GFLOP/s): the same machine in another state, or another "
                "machine behind the same labels; pass --force to compare anyway")
    return None


def _rates(runs: pd.DataFrame) -> pd.DataFrame:
    rows = pick_rows(with_group_ids(runs))
    rates = round_rates(rows[rows["status"].eq("ok")])
    threads = rows.groupby(MATCH)["threads"].first()
    return rates.merge(threads.rename("threads").reset_index(), on=MATCH, how="left")


def compare_rows(base: pd.DataFrame, new: pd.DataFrame, min_effect: float) -> pd.DataFrame:
    """One row per preset x contender x mode present in both campaigns."""
    rb, rn = _rates(base), _rates(new)
    out = []
    for key, nrows in rn.groupby(MATCH, sort=True):
        brows = rb[(rb[MATCH] == pd.Series(key, index=MATCH)).all(axis=1)]
        if brows.empty:
            continue
        ratio, lo, hi = unpaired_ratio(nrows["tok_s"].to_numpy(), brows["tok_s"].to_numpy())
        out.append({**dict(zip(MATCH, key, strict=True)), "base_tok_s": brows["tok_s"].median(),
                    "new_tok_s": nrows["tok_s"].median(), "base_rounds": len(brows), "new_rounds": len(nrows),
                    "base_threads": int(brows["threads"].iloc[0]), "new_threads": int(nrows["threads"].iloc[0]),
                    "ratio": ratio, "ratio_lo": lo, "ratio_hi": hi,
                    "verdict": between(lo, hi, min_effect)})
    return pd.DataFrame(out)


def between(low: float, high: float, min_effect: float) -> str:
    """`faster`/`slower` only when the whole 95% interval lies beyond the minimum effect:
    campaigns are not paired, so a drift of the machine between them moves the ratio
    itself, and only a change clear of it with confidence is called."""
    if math.isnan(low) or math.isnan(high):
        return "same"
    if high < 1 - min_effect:
        return "slower"
    if low > 1 + min_effect:
        return "faster"
    return "same"


def as_json(rows: pd.DataFrame, base_id: str, new_id: str, min_effect: float) -> str:
    def clean(x):
        return None if isinstance(x, float) and not math.isfinite(x) else x
    data = [{"preset": r["preset_label"], "backend": r["backend"], "mode": r["mode"], "contender": r["contender"],
             "ratio": clean(r["ratio"]), "ratio_ci": [clean(r["ratio_lo"]), clean(r["ratio_hi"])],
             "verdict": r["verdict"], "base_tok_s": clean(r["base_tok_s"]), "new_tok_s": clean(r["new_tok_s"]),
             "threads": [r["base_threads"], r["new_threads"]]} for _, r in rows.iterrows()]
    return json.dumps({"base": base_id, "new": new_id, "min_effect": min_effect, "rows": data}, indent=1)


def as_table(rows: pd.DataFrame) -> str:
    table = pd.DataFrame({
        "preset": rows["preset_label"], "backend (mode)": rows["contender"] + " (" + rows["mode"] + ")",
        "threads": [f"{b}" if b == n else f"{b} -> {n}" for b, n in zip(rows["base_threads"], rows["new_threads"],
                                                                      strict=True)],
        "BASE tok/s": rows["base_tok_s"].map(fmt.rate), "NEW tok/s": rows["new_tok_s"].map(fmt.rate),
        "NEW / BASE [95% CI]": [fmt.ratio_ci(r, lo, hi) for r, lo, hi in
                                zip(rows["ratio"], rows["ratio_lo"], rows["ratio_hi"], strict=True)],
        "verdict": rows["verdict"]})
    return tabulate(table, headers="keys", showindex=False, disable_numparse=True)


def run_compare(args: argparse.Namespace) -> int:
    if not 0 <= args.min_effect < 1:
        raise RnnbenchError(f"--min-effect {args.min_effect} must be a fraction in [0, 1), e.g. 0.10")
    folders = [Path(p) for p in (args.results or DEFAULT_FOLDERS)]
    base, base_id = resolve(args.base, folders)
    new, new_id = resolve(args.new, folders)
    problem = check_same_machine(base, new)
    if problem and not args.force:
        raise RnnbenchError(f"will not compare {base_id} with {new_id}: {problem}")
    rows = compare_rows(base, new, args.min_effect)
    if rows.empty:
        raise RnnbenchError(f"{base_id} and {new_id} share no preset x backend x mode; nothing to compare")
    if args.json:
        print(as_json(rows, base_id, new_id, args.min_effect))
        return 0
    print(f"NEW {new_id} over BASE {base_id}" + (f" (forced: {problem})" if problem else ""))
    print(as_table(rows))
    print(f"Verdicts: `faster`/`slower` when the whole 95% interval (Welch's t on log tok/s per round, "
          f"scipy.stats) lies beyond a {args.min_effect:.0%} change; campaigns are not paired, so the machine's "
          "drift between them is not cancelled. For a paired A/B, run one campaign with both as contenders "
          "(`--checkout NAME=DIR`, `--modes`).", file=sys.stdout)
    return 0
