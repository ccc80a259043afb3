"""Raw report tables -> display tables of strings (for REPORT.md, REPORT.html and the
terminal): every number's format and every heading, written once."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from benchmarks.report.data import framework_of, threads_label
from benchmarks.report.tables import AXIS_LABEL, campaign_ceiling, scaling_label

DASH = "—"


def _bad(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def where(device: str) -> str:
    """A device for a heading: `cpu` (the CPU's name is in the machine), else `gpu:N (name)`."""
    return "cpu" if str(device).startswith("cpu") else str(device)


def both(table: pd.DataFrame, a: str, b: str, how) -> list[str]:
    """how(row[a], row[b]) for every row."""
    return [how(x, y) for x, y in zip(table[a], table[b], strict=True)]


def text(x: Any) -> str:
    return DASH if _bad(x) else str(x)


def ppl(x: Any) -> str:
    if _bad(x):
        return DASH
    if math.isinf(x):
        return "inf"
    # a paper's word-level figures (120.7, 114.5) are given to one decimal: so are ours
    return f"{x:.3f}" if x < 100 else f"{x:,.1f}" if x < 10_000 else f"{x:,.0f}"


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


OVER_CEILING = "over 100%: measurement error"


def share(x: Any) -> str:
    """A fraction of the ceiling; above 1 it cannot be utilisation, so it is flagged."""
    if _bad(x):
        return DASH
    return OVER_CEILING if x > 1.0 + 1e-9 else percent(x)


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


def track(name: Any) -> str:
    """A row's track (out-of-box, tuned, book); records from before tracks have none."""
    return DASH if _bad(name) or not name else str(name)


def mode(name: str, default: bool) -> str:
    return f"{name} (default)" if default else name


def throughput(table: pd.DataFrame) -> pd.DataFrame:
    """One group's rows of table 1, for display (group columns go in the heading)."""
    return pd.DataFrame({
        "backend": table["backend"], "mode": both(table, "mode", "mode_default", mode),
        "track": table["track"].map(track),
        "status": table["status"], "runs": table["runs"], "shown": table["shown"],
        "epochs": both(table, "epochs_done", "epochs_planned", epochs),
        "tok/s (median)": table["tok_s_median"].map(rate),
        "tok/s min–max": both(table, "tok_s_min", "tok_s_max", spread),
        "tok/s IQR": table["tok_s_iqr"].map(rate), "GFLOP/s": table["achieved_flops"].map(gflops),
        "own peak GFLOP/s": table["peak_own_flops"].map(gflops), "of ceiling": table["of_ceiling"].map(share),
        "warm-up s": table["warmup_s"].map(secs),
        "train ppl": table["final_train_ppl"].map(ppl), "val ppl": table["final_val_ppl"].map(ppl),
        "peak MB": table["peak_rss_mb"].map(rate), "vs fastest": table["vs_fastest"].map(ratio),
    })


def _printed(source: str, value: Any) -> str:
    """A measured perplexity formatted; a source's printed one as printed."""
    return ppl(value) if source == "here" or _bad(value) else str(value)


def reproduction(table: pd.DataFrame) -> pd.DataFrame:
    """One preset's rows of table 2."""
    return pd.DataFrame({
        "source": table["source"], "framework / device": table["who"],
        "machine": table["machine"].map(text), "device here": table["device"].map(text),
        "epochs": both(table, "epochs_done", "epochs_planned", epochs),
        "ppl": both(table, "source", "ppl", lambda s, v: ppl(v) if s == "here" or _bad(v) else str(v)),
        **({"seeds": table["seeds"].map(lambda n: DASH if _bad(n) else str(int(n)))}
           if table["seeds"].fillna(1).gt(1).any() else {}),
        **({"ppl min–max": both(table, "ppl_min", "ppl_max", lambda lo, hi: DASH if _bad(lo) or _bad(hi)
                                else f"{lo:.3f}–{hi:.3f}")}
           if table["seeds"].fillna(1).gt(1).any() and not _judged_on_validation(table) else {}),
        **({"valid ppl": _with_range(table, "val_ppl")} if table["test_ppl"].notna().any() else {}),
        **({"valid ppl (batch-1 stream)": _with_range(table, "val_stream_ppl")}
           if "val_stream_ppl" in table and table["val_stream_ppl"].notna().any() else {}),
        **({"test ppl": _with_range(table, "test_ppl")} if table["test_ppl"].notna().any() else {}),
        "tok/s": table["tok_s"].map(rate),
        "reproduces": table["reproduces"].map(text),
        **({"test reproduces": table["test_reproduces"].map(text)}
           if "test_reproduces" in table and table["test_reproduces"].notna().any() else {}),
    })


def _judged_on_validation(table: pd.DataFrame) -> bool:
    """True where the judged perplexity is validation with its own column (its range shown there)."""
    return table["metric"].eq("val_ppl").all() and table["test_ppl"].notna().any()


def _with_range(table: pd.DataFrame, column: str) -> list[str]:
    """A perplexity column: the source's as printed; ours as the median, with the seeds'
    range beside it where the row has several seeds."""
    low, high = (table[f"{column}_{end}"] if f"{column}_{end}" in table else pd.Series(index=table.index, dtype=float)
                 for end in ("min", "max"))
    shown = []
    for source, value, lo, hi in zip(table["source"], table[column], low, high, strict=True):
        cell = _printed(source, value)
        shown.append(cell if _bad(lo) or _bad(hi) or _bad(value) else f"{cell} ({ppl(lo)}–{ppl(hi)})")
    return shown


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


def scaling_title(rows: pd.DataFrame) -> str:
    first = rows.iloc[0]
    device = where(first["device"])
    return (f"{first['sgroup']} · {first['preset']} ({first['cell']}) · {device} on {first['machine']} · "
            f"{threads_label(first['threads'])}")


def scaling(points: pd.DataFrame, axis: str) -> pd.DataFrame:
    """One curve as a table: a row per value, per backend `tok/s (of ceiling)` and peak MB."""
    modes = points.groupby("backend")["mode"].nunique().to_dict()
    labels = [scaling_label(b, m, modes) for b, m in zip(points["backend"], points["mode"], strict=True)]
    points = points.assign(_label=labels)
    out = pd.DataFrame({AXIS_LABEL[axis]: sorted(points["value"].unique())})
    for label, line in points.groupby("_label", sort=True):
        by_value = line.drop_duplicates("value", keep="last").set_index("value")
        cell = [_tok_cell(by_value.loc[v]) if v in by_value.index else DASH for v in out[AXIS_LABEL[axis]]]
        out[f"{label} tok/s (of ceiling)"] = cell
        out[f"{label} peak MB"] = [rate(by_value.loc[v, "peak_rss_mb"]) if v in by_value.index else DASH
                                   for v in out[AXIS_LABEL[axis]]]
    out[AXIS_LABEL[axis]] = out[AXIS_LABEL[axis]].map(lambda v: f"{v:g}")
    return out


def _tok_cell(row: pd.Series) -> str:
    if row["status"] != "ok":
        return f"{rate(row['tok_s_median'])} ({row['status']})"
    part = share(row["of_ceiling"])
    return rate(row["tok_s_median"]) + ("" if part == DASH else f" ({part})")


def micro(table: pd.DataFrame) -> pd.DataFrame:
    """One machine's rows of the micro-benchmark table, for display."""
    return pd.DataFrame({
        "step": table["kind"], "cell": table["cell"], "backend": table["backend"],
        "mode": both(table, "mode", "mode_default", mode),
        "median ms": table["median_s"].map(millis), "min ms": table["min_s"].map(millis),
        "tokens/call": table["tokens_per_call"].astype(str), "tok/s": table["tok_s"].map(rate),
        "GFLOP/s": table["flops_s"].map(gflops), "of ceiling": table["of_ceiling"].map(share),
        "vs fastest": table["vs_fastest"].map(ratio),
        "rounds": table["rounds"].astype(str),
    })


def memory(peak: Any, vs_leanest: Any) -> str:
    """`480 (1.66x)`: training's peak resident memory and its ratio to the leanest row."""
    if _bad(peak):
        return DASH
    return f"{peak:,.0f}" + ("" if _bad(vs_leanest) else f" ({vs_leanest:.2f}×)")


def _device_memory(rows: pd.DataFrame) -> dict[str, pd.Series]:
    """`device peak MiB`: a GPU's own allocator peak, only where some row ran on one."""
    if "peak_device_mem_mb" not in rows or rows["peak_device_mem_mb"].isna().all():
        return {}
    return {"device peak MiB": rows["peak_device_mem_mb"].map(lambda v: DASH if _bad(v) else f"{v:,.0f}")}


def headline(rows: pd.DataFrame) -> pd.DataFrame:
    """The headline table of one preset, as strings."""
    return pd.DataFrame({
        "backend (mode)": [f"{c} (`{m}`)" for c, m in zip(rows["contender"], rows["mode"], strict=True)],
        "track": rows["track"].map(track),
        "tok/s": rows["tok_s"].map(rate),
        "95% CI": both(rows, "tok_s_lo", "tok_s_hi", interval_rate),
        "vs fastest [95% CI]": [ratio_ci(r, lo, hi) for r, lo, hi in
                                zip(rows["ratio"], rows["ratio_lo"], rows["ratio_hi"], strict=True)],
        "verdict": rows["verdict"], "rounds": rows["rounds_timed"].map(str),
        "disturbed": [str(n) if m else DASH for n, m in zip(rows["disturbed_rounds"], rows["load_measured"],
                                                               strict=True)],
        **_all_rounds(rows),
        "utilisation": rows["utilisation"].map(share),
        "peak MiB (vs leanest)": [memory(m, r) for m, r in zip(rows["peak_mem_mb"], rows["mem_vs_leanest"],
                                                                strict=True)],
        **_device_memory(rows),
        "warm-up s": rows["warmup_s"].map(secs),
        "final ppl": rows["final_ppl"].map(ppl),
        "target": [target(t, ok) for t, ok in zip(rows["target"], rows["reached_target"], strict=True)],
        **_over_seeds(rows),
    })


def _all_rounds(rows: pd.DataFrame) -> dict[str, list[str]]:
    """The verdict as measured (every slice, uncorrected), where a row of the group had
    disturbed slices."""
    if not rows["disturbed_rounds"].gt(0).any():
        return {}
    return {"with disturbed rounds, uncorrected": [
        f"{ratio_ci(r, lo, hi)} ({v})" for r, lo, hi, v in
        zip(rows["ratio_all"], rows["ratio_all_lo"], rows["ratio_all_hi"], rows["verdict_all"], strict=True)]}


FRAMEWORK = {"pytorch": "PyTorch", "mxnet": "MXNet", "jax": "JAX"}


def contender_name(row: pd.Series) -> str:
    """PyTorch `eager` (with its framework version when versions are contenders, and its
    checkout if another one): `JAX 0.10.1 `wavefront``."""
    label = row["contender"]
    checkout = label.split("@", 1)[1] if "@" in label else ""
    version = framework_of(label)[1]
    return (f"{FRAMEWORK.get(row['backend'], row['backend'])}" + (f" {version}" if version else "")
            + f" `{row['mode']}`" + (f"@{checkout}" if checkout else ""))


def answer(rows: pd.DataFrame) -> str:
    """One preset's answer in one sentence: who is fastest (or ties for it), every other
    competing row's ratio with its interval, then why the others are not ranked."""
    preset = rows["preset_label"].iloc[0]
    ranked = rows[rows["verdict"].isin(["fastest", "tie", "slower"])]
    if ranked.empty:
        return f"On this machine, no row of {preset} could be ranked ({', '.join(sorted(set(rows['verdict'])))})."
    top = ranked[ranked["verdict"].isin(["fastest", "tie"])]
    names = [contender_name(r) for _, r in top.iterrows()]
    if len(names) == 1:
        lead = f"{names[0]} is fastest on {preset}"
    else:
        lead = f"{', '.join(names[:-1])} and {names[-1]} tie for fastest on {preset}"
    slower = [f"{contender_name(r)} {ratio_ci(r['ratio'], r['ratio_lo'], r['ratio_hi']).replace(' [', '× [')}"
              for _, r in ranked[ranked["verdict"].eq("slower")].iterrows()]
    others = [f"{contender_name(r)}: {r['verdict']}" for _, r in rows.iterrows()
              if r["verdict"] not in ("fastest", "tie", "slower", "twin (A/A)")]
    text = f"On this machine, {lead}" + (f"; {'; '.join(slower)}" if slower else "") + "."
    return text + (f" Not ranked: {'; '.join(others)}." if others else "")


def calibration(rows: pd.DataFrame) -> str:
    """The twin's sentence, and the disturbed rounds' ('' when neither applies)."""
    parts = []
    for _, r in rows[rows["twin"]].iterrows():
        ci = ratio_ci(r["twin_ratio"], r["twin_ratio_lo"], r["twin_ratio_hi"]).replace(" [", "× [")
        trust = ("the intervals hold" if r["calibration"] == "tie" else
                 "**the campaign's intervals are not to be trusted**: two processes of the same code differ "
                 "beyond them (a busy or unstable machine)")
        parts.append(f"A/A twin ({r['twin_of']} run again as processes of its own): {ci}, {r['calibration']}: {trust}.")
    noisy = len(set().union(*map(set, rows["disturbed_list"]))) if "disturbed_list" in rows else 0
    if noisy:
        fitted = [f"{contender_name(r)} {r['load_slope']:.2f}" for _, r in rows.iterrows()
                  if r.get("load_slope", 0) > 0]
        how = (f"the ratios correct each slice for the CPU time others took, at the cost fitted per contender "
               f"(wall s per foreign CPU-s: {', '.join(fitted)}), and leave out the disturbed slices of the rest"
               if fitted else "the ratios leave out each disturbed slice")
        parts.append(f"{noisy} of {int(rows['rounds_timed'].max())} rounds disturbed (other programs took CPU): "
                     f"{how}; as measured, see the column 'with disturbed rounds, uncorrected'.")
    return " ".join(parts)


def version_changes(rows: pd.DataFrame) -> str:
    """Older framework versions against the newest, paired per round, one line ('' when
    versions were not contenders): `jax 0.10.1 over jax 0.10.2: wavefront 0.96× [0.91, 0.99] slower`."""
    if "version_ratio" not in rows:
        return ""
    mine = rows[rows["version_ratio"].notna()]
    parts = [f"{r['contender'].split('/', 1)[0]} over {r['version_base']}: {r['mode']} {r['version_ratio']:.2f}× "
             f"[{r['version_ratio_lo']:.2f}, {r['version_ratio_hi']:.2f}] {r['version_verdict']}"
             for _, r in mine.iterrows()]
    return ("versions, paired per round: " + "; ".join(parts)) if parts else ""


def speedups(found: dict[str, float]) -> str:
    """`out-of-box → tuned` per backend, one line ('' when no backend ran both)."""
    if not found:
        return ""
    return "out-of-box → tuned (tok/s ratio): " + ", ".join(f"{b} {x:.2f}×" for b, x in found.items())


def _over_seeds(rows: pd.DataFrame) -> dict[str, list[str]]:
    """Headline columns for rows trained over several seeds (none otherwise)."""
    if not rows["seeds"].gt(1).any():
        return {}
    return {"seeds reaching target": [DASH if _bad(k) else f"{int(k)}/{int(n)}"
                                      for k, n in zip(rows["reached"], rows["reached_of"], strict=True)],
            "ppl over seeds (median, min–max)": [
                DASH if _bad(m) else f"{m:.3f} ({lo:.3f}–{hi:.3f})"
                for m, lo, hi in zip(rows["final_median"], rows["final_min"], rows["final_max"], strict=True)],
            "time to target (olympic)": rows["time_to_target"].map(
                lambda t: DASH if _bad(t) else "not reached" if math.isinf(t) else f"{t:,.1f} s")}


def campaign_heading(runs: pd.DataFrame, campaign: str) -> str:
    mine = runs[runs["campaign"] == campaign]
    first = mine.sort_values("timestamp").iloc[0]
    commit = first["git_commit"].removesuffix("-dirty")[:10] or "?"
    dirty = " **(dirty tree: uncommitted changes)**" if mine["dirty"].any() else ""
    return (f"Campaign `{campaign}` on {first['machine']}, {first['device']}, "
            f"{int(first['threads'])} thread(s), commit `{commit}`{dirty}; "
            f"{mine['timestamp'].min():%Y-%m-%d %H:%M} UTC; "
            f"ceiling (best float32 matmul any framework measured in the campaign, any library) "
            f"{gflops(campaign_ceiling(mine))} GFLOP/s.")
