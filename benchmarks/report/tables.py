"""The report's tables, as plain DataFrames of raw values (the CSVs).

`report_format` turns them into display strings; nothing here formats numbers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from benchmarks.report.data import MICRO, ROW_KEYS, framework_of, pick_rows, preset_info
from benchmarks.report.seeds import latest_per_seed, reproduces, seed_stats
from benchmarks.report.stats import group_verdicts, half_width, round_rates
from common.files import write_text
from common.metrics import reached_target, utilisation
from common.specs import preset_names

THROUGHPUT = ["group", "preset", "machine", "device", "threads", "overrides", "backend", "mode", "mode_default",
              "track", "runs", "shown", "status", "epochs_done", "epochs_planned", "tok_s_median", "tok_s_min",
              "tok_s_max", "tok_s_iqr", "train_flops_per_token", "achieved_flops", "peak_flops", "peak_own_flops",
              "ceiling_flops", "of_ceiling",
              "warmup_s", "final_train_ppl", "final_val_ppl", "peak_rss_mb", "vs_fastest", "run_id", "timestamp"]
REPRODUCTION = ["preset", "source", "metric", "target_ppl", "who", "machine", "device", "threads", "runs",
                "status", "epochs_done", "epochs_planned", "ppl", "final_train_ppl", "val_ppl", "val_stream_ppl",
                "test_ppl", "seeds", "ppl_min", "ppl_max", "val_ppl_min", "val_ppl_max", "val_stream_ppl_min",
                "val_stream_ppl_max", "test_ppl_min", "test_ppl_max", "tok_s", "reproduces", "test_reproduces",
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


CEILING_KEYS = ["campaign", "device", "threads"]


def ceiling(runs: pd.DataFrame, rows: pd.DataFrame, keys: list[str] = CEILING_KEYS,
            column: str = "peak_best") -> pd.Series:
    """Per row of `rows`, the ceiling: the best float32 matmul (FLOP/s) any framework
    measured with any library it offers (plain `a @ b` / `nd.dot` / `jnp.dot`, oneDNN's
    packed matmul, `FullyConnected`) in any of `runs` sharing the row's `keys` (by default
    its campaign, device and threads: never pooled across campaigns; a peak is valid
    whatever the run's status); NaN where none was measured. One number for every row of
    a campaign: the fastest matmul this machine showed, which no framework's training
    step can exceed (a plain-matmul ceiling was beaten by PyTorch's packed oneDNN LSTM).
    `column="peak_own_flops"` with the backend among the keys gives each framework's own
    best matmul (shown as `own peak`)."""
    best = runs.groupby(keys, dropna=False)[column].max().rename("_ceiling").reset_index()
    return rows[keys].merge(best, on=keys, how="left")["_ceiling"].set_axis(rows.index)


def throughput_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Table 1: one row per (group, backend, mode), fastest ok first within a group.

    Utilisation: achieved FLOP/s = model FLOPs per training token (common.flops) x median
    tokens/sec; `of_ceiling` = that over the best matmul any framework measured in
    the campaign (same device and threads); `peak_own_flops` = the row's framework's own
    best matmul in the campaign, for reference."""
    if runs.empty:
        return pd.DataFrame(columns=THROUGHPUT)
    rows = pick_rows(runs)
    rows["preset"] = rows["preset_label"]
    rows["vs_fastest"] = _fastest_ratio(rows)
    rows["ceiling_flops"] = ceiling(runs, rows)
    rows["peak_own_flops"] = ceiling(runs, rows, CEILING_KEYS + ["backend"], "peak_own_flops")
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
    """The source's printed numbers (`kind`: book, paper, tutorial), validation and test
    perplexity beside the judged one where it gave them."""
    return [{"preset": name, "source": f"{r.get('kind', 'book')} (as reported{_at(r)}, other hardware)",
             "metric": metric, "target_ppl": meta.get("target_ppl"),
             "who": f"{r.get('framework', '?')} on {r.get('device', '?')}",
             "ppl": r.get("ppl"), "val_ppl": r.get("val_ppl"), "test_ppl": r.get("test_ppl"), "tok_s": r.get("tok_s")}
            for r in meta.get("results", [])]


def _at(result: dict) -> str:
    """`, epoch N` for a printed figure from the middle of a run (a curve's point)."""
    return f", epoch {result['epoch']}" if result.get("epoch") else ""


def _measured_rows(name: str, meta: dict, runs: pd.DataFrame) -> list[dict]:
    mine = runs[runs["preset"].eq(name)] if not runs.empty else runs
    if mine.empty:
        return [{"preset": name, "source": "here", "metric": metric_of(meta), "target_ppl": meta.get("target_ppl"),
                 "who": "no runs recorded", "reproduces": "not run"}]
    mine = mine.assign(_full=mine["overrides"].eq("") & (mine["epochs_done"] >= mine["epochs_planned"]))
    keys = ["campaign", "machine", "device", "threads", "contender", "backend", "mode"]
    full = mine[mine["_full"] & mine["status"].eq("ok")]
    over_seeds = seed_stats(full, keys).set_index(keys) if not full.empty else None
    out = []
    for _, run in pick_rows(mine, keys, prefer=("_full",)).sort_values(keys).iterrows():
        metric = metric_of(meta, run)
        row = {"preset": name, "source": "here", "metric": metric, "target_ppl": meta.get("target_ppl"),
               "who": f"{run['backend']} {run['mode']}" + (f" (init {run['init_from_mode']}, as its book)"
                                                            if run.get("init_from_mode") else ""),
               "machine": run["machine"], "device": run["device"],
               "threads": run["threads"], "runs": run["runs"], "status": run["status"],
               "epochs_done": run["epochs_done"], "epochs_planned": run["base_spec"]["train"]["epochs"],
               "ppl": run[f"final_{metric}"], "final_train_ppl": run["final_train_ppl"],
               "val_ppl": run["final_val_ppl"], "val_stream_ppl": run.get("final_val_stream_ppl"),
               "test_ppl": run["final_test_ppl"], "seeds": 1,
               "tok_s": run["tok_s_median"], "reproduces": verdict(run, meta.get("target_ppl"), metric),
               "run_id": run["run_id"]}
        key = tuple(run[k] for k in keys)
        if run["_full"] and over_seeds is not None and key in over_seeds.index:
            row.update(_over_seeds(over_seeds.loc[key], full, keys, key, meta))
        out.append(row)
    return out


def _over_seeds(stat: pd.Series, full: pd.DataFrame, keys: list[str], key: tuple, meta: dict) -> dict:
    """A full run's row of table 2 over its seeds (the latest run of each, as seed_stats):
    medians and ranges, `reproduces in k of S` and the test figure's own k of S."""
    runs = full[(full[keys] == pd.Series(key, index=keys)).all(axis=1)]
    runs = latest_per_seed(runs, keys)
    out = {"test_reproduces": within_test_limit(runs["final_test_ppl"], meta)}
    if stat["seeds"] < 2:
        return out
    out.update({"seeds": int(stat["seeds"]), "ppl": stat["final_median"], "ppl_min": stat["final_min"],
                "ppl_max": stat["final_max"], "reproduces": reproduces(stat)})
    for column, field in (("val_ppl", "final_val_ppl"), ("val_stream_ppl", "final_val_stream_ppl"),
                          ("test_ppl", "final_test_ppl")):
        values = runs[field].astype(float) if field in runs else pd.Series(dtype=float)
        out.update({column: values.median(), f"{column}_min": values.min(), f"{column}_max": values.max()})
    return out


def printed_test_limit(meta: dict) -> tuple[float, float] | None:
    """(the source's printed test perplexity, the most that reproduces it): the printed
    figure widened by the tolerance the preset's target gives its judged figure (ptb-small:
    124.3 for the paper's 120.7 validation, so 117.9 for its 114.5 test); None without both."""
    target = meta.get("target_ppl")
    printed = next((r for r in meta.get("results", []) if r.get("test_ppl") and r.get("ppl")), None)
    if target is None or printed is None:
        return None
    return float(printed["test_ppl"]), float(printed["test_ppl"]) * float(target) / float(printed["ppl"])


def within_test_limit(tests: pd.Series, meta: dict) -> str | None:
    """'k of S seeds ≤ limit' for the test perplexities of a row's seeds (one run: ≤ limit: yes/no)."""
    limit = printed_test_limit(meta)
    values = tests.astype(float).dropna()
    if limit is None or values.empty:
        return None
    printed, most = limit
    within = f"≤ {most:.1f} ({printed:g} + {100 * (most / printed - 1):.0f}%)"
    k = int((values <= most).sum())
    return f"{k} of {len(values)} seeds {within}" if len(values) > 1 else f"{'yes' if k else 'no'}, {within}"


def reproduction_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Table 2: per book preset, the book's numbers beside each backend's here."""
    rows = []
    for name in book_presets(runs):
        meta = preset_info(name)[1]
        rows += _book_rows(name, meta, metric_of(meta)) + _measured_rows(name, meta, runs)
    return pd.DataFrame(rows, columns=REPRODUCTION)


def reached_epoch(run: pd.Series, metric: str, target: float) -> tuple[float, float]:
    """(first epoch whose metric <= target, training seconds up to its end); NaN if never."""
    reached = reached_target(run["epoch_list"], target, metric)
    return (float(reached[0]), reached[1]) if reached else (math.nan, math.nan)


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


# The scaling suite's axes (benchmarks.campaign.suites varies them), in the order they are shown
SECTION_OF = {"batch_size": "train", "num_hiddens": "model", "num_steps": "train", "num_layers": "model"}


AXIS_LABEL = {"batch_size": "batch size", "num_hiddens": "hidden units", "num_steps": "sequence length (steps)",
              "num_layers": "layers"}


MACHINE_KEYS = ["campaign", "machine", "device", "threads"]


BASELINE, OTHER = "preset", "other"


SCALING = ["sgroup", "preset", "cell", "machine", "device", "threads", "backend", "mode", "axis", "value", "status",
           "runs", "epochs_done", "tok_s_median", "tok_s_min", "tok_s_max", "peak_rss_mb", "achieved_flops",
           "peak_flops", "ceiling_flops", "of_ceiling", "overrides", "run_id"]


def scaling_label(backend: str, mode: str, modes_per_backend: dict[str, int]) -> str:
    """A curve's name: the backend, and its mode where the backend has several curves."""
    return backend if modes_per_backend.get(backend, 1) == 1 else f"{backend} {mode}"


def scaling_point(spec: dict, base: dict | None) -> tuple[str, float]:
    """(axis, value) of a run: (BASELINE, nan) for the preset as is, (OTHER, nan) when it
    differs from its preset in anything but epochs and at most one scaling size."""
    if base is None:
        return OTHER, math.nan
    diffs = {(section, key) for section in ("data", "model", "train")
             for key in set(spec.get(section) or {}) | set(base.get(section) or {})
             if key != "epochs" and (spec.get(section) or {}).get(key) != (base.get(section) or {}).get(key)}
    if not diffs:
        return BASELINE, math.nan
    if len(diffs) == 1:
        section, key = next(iter(diffs))
        if SECTION_OF.get(key) == section:
            return key, float(spec[section][key])
    return OTHER, math.nan


def scaling_table(scaling: pd.DataFrame, all_runs: pd.DataFrame) -> pd.DataFrame:
    """One row per scaling point and backend/mode (the latest ok run of it), numbered by
    scaling group S1, S2, ...; `of_ceiling` is achieved FLOP/s over the best matmul peak
    any run (scaling or not) measured on that machine, device and thread count."""
    if scaling.empty:
        return pd.DataFrame(columns=SCALING)
    rows = pick_rows(scaling, MACHINE_KEYS + ["preset_label", "spec_key", "backend", "mode"])
    points = [scaling_point(s, b) for s, b in zip(rows["spec"], rows["base_spec"], strict=True)]
    rows["axis"], rows["value"] = [p[0] for p in points], [p[1] for p in points]
    rows["preset"], rows["cell"] = rows["preset_label"], rows["spec"].map(lambda s: s["model"]["cell"])
    groups = rows[MACHINE_KEYS].drop_duplicates().sort_values(MACHINE_KEYS).reset_index(drop=True)
    groups["sgroup"] = [f"S{i + 1}" for i in range(len(groups))]
    rows = rows.merge(groups, on=MACHINE_KEYS, how="left")
    rows["ceiling_flops"] = ceiling(all_runs, rows, MACHINE_KEYS)
    rows["of_ceiling"] = rows["achieved_flops"] / rows["ceiling_flops"]
    rows = rows.sort_values(["sgroup", "preset", "axis", "value", "backend", "mode"], na_position="first")
    return rows[SCALING].reset_index(drop=True)


def with_baseline(table: pd.DataFrame, preset_spec: dict) -> dict[str, pd.DataFrame]:
    """axis -> points of that axis, the preset's own run included at the preset's value."""
    values = {axis: float(preset_spec[SECTION_OF[axis]][axis]) for axis in SECTION_OF}
    out = {}
    base = table[table["axis"].eq(BASELINE)]
    for axis in [a for a in SECTION_OF if a in set(table["axis"])]:
        points = pd.concat([table[table["axis"].eq(axis)], base.assign(axis=axis, value=values[axis])],
                           ignore_index=True)
        out[axis] = points.sort_values(["backend", "mode", "value"]).reset_index(drop=True)
    return out


MICRO_KEYS = ["machine", "device", "threads"]


KIND_ORDER = {"train": 0, "recurrent": 1, "generate": 2}


def microbench_table(micro: pd.DataFrame) -> pd.DataFrame:
    """One row per benchmark, by machine, kind (train first), cell, fastest first; with
    tok/s over the fastest of the same machine, threads, kind and cell."""
    if micro.empty:
        return pd.DataFrame(columns=MICRO)
    keys = MICRO_KEYS + ["kind", "cell"]
    ceiling = micro.groupby(MICRO_KEYS)["matmul_peak"].transform("max")
    table = micro.assign(vs_fastest=micro["tok_s"] / micro.groupby(keys)["tok_s"].transform("max"),
                         of_ceiling=micro["flops_s"] / ceiling,
                         _kind=micro["kind"].map(lambda k: KIND_ORDER.get(k, 9)))
    table = table.sort_values(MICRO_KEYS + ["_kind", "cell", "tok_s"], ascending=[True] * 5 + [False])
    return table[MICRO].reset_index(drop=True)


SUMMARY_FIELDS = ["preset", "backend", "mode", "track", "contender", "threads", "tok_s", "tok_s_ci", "tok_s_own",
                  "tok_s_own_ci", "rounds", "ratio_to_fastest", "ratio_ci", "verdict", "rounds_paired",
                  "disturbed_rounds", "load_slope", "ratio_all", "ratio_all_ci", "verdict_all", "twin", "parity",
                  "utilisation", "utilisation_flag", "peak_mem_mb", "mem_increase_mb", "mem_vs_leanest", "mem_scope",
                  "peak_device_mem_mb", "final_ppl", "metric", "target_ppl", "reached_target", "status"]


def campaigns_by_time(runs: pd.DataFrame) -> list[str]:
    """Campaign ids, the most recent first."""
    if runs.empty:
        return []
    return list(runs.groupby("campaign")["timestamp"].max().sort_values(ascending=False).index)


def campaign_ceiling(runs: pd.DataFrame) -> float:
    """The campaign's ceiling: the best matmul peak (any library) any of its processes measured."""
    peaks = runs["peak_best"].dropna()
    return float(peaks.max()) if len(peaks) else math.nan


def headline_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """One campaign's runs -> one row per (preset group, contender, mode), with verdicts.

    Quality first: where the preset has a target and the run is the preset as written,
    a row that missed it is `missed target`, never ranked, so speed is only compared at
    the same quality."""
    rows = pick_rows(runs)
    rows["metric"] = [metric_of(r["book"], r) for _, r in rows.iterrows()]
    rows["final_ppl"] = [r[f"final_{r['metric']}"] for _, r in rows.iterrows()]
    rows["target"] = [(r["book"] or {}).get("target_ppl") if not r["overrides"] else None
                      for _, r in rows.iterrows()]
    rows["reached_target"] = [_reached(r["final_ppl"], t) for t, (_, r) in
                              zip(rows["target"], rows.iterrows(), strict=True)]
    rows = with_seeds(rows, runs)
    rates = round_rates(rows)
    peak = campaign_ceiling(runs)
    parts = [group_verdicts(g, rates, ranked=g["reached_target"].ne(False) & ~g["quality_flag"])
             for _, g in rows.groupby("group", sort=True)]
    out = pd.concat(parts) if parts else rows
    out["verdict"] = out["verdict"].where(~(out["quality_flag"] & out["verdict"].eq("missed target")),
                                          "quality short")
    out["utilisation"] = [utilisation(f, r, peak)[1] for f, r in
                          zip(out["train_flops_per_token"], out["tok_s"], strict=True)]
    out = with_memory(out)
    out["_to_target"] = out["time_to_target"].where(out["target"].notna(), -out["ratio"])
    return out.sort_values(["group", "_to_target", "tok_s"], ascending=[True, True, False],
                           na_position="last").drop(columns="_to_target").reset_index(drop=True)


def with_memory(rows: pd.DataFrame) -> pd.DataFrame:
    """`mem_vs_leanest`: each row's peak memory over the leanest finished row of its
    group (the twin, a copy of its original, is not a contender for leanest)."""
    rows = rows.reset_index(drop=True)
    rows["mem_vs_leanest"] = math.nan
    for _, g in rows.groupby("group", sort=False):
        twin = g["twin"].fillna(False).astype(bool) if "twin" in g else pd.Series(False, index=g.index)
        pool = g.loc[g["status"].eq("ok") & ~twin, "peak_mem_mb"].dropna()
        pool = pool[pool > 0]
        if len(pool):
            rows.loc[g.index, "mem_vs_leanest"] = g["peak_mem_mb"] / pool.min()
    return rows


def with_seeds(rows: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The headline's rows with their quality over seeds (benchmarks.report.seeds): with
    several seeds a row reaches its target when most seeds do, and `quality_flag` marks a
    row short of its group's best beyond its seeds' spread; presets with a target are
    ranked by time to target (MLPerf's olympic mean over seeds)."""
    finished = runs[runs["status"].eq("ok")]
    stat = seed_stats(finished, ROW_KEYS + ["group"])
    out = rows.merge(stat.drop(columns=["group"]), on=ROW_KEYS, how="left")
    out["seeds"] = out["seeds"].fillna(1).astype(int)
    out["quality_flag"] = out["quality_flag"].fillna(False).astype(bool)
    several = out["seeds"].ge(2) & out["target"].notna()
    out.loc[several, "reached_target"] = (out.loc[several, "reached"] * 2 > out.loc[several, "reached_of"])
    return out


def track_speedups(rows: pd.DataFrame) -> dict[str, float]:
    """One preset group's headline rows -> backend (with its version, when versions are
    contenders): its tuned over its out-of-box tokens/sec (median over rounds), for
    those that ran both, ok."""
    ok = rows[rows["status"].eq("ok")]
    out = {}
    framework = ok["contender"].astype(str).map(lambda c: " ".join(x for x in framework_of(c) if x))
    for backend, mine in ok.groupby(framework, sort=False):
        by_track = mine.groupby("track")["tok_s"].max()
        if {"tuned", "out-of-box"} <= set(by_track.index):
            out[backend] = float(by_track["tuned"] / by_track["out-of-box"])
    return out


def _reached(value: float, target: float | None) -> bool | None:
    """Whether the final perplexity met the preset's target; None without a target or a value."""
    if target is None or value is None or math.isnan(target) or math.isnan(value):
        return None
    return bool(value <= target)


def summary(runs: pd.DataFrame, campaign: str) -> dict:
    """results/summary.json: this campaign's machine and headline rows, as data."""
    mine = runs[runs["campaign"] == campaign]
    rows = headline_rows(mine)
    first = mine.sort_values("timestamp").iloc[0]
    machine = {**(first["fingerprint_facts"] or {"id": first["fingerprint"]}),
               "matmul_peak_flops": campaign_ceiling(mine), "threads": int(first["threads"]),
               "frameworks": _frameworks(mine)}
    return {"campaign": campaign, "machine": machine,
            "git": {"commit": first["git_commit"].removesuffix("-dirty") or None, "dirty": bool(mine["dirty"].any())},
            "started": mine["timestamp"].min().isoformat(), "settings": first["settings"] or {},
            "calibration": calibration(rows), "precision": precision_reached(rows, first["settings"] or {}),
            "disturbed_rounds": disturbed_rounds(rows),
            "rows": [_summary_row(r) for _, r in rows.iterrows()]}


def calibration(rows: pd.DataFrame) -> list[dict]:
    """Each twin's ratio to its original, per preset: the campaign's A/A check."""
    twins = rows[rows["twin"]] if "twin" in rows else rows.iloc[:0]
    return [{"preset": r["preset_label"], "contender": r["twin_of"], "ratio": r["twin_ratio"],
             "ratio_ci": [r["twin_ratio_lo"], r["twin_ratio_hi"]], "verdict": r["calibration"],
             "contains_1": bool(r["twin_ratio_lo"] <= 1 <= r["twin_ratio_hi"])} for _, r in twins.iterrows()]


def precision_reached(rows: pd.DataFrame, settings: dict) -> dict:
    """The widest relative half-width among the campaign's ratio intervals (every row
    that competes, to the fastest; every twin, to its original), overall and per
    preset, against the target: what the campaign driver stopped on."""
    widths = []
    for _, r in rows.iterrows():
        if r["verdict"] in ("tie", "slower"):
            widths.append((r["preset_label"], half_width(r["ratio"], r["ratio_lo"], r["ratio_hi"])))
        if r.get("twin"):
            widths.append((r["preset_label"], half_width(r["twin_ratio"], r["twin_ratio_lo"], r["twin_ratio_hi"])))
    presets = dict.fromkeys(p for p, _ in widths)
    return {"target": settings.get("precision"), "reached": max((w for _, w in widths), default=None),
            "per_preset": {p: max(w for q, w in widths if q == p) for p in presets}}


def disturbed_rounds(rows: pd.DataFrame) -> dict:
    """Rounds with a disturbed slice, per preset, out of the rounds timed."""
    return {p: {"disturbed": len(set().union(*map(set, g["disturbed_list"]))), "rounds": int(g["rounds_timed"].max())}
            for p, g in rows.groupby("preset_label")}


def _frameworks(runs: pd.DataFrame) -> dict[str, str]:
    return {b: str(v) for b, v in runs.groupby("backend")["framework_version"].last().items()}


def _clean(x):
    """Strict JSON: NaN and infinities become null, numpy scalars plain numbers."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    x = x.item() if hasattr(x, "item") else x
    return None if isinstance(x, float) and not math.isfinite(x) else x


def _over(share: float | None) -> bool:
    """Above 100% of the ceiling is a measurement error, never utilisation."""
    return share is not None and not math.isnan(share) and share > 1.0 + 1e-9


def _summary_row(r: pd.Series) -> dict:
    row = {"preset": r["preset_label"], "backend": r["backend"], "mode": r["mode"], "track": r["track"] or None,
           "contender": r["contender"],
           "threads": int(r["threads"]), "tok_s": r["tok_s"], "tok_s_ci": [r["tok_s_lo"], r["tok_s_hi"]],
           "tok_s_own": r.get("tok_s_own", r["tok_s"]),
           "tok_s_own_ci": [r.get("tok_s_own_lo", r["tok_s_lo"]), r.get("tok_s_own_hi", r["tok_s_hi"])],
           "rounds": int(r["rounds_timed"]), "ratio_to_fastest": r["ratio"], "ratio_ci": [r["ratio_lo"], r["ratio_hi"]],
           "verdict": r["verdict"], "rounds_paired": int(r["rounds_paired"]),
           "disturbed_rounds": int(r["disturbed_rounds"]), "load_slope": r.get("load_slope", 0.0),
           "ratio_all": r["ratio_all"], "ratio_all_ci": [r["ratio_all_lo"], r["ratio_all_hi"]],
           "verdict_all": r["verdict_all"], "twin": bool(r["twin"]), "parity": r.get("parity"),
           "utilisation": None if _over(r["utilisation"]) else r["utilisation"],
           "utilisation_flag": "over 100% of the ceiling: measurement error" if _over(r["utilisation"]) else None,
           "peak_mem_mb": r["peak_mem_mb"], "mem_increase_mb": r["mem_increase_mb"],
           "mem_vs_leanest": r["mem_vs_leanest"], "mem_scope": r["mem_scope"],
           "peak_device_mem_mb": r.get("peak_device_mem_mb"),
           "final_ppl": r["final_ppl"],
           "metric": r["metric"], "target_ppl": r["target"], "reached_target": r["reached_target"],
           "status": r["status"]}
    return {k: row[k] for k in SUMMARY_FIELDS}


def write_summary(runs: pd.DataFrame, campaign: str, path: Path) -> dict:
    data = _clean(summary(runs, campaign))
    write_text(path, json.dumps(data, indent=1, allow_nan=False) + "\n")
    return data
