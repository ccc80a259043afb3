"""`python -m benchmarks history`: every campaign in the results folders, over time.

Per machine (fingerprint), preset and contender: tokens/sec of each campaign, the
median over its rounds with the sign test's 95% interval (the row's own, as `tok_s_own`
in summary.json), in the order the campaigns ran, as asv's published history pages
show a benchmark over commits. Campaigns on different machines are different series:
their points are never joined. Between two consecutive campaigns of one series the
`compare` rule decides whether there is a step (the two-sample ratio's whole 95%
interval beyond --min-effect, 10% as asv): a step is named with the contender, the
ratio and its interval, and the framework versions that changed. Writes
`history.json` and one plot per machine and preset (`plots/history-*.png`).
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import pandas as pd

from benchmarks.report.compare import DEFAULT_FOLDERS, MATCH, _rates, _records, between
from benchmarks.report.stats import COMPARE_MIN_EFFECT, rate_ci, unpaired_ratio
from common.errors import RnnbenchError
from common.files import write_text


def load(folders: list[Path]) -> pd.DataFrame:
    """The main-table runs of every folder that exists; a one-line error when none holds any."""
    pools = [_records(f) for f in folders if f.exists()]
    pools = [p for p in pools if not p.empty]
    if not pools:
        raise RnnbenchError(f"no run records in {', '.join(map(str, folders))}: run `nox -s bench` first, "
                            "or pass --results DIR")
    return pd.concat(pools, ignore_index=True).drop_duplicates("run_id")


def points(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per fingerprint x campaign x preset x contender x mode: tok/s and its interval,
    the campaign's start and the framework version."""
    out = []
    for (fingerprint, campaign), mine in runs.groupby(["fingerprint", "campaign"], sort=False):
        rates = _rates(mine)
        version = mine.groupby(MATCH)["framework_version"].first()
        for key, rows in rates.groupby(MATCH, sort=True):
            tok, lo, hi = rate_ci(rows["tok_s"].to_numpy())
            out.append({"fingerprint": fingerprint, "campaign": campaign, "started": _iso(mine["timestamp"].min()),
                        **dict(zip(MATCH, key, strict=True)), "tok_s": tok, "tok_s_lo": lo, "tok_s_hi": hi,
                        "rounds": len(rows), "version": str(version.get(key, "?")),
                        "round_rates": rows["tok_s"].to_numpy()})
    frame = pd.DataFrame(out)
    return frame.sort_values(["fingerprint", "started"]).reset_index(drop=True) if len(frame) else frame


def steps(series: pd.DataFrame, min_effect: float) -> list[dict]:
    """The steps between consecutive campaigns of one series (one machine, preset, contender)."""
    found, rows = [], list(series.itertuples(index=False))
    for before, after in zip(rows, rows[1:], strict=False):
        ratio, lo, hi = unpaired_ratio(after.round_rates, before.round_rates)
        verdict = between(lo, hi, min_effect)
        if verdict != "same":
            changed = (f"{before.version} -> {after.version}" if before.version != after.version
                       else "no version change")
            found.append({"from": before.campaign, "to": after.campaign, "ratio": ratio, "ratio_ci": [lo, hi],
                          "verdict": verdict, "versions": changed})
    return found


def history(runs: pd.DataFrame, min_effect: float = COMPARE_MIN_EFFECT) -> list[dict]:
    """Every series with its points and steps (the content of history.json)."""
    table = points(runs)
    out = []
    for key, series in table.groupby(["fingerprint", *MATCH], sort=True):
        out.append({**dict(zip(["fingerprint", "preset", "contender", "backend", "mode"], key, strict=True)),
                    "points": [{"campaign": p.campaign, "started": p.started, "tok_s": p.tok_s,
                                "tok_s_ci": [p.tok_s_lo, p.tok_s_hi], "rounds": p.rounds, "version": p.version}
                               for p in series.itertuples(index=False)],
                    "steps": steps(series, min_effect)})
    return out


def plot(series: list[dict], out: Path) -> list[Path]:
    """One plot per machine and preset: tok/s over campaigns with intervals, steps marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    groups: dict[tuple[str, str], list[dict]] = {}
    for s in series:
        groups.setdefault((s["fingerprint"], s["preset"]), []).append(s)
    for (fingerprint, preset), lines in groups.items():
        campaigns = sorted({p["campaign"] for s in lines for p in s["points"]})
        fig, ax = plt.subplots(figsize=(8, 4))
        for s in lines:
            x = [campaigns.index(p["campaign"]) for p in s["points"]]
            y = [p["tok_s"] for p in s["points"]]
            err = [[p["tok_s"] - p["tok_s_ci"][0] for p in s["points"]],
                   [p["tok_s_ci"][1] - p["tok_s"] for p in s["points"]]]
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=f"{s['contender']} ({s['mode']})")
            for step in s["steps"]:
                at = campaigns.index(step["to"])
                ax.annotate(f"{step['ratio']:.2f}×", (at, y[x.index(at)]), textcoords="offset points",
                            xytext=(0, 8), ha="center", color="red")
        ax.set_xticks(range(len(campaigns)), campaigns, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("tokens/sec (95% CI)")
        ax.set_title(f"{preset} on machine {fingerprint}")
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out / "plots" / f"history-{_slug(fingerprint)}-{_slug(preset)}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def _iso(stamp) -> str:
    return stamp.isoformat() if hasattr(stamp, "isoformat") else str(stamp)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text))[:60]


def _clean(x):
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    x = x.item() if hasattr(x, "item") else x
    return None if isinstance(x, float) and not math.isfinite(x) else x


def run_history(args: argparse.Namespace) -> int:
    if not 0 < args.min_effect < 1:
        raise RnnbenchError(f"--min-effect {args.min_effect:g} must be between 0 and 1, e.g. 0.10")
    series = history(load(args.results or list(DEFAULT_FOLDERS)), args.min_effect)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "history.json", json.dumps(_clean(series), indent=1, allow_nan=False) + "\n")
    plots = plot(series, args.out)
    for s in series:
        for step in s["steps"]:
            lo, hi = step["ratio_ci"]
            print(f"step: {s['preset']} {s['contender']} ({s['mode']}) on {s['fingerprint']}: {step['verdict']} "
                  f"{step['ratio']:.2f}x [{lo:.2f}, {hi:.2f}] from {step['from']} to {step['to']} ({step['versions']})")
    print(f"wrote {args.out / 'history.json'} ({len(series)} series) and {len(plots)} plot(s) in {args.out / 'plots'}")
    return 0
