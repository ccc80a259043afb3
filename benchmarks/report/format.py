"""Raw report tables -> display tables of strings (for REPORT.md and REPORT.html)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

DASH = "—"


def _bad(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def both(table: pd.DataFrame, a: str, b: str, how) -> list[str]:
    """how(row[a], row[b]) for every row."""
    return [how(x, y) for x, y in zip(table[a], table[b], strict=True)]


def text(x: Any) -> str:
    return DASH if _bad(x) else str(x)


def ppl(x: Any) -> str:
    if _bad(x):
        return DASH
    return "inf" if math.isinf(x) else f"{x:.3f}" if x < 100 else f"{x:,.0f}"


def rate(x: Any) -> str:
    return DASH if _bad(x) else f"{x:,.0f}"


def secs(x: Any) -> str:
    return DASH if _bad(x) else f"{x:,.1f}"


def ratio(x: Any) -> str:
    if _bad(x):
        return DASH
    return "1.00 (fastest)" if abs(x - 1.0) < 1e-12 else f"{x:.2f}"


def interval_rate(lo: Any, hi: Any) -> str:
    return DASH if _bad(lo) or _bad(hi) else f"{lo:,.0f}–{hi:,.0f}"


def ratio_ci(x: Any, lo: Any, hi: Any) -> str:
    """A ratio with its interval, e.g. `0.91 [0.88, 0.94]`."""
    if _bad(x):
        return DASH
    return f"{x:.2f}" + ("" if _bad(lo) or _bad(hi) else f" [{lo:.2f}, {hi:.2f}]")


def target(value: Any, reached: Any) -> str:
    if _bad(value):
        return DASH
    return f"≤ {value:g}: " + ("reached" if reached is True else "not reached" if reached is False else DASH)


def gflops(x: Any) -> str:
    """FLOP/s as GFLOP/s."""
    return DASH if _bad(x) else f"{x / 1e9:,.1f}"


def percent(x: Any) -> str:
    return DASH if _bad(x) else f"{100 * x:.0f}%"


def millis(x: Any) -> str:
    """Seconds as milliseconds, with three significant digits below 10 ms."""
    if _bad(x):
        return DASH
    ms = 1e3 * x
    return f"{ms:.3g}" if ms < 10 else f"{ms:,.1f}"


def spread(lo: Any, hi: Any) -> str:
    return DASH if _bad(lo) or _bad(hi) else f"{lo:,.0f}–{hi:,.0f}"


def epochs(done: Any, planned: Any) -> str:
    return DASH if _bad(done) else f"{int(done)}/{int(planned)}" if not _bad(planned) and planned else str(int(done))


def mode(name: str, default: bool) -> str:
    return f"{name} (default)" if default else name


def throughput(table: pd.DataFrame) -> pd.DataFrame:
    """One group's rows of table 1, for display (group columns go in the heading)."""
    return pd.DataFrame({
        "backend": table["backend"], "mode": both(table, "mode", "mode_default", mode),
        "status": table["status"], "runs": table["runs"], "shown": table["shown"],
        "epochs": both(table, "epochs_done", "epochs_planned", epochs),
        "tok/s (median)": table["tok_s_median"].map(rate),
        "tok/s min–max": both(table, "tok_s_min", "tok_s_max", spread),
        "tok/s IQR": table["tok_s_iqr"].map(rate), "GFLOP/s": table["achieved_flops"].map(gflops),
        "own peak GFLOP/s": table["peak_flops"].map(gflops), "of ceiling": table["of_ceiling"].map(percent),
        "warm-up s": table["warmup_s"].map(secs),
        "train ppl": table["final_train_ppl"].map(ppl), "val ppl": table["final_val_ppl"].map(ppl),
        "peak MB": table["peak_rss_mb"].map(rate), "vs fastest": table["vs_fastest"].map(ratio),
    })


def reproduction(table: pd.DataFrame) -> pd.DataFrame:
    """One preset's rows of table 2."""
    return pd.DataFrame({
        "source": table["source"], "framework / device": table["who"],
        "machine": table["machine"].map(text), "device here": table["device"].map(text),
        "epochs": both(table, "epochs_done", "epochs_planned", epochs),
        "ppl": both(table, "source", "ppl", lambda s, v: ppl(v) if s == "here" or _bad(v) else str(v)),
        "tok/s": table["tok_s"].map(rate),
        "reproduces": table["reproduces"].map(text),
    })


def time_to_quality(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "group": table["group"], "preset": table["preset"], "device": table["device"], "backend": table["backend"],
        "mode": table["mode"], "status": table["status"],
        "target": both(table, "metric", "target_ppl", lambda m, t: f"{m} ≤ {t:g}"),
        "time to target (training s)": table["result"], "warm-up s (included)": table["warmup_s"].map(secs),
    })


def environments(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "group": table["group"], "preset": table["preset"], "machine": table["machine"], "device": table["device"],
        "threads": table["threads"].astype(str), "backend": table["backend"], "mode": table["mode"],
        "framework": table["framework_version"].astype(str), "details": table["framework_details"],
        "python": table["python"], "numpy": table["numpy"], "os": table["os"],
        "git commit": table["git_commit"].map(lambda c: (c[:12] + ("-dirty" if c.endswith("-dirty") else "")) or DASH),
    })


def samples(table: pd.DataFrame) -> pd.DataFrame:
    """One preset's sample generations; each generation shown as code."""
    fixed = ["group", "device", "backend", "mode", "status"]
    shown = table[fixed].copy()
    for prefix in [c for c in table.columns if c not in fixed + ["preset"]]:
        shown[f"“{prefix}”"] = table[prefix].map(code)
    return shown


def code(text: str) -> str:
    """Inline code (the renderers keep it literal); backticks inside become quotes."""
    return "`" + text.replace("`", "'") + "`" if text else DASH
