"""The report's tables, as plain DataFrames of raw values (the CSVs).

`report_format` turns them into display strings; nothing here formats numbers.
"""

from __future__ import annotations

import math

import pandas as pd

from benchmarks.report.data import pick_rows, preset_info
from common.specs import preset_names

THROUGHPUT = ["group", "preset", "machine", "device", "threads", "overrides", "backend", "mode", "mode_default",
              "runs", "shown", "status", "epochs_done", "epochs_planned", "tok_s_median", "tok_s_min", "tok_s_max",
              "tok_s_iqr", "train_flops_per_token", "achieved_flops", "peak_flops", "ceiling_flops", "of_ceiling",
              "warmup_s", "final_train_ppl", "final_val_ppl", "peak_rss_mb", "vs_fastest", "run_id", "timestamp"]
REPRODUCTION = ["preset", "source", "metric", "target_ppl", "who", "machine", "device", "threads", "runs",
                "status", "epochs_done", "epochs_planned", "ppl", "final_train_ppl", "tok_s", "reproduces",
                "run_id"]
TIME_TO_QUALITY = ["group", "preset", "machine", "device", "backend", "mode", "status", "metric", "target_ppl",
                   "time_to_target_s", "reached_epoch", "epochs_done", "warmup_s", "result", "run_id"]
ENVIRONMENTS = ["group", "preset", "machine", "device", "threads", "os", "python", "numpy", "backend", "mode",
                "framework_version", "framework_details", "git_commit"]


def _fastest_ratio(rows: pd.DataFrame) -> pd.Series:
    """tok/s over the fastest ok row of the same group (non-ok rows never set the pace)."""
    ok = rows["tok_s_median"].where(rows["status"].eq("ok"))
    fastest = ok.groupby(rows["group"]).transform("max")
    return rows["tok_s_median"] / fastest


def ceiling(runs: pd.DataFrame, rows: pd.DataFrame, keys: list[str]) -> pd.Series:
    """Per row of `rows`, the machine's ceiling: the best matmul peak (FLOP/s) any
    framework measured in any of `runs` sharing the row's `keys` (a peak is valid
    whatever the run's status); NaN where none was measured."""
    best = runs.groupby(keys, dropna=False)["peak_flops"].max().rename("_ceiling").reset_index()
    return rows[keys].merge(best, on=keys, how="left")["_ceiling"].set_axis(rows.index)


def throughput_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Table 1: one row per (group, backend, mode), fastest ok first within a group.

    Utilisation: achieved FLOP/s = model FLOPs per training token (common.flops) x median
    tokens/sec; `of_ceiling` = that over the best matmul peak of any framework in the group."""
    if runs.empty:
        return pd.DataFrame(columns=THROUGHPUT)
    rows = pick_rows(runs)
    rows["preset"] = rows["preset_label"]
    rows["vs_fastest"] = _fastest_ratio(rows)
    rows["ceiling_flops"] = ceiling(runs, rows, ["group"])
    rows["of_ceiling"] = rows["achieved_flops"] / rows["ceiling_flops"]
    rows["_ok"] = rows["status"].ne("ok")
    rows = rows.sort_values(["group", "_ok", "tok_s_median"], ascending=[True, True, False], na_position="last")
    rows["timestamp"] = rows["timestamp"].map(lambda t: t.isoformat())
    return rows[THROUGHPUT].reset_index(drop=True)


def book_presets(runs: pd.DataFrame) -> list[str]:
    """Presets with something to reproduce: a target or the book's reported numbers."""
    names = set(preset_names()) | set(runs["preset"].dropna() if not runs.empty else [])
    return [n for n in sorted(names) if preset_info(n)[1].get("target_ppl") or preset_info(n)[1].get("results")]


def metric_of(meta: dict, run: pd.Series | None = None) -> str:
    """Which perplexity a preset is judged on: its [book] metric, else val when there is one."""
    if meta.get("metric"):
        return meta["metric"]
    if run is not None and not math.isnan(run["final_val_ppl"]):
        return "val_ppl"
    return "train_ppl"


def verdict(run: pd.Series, target: float | None, metric: str) -> str:
    """'yes'/'no' for a full, unmodified run of the preset; otherwise why it cannot say."""
    planned = run["base_spec"]["train"]["epochs"]
    if run["overrides_but_epochs"] or run["epochs_planned"] > planned:
        return f"modified spec: {run['overrides']}"
    if run["epochs_done"] < planned:
        suffix = "" if run["status"] == "ok" else f", {run['status']}"
        return f"partial run: {run['epochs_done']} of {planned} epochs{suffix}"
    if run["status"] != "ok":
        return f"no ({run['status']})"
    value = run[f"final_{metric}"]
    if target is None or math.isnan(value):
        return "no target" if target is None else f"no ({metric} missing)"
    return "yes" if value <= target else "no"


def _book_rows(name: str, meta: dict, metric: str) -> list[dict]:
    return [{"preset": name, "source": "book (as reported, other hardware)", "metric": metric,
             "target_ppl": meta.get("target_ppl"), "who": f"{r.get('framework', '?')} on {r.get('device', '?')}",
             "ppl": r.get("ppl"), "tok_s": r.get("tok_s")} for r in meta.get("results", [])]


def _measured_rows(name: str, meta: dict, runs: pd.DataFrame) -> list[dict]:
    mine = runs[runs["preset"].eq(name)] if not runs.empty else runs
    if mine.empty:
        return [{"preset": name, "source": "here", "metric": metric_of(meta), "target_ppl": meta.get("target_ppl"),
                 "who": "no runs recorded", "reproduces": "not run"}]
    mine = mine.assign(_full=mine["overrides"].eq("") & (mine["epochs_done"] >= mine["epochs_planned"]))
    keys = ["campaign", "machine", "device", "threads", "contender", "backend", "mode"]
    out = []
    for _, run in pick_rows(mine, keys, prefer=("_full",)).sort_values(keys).iterrows():
        metric = metric_of(meta, run)
        out.append({"preset": name, "source": "here", "metric": metric, "target_ppl": meta.get("target_ppl"),
                    "who": f"{run['backend']} {run['mode']}", "machine": run["machine"], "device": run["device"],
                    "threads": run["threads"], "runs": run["runs"], "status": run["status"],
                    "epochs_done": run["epochs_done"], "epochs_planned": run["base_spec"]["train"]["epochs"],
                    "ppl": run[f"final_{metric}"], "final_train_ppl": run["final_train_ppl"],
                    "tok_s": run["tok_s_median"], "reproduces": verdict(run, meta.get("target_ppl"), metric),
                    "run_id": run["run_id"]})
    return out


def reproduction_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Table 2: per book preset, the book's numbers beside each backend's here."""
    rows = []
    for name in book_presets(runs):
        meta = preset_info(name)[1]
        rows += _book_rows(name, meta, metric_of(meta)) + _measured_rows(name, meta, runs)
    return pd.DataFrame(rows, columns=REPRODUCTION)


def reached_epoch(run: pd.Series, metric: str, target: float) -> tuple[float, float]:
    """(first epoch whose metric <= target, training seconds up to its end); NaN if never."""
    seconds = 0.0
    for epoch in run["epoch_list"]:
        seconds += float(epoch.get("seconds") or 0.0)
        value = epoch.get(metric)
        if value is not None and value <= target:
            return float(epoch.get("epoch", math.nan)), seconds
    return math.nan, math.nan


def _quality_row(run: pd.Series) -> dict:
    meta = run["book"]
    target = run["target_ppl"] if not math.isnan(run["target_ppl"]) else meta.get("target_ppl")
    metric = metric_of(meta, run)
    epoch, seconds = reached_epoch(run, metric, target)
    if not math.isnan(run["time_to_target_s"]):
        seconds = run["time_to_target_s"]
    if math.isnan(seconds):
        status = "" if run["status"] == "ok" else f" ({run['status']})"
        result = f"not reached in {run['epochs_done']} epochs{status}"
    else:
        result = f"{seconds:,.1f} s (epoch {epoch:.0f})" if not math.isnan(epoch) else f"{seconds:,.1f} s"
    return {**{k: run[k] for k in ("group", "machine", "device", "backend", "mode", "status", "epochs_done",
                                   "warmup_s", "run_id")},
            "preset": run["preset_label"], "metric": metric, "target_ppl": target, "time_to_target_s": seconds,
            "reached_epoch": epoch, "result": result}


def time_to_quality_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Table 3: training seconds to the target perplexity, per row of table 1 with a target."""
    if runs.empty:
        return pd.DataFrame(columns=TIME_TO_QUALITY)
    rows = pick_rows(runs)
    has_target = rows["target_ppl"].notna() | rows["book"].map(lambda meta: bool(meta.get("target_ppl")))
    out = [_quality_row(run) for _, run in rows[has_target].iterrows()]
    table = pd.DataFrame(out, columns=TIME_TO_QUALITY)
    return table.sort_values(["group", "time_to_target_s"], na_position="last").reset_index(drop=True)


def _flat(details: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in sorted(details.items()):
        if isinstance(value, dict):
            out += _flat(value, f"{prefix}{key}.")
        elif value not in (None, "", [], ()):
            out.append(f"{prefix}{key}={value}")
    return out


def _framework_details(env: dict) -> str:
    """Everything a backend said about its framework beyond name, version and threads."""
    framework = {k: v for k, v in (env.get("framework") or {}).items() if k not in ("framework", "version", "threads")}
    return "; ".join(_flat(framework))


def environments_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Table 4: what each group ran on, one row per backend/mode shown in table 1."""
    if runs.empty:
        return pd.DataFrame(columns=ENVIRONMENTS)
    rows = pick_rows(runs).sort_values(["group", "backend", "mode"])
    env = rows["env"]
    table = rows.assign(preset=rows["preset_label"], os=env.map(lambda e: e.get("os", "?")),
                        python=env.map(lambda e: e.get("python", "?")), numpy=env.map(lambda e: e.get("numpy", "?")),
                        framework_details=env.map(_framework_details))
    return table[ENVIRONMENTS].reset_index(drop=True)


def samples_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Greedy generations of the runs shown in table 1: one row each, one column per prefix."""
    if runs.empty:
        return pd.DataFrame(columns=["preset", "group", "device", "backend", "mode"])
    rows = pick_rows(runs).sort_values(["preset_label", "group", "backend", "mode"])
    prefixes = sorted({p for s in rows["samples"] for p in s}, key=lambda p: (-len(p), p))
    table = pd.DataFrame({"preset": rows["preset_label"], "group": rows["group"], "device": rows["device"],
                          "backend": rows["backend"], "mode": rows["mode"], "status": rows["status"]})
    for prefix in prefixes:
        table[prefix] = [s.get(prefix, "") for s in rows["samples"]]
    return table.reset_index(drop=True)

