"""Records -> one flat pandas row per run, with the keys the report groups by.

A comparison group is one preset in one campaign (one invocation of `nox -s bench`,
hence one machine and one code version), on one device, with one spec and one thread
count: records from different campaigns are never compared with each other. A record
made before campaigns existed is a campaign of its own. A *row* is one (group,
contender, mode); when several records fall on one row the report shows the latest
`ok` one (or the latest of any status when none is ok) and counts the rest.
"""

from __future__ import annotations

import json
import math
import warnings
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from common import metrics
from common.errors import SpecError
from common.metrics import steady_state
from common.records import iter_located
from common.specs import RunSpec, load_preset

GROUP_KEYS = ["campaign", "preset_label", "device", "spec_key", "threads"]
ROW_KEYS = GROUP_KEYS + ["contender", "backend", "mode"]
NO_PRESET = "(no preset)"


@lru_cache(maxsize=None)
def preset_info(name: str | None) -> tuple[dict | None, dict]:
    """(the preset's spec as a dict, its [book] metadata); (None, {}) if unknown."""
    if not name:
        return None, {}
    try:
        spec, meta = load_preset(name)
    except SpecError:
        return None, {}
    return spec.to_dict(), meta


def framework_of(label: str) -> tuple[str, str]:
    """A contender's label -> (backend, framework version or ""): `jax 0.10.1/tuned@before`
    -> ("jax", "0.10.1") (benchmarks.campaign.driver.Contender names them so)."""
    backend, _, version = label.split("/", 1)[0].split("@", 1)[0].partition(" ")
    return backend, version.strip()


def parse_time(text: Any) -> datetime:
    """An ISO timestamp or date as an aware UTC datetime (naive means UTC)."""
    value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _num(value: Any) -> float:
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def seedless(spec: dict) -> dict:
    """`spec` without its seed: the seeds of one run pair up in one group and one row."""
    return {**spec, "train": {k: v for k, v in (spec.get("train") or {}).items() if k != "seed"}}


def spec_overrides(spec: dict, base: dict | None, ignore: tuple[str, ...] = ()) -> str:
    """How `spec` differs from its preset's spec (fields in `ignore` and the seed aside):
    '' when identical."""
    if base is None:
        return ""
    spec, base, defaults = seedless(spec), seedless(base), RunSpec().to_dict()
    diffs = []
    for section in sorted(set(spec) | set(base)):
        mine, theirs = spec.get(section) or {}, base.get(section) or {}
        default = defaults.get(section) or {}  # a field added since the record was made had its default
        for key in sorted(set(mine) | set(theirs)):
            if key not in ignore and mine.get(key, default.get(key)) != theirs.get(key, default.get(key)):
                diffs.append(f"{key}={mine.get(key, default.get(key))}")
    return ", ".join(diffs)


def spec_summary(spec: dict) -> str:
    """A one-line description of a spec, for runs without a preset."""
    d, m, t = (spec.get(k) or {} for k in ("data", "model", "train"))
    return (f"{d.get('corpus')}/{d.get('token')} {m.get('cell')} {m.get('num_layers')}x{m.get('num_hiddens')}, "
            f"{t.get('optimizer')} lr={t.get('lr')}, batch {t.get('batch_size')}x{t.get('num_steps')}, "
            f"{t.get('epochs')} epochs")


def threads_label(n: int) -> str:
    return f"{n} thread" if n == 1 else f"{n} threads"


def device_label(device: dict) -> str:
    kind, index = device.get("kind", "?"), device.get("index", 0)
    where = kind if kind == "cpu" else f"{kind}:{index}"
    return f"{where} ({device['name']})" if device.get("name") else where


def _tok_stats(record: dict) -> dict[str, float]:
    summary = record.get("summary") or {}
    stats = {k: _num(summary.get(f"tok_s_{k}")) for k in ("median", "min", "max", "iqr")}
    if math.isnan(stats["median"]):
        fallback = steady_state([_num(e.get("tok_s")) for e in record.get("epochs") or []])
        stats = {k: _num(v) for k, v in fallback.items()}
    return stats


def utilisation(summary: dict, tok_s: float) -> dict[str, float]:
    """Model FLOPs per training token (common.flops, recorded by the harness), achieved
    FLOP/s = that x the median tokens/sec, the run's plain matmul peak, its framework's
    best matmul of any library (`own peak`), and the better of the two (`peak_best`, what
    the ceiling is made of); NaN if unknown."""
    per_token = _num(summary.get("train_flops_per_token"))
    achieved, _ = metrics.utilisation(per_token, tok_s, None)
    plain, own = _num(summary.get("peak_flops")), _num(summary.get("peak_flops_own"))
    best = max((p for p in (plain, own) if not math.isnan(p)), default=math.nan)
    return {"train_flops_per_token": per_token, "achieved_flops": _num(achieved),
            "peak_flops": plain, "peak_own_flops": own, "peak_best": best}


def flatten(record: dict) -> dict[str, Any]:
    """One record as a flat row; raises KeyError/TypeError/ValueError if malformed."""
    for key in ("backend", "mode", "run_id", "status"):
        if not isinstance(record.get(key), str) or not record[key]:
            raise ValueError(f"`{key}` is {record.get(key)!r}, not a name")
    env, summary, device = record["env"], record["summary"] or {}, record["device"]
    spec, preset = record["spec"], record["preset"]
    base, meta = preset_info(preset)
    epochs = [e for e in record["epochs"] if isinstance(e, dict)]
    overrides = spec_overrides(spec, base)
    framework = env.get("framework") or {}
    tok = _tok_stats(record)
    campaign = record.get("campaign") or {}
    fingerprint = env.get("fingerprint") or {}
    git = env.get("git") or {}
    return {
        "campaign": campaign.get("id") or f"run-{record['run_id']}",
        "contender": campaign.get("contender") or record["backend"],
        "rounds": int(campaign.get("rounds") or 1),
        "fingerprint": fingerprint.get("id") or f"{env.get('hostname', '?')} ({env.get('cpu_model', '?')})",
        "fingerprint_facts": fingerprint,
        "dirty": bool(git.get("dirty")) if git else str(env.get("git_commit") or "").endswith("-dirty"),
        "run_id": record["run_id"], "timestamp": parse_time(record["timestamp"]),
        "status": record["status"], "error": record.get("error"),
        "backend": record["backend"], "mode": record["mode"], "mode_default": bool(record.get("mode_default")),
        "track": record.get("track") or "",
        "preset": preset, "preset_label": preset or NO_PRESET, "book": record.get("book") or meta,
        "tag": record.get("tag") or "",
        "spec": spec, "base_spec": base,
        "spec_key": json.dumps(seedless(spec), sort_keys=True) + (" perturbed" if record.get("perturbed_init") else ""),
        "seed": int((spec.get("train") or {}).get("seed") or 0),
        "seed_count": int((record.get("seeds") or {}).get("count") or 1),
        "perturbed_init": bool(record.get("perturbed_init")),
        "init_from_mode": record.get("init_from_mode") or "",
        "overrides": ((overrides if base is not None else spec_summary(spec))
                      + (", perturbed_init" if record.get("perturbed_init") else "")).lstrip(", "),
        "overrides_but_epochs": spec_overrides(spec, base, ignore=("epochs",)),
        "threads": int(record.get("threads") or framework.get("threads") or 0),
        "hostname": env.get("hostname", "?"), "cpu_model": env.get("cpu_model", "?"),
        "machine": f"{env.get('hostname', '?')} ({env.get('cpu_model', '?')}"
                   + (f", fingerprint {fingerprint['id']})" if fingerprint.get("id") else ")"),
        "device": device_label(device), "device_kind": device.get("kind", "?"),
        "epoch_list": epochs, "extra_list": [e for e in record.get("extra_epochs") or [] if isinstance(e, dict)],
        "load_list": [e for e in campaign.get("load") or [] if isinstance(e, dict)],
        "twin_of": str(campaign.get("twin_of") or ""),
        "process": str(campaign.get("process") or ""),  # "k/N": one of the N processes that shared its rounds
        "settings": campaign.get("settings") if isinstance(campaign.get("settings"), dict) else {},
        "parity": record.get("parity") if isinstance(record.get("parity"), dict) else None,
        "parity_ok": (record.get("parity") or {}).get("ok") if isinstance(record.get("parity"), dict) else None,
        "epochs_planned": int((spec.get("train") or {}).get("epochs") or 0),
        "epochs_done": int(summary.get("epochs_done", len(epochs))),
        "final_train_ppl": _num(summary.get("final_train_ppl")), "final_val_ppl": _num(summary.get("final_val_ppl")),
        "final_test_ppl": _num(summary.get("test_ppl")),
        "final_val_stream_ppl": _num(summary.get("final_val_stream_ppl")), "best_ppl": _num(summary.get("best_ppl")),
        **{f"tok_s_{k}": v for k, v in tok.items()}, **utilisation(summary, tok["median"]),
        **{k: _num(summary.get(k)) for k in ("warmup_s", "train_s", "wall_s", "peak_rss_mb", "target_ppl",
                                             "time_to_target_s")},
        **memory_of(summary),
        "samples": record.get("samples") or {}, "env": env, "git_commit": env.get("git_commit") or "",
        "framework_version": framework.get("version", "?"),
        "workers": int(record.get("workers") or 1), "engine": record.get("engine") or "",
        "comm_s": _num((record.get("comm") or {}).get("allreduce_s")),
    }


def load_runs(results_dir: Path, since: str | None = None, commit: str | None = None) -> pd.DataFrame:
    """Every valid record under `results_dir`, flattened, after the --since/--commit filters."""
    rows = []
    if results_dir.exists():
        for path, line, record in iter_located(results_dir):
            try:
                rows.append(flatten(record))
            except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
                warnings.warn(f"{path}:{line}: record {record.get('run_id', '?')} skipped, malformed "
                              f"({type(exc).__name__}: {exc})", stacklevel=2)
    runs = pd.DataFrame(rows)
    if runs.empty:
        return runs
    repeated = runs["run_id"].duplicated()
    for run_id in runs.loc[repeated, "run_id"].unique():
        warnings.warn(f"{results_dir}: run {run_id} is recorded more than once; counted once", stacklevel=2)
    runs = runs[~repeated]
    if since:
        runs = runs[runs["timestamp"] >= parse_time(since)]
    if commit:
        runs = runs[runs["git_commit"].str.startswith(commit)]
    return current_defaults(runs.reset_index(drop=True))


def current_defaults(runs: pd.DataFrame) -> pd.DataFrame:
    """`mode_default` as of the newest record: a backend's default mode can change between
    versions (JAX went from `scan` to `wavefront`), and the report labels only the mode
    that is the default now, not every mode that once was."""
    defaults = runs[runs["mode_default"]].sort_values("timestamp").groupby("backend")["mode"].last()
    return runs.assign(mode_default=runs["mode"] == runs["backend"].map(defaults))


def split_scaling(runs: pd.DataFrame, tag: str = "scaling") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the other runs, the runs tagged `tag`): scaling curves get their own section, so
    their many modified specs never crowd the main tables."""
    if runs.empty:
        return runs, runs
    tagged = runs["tag"].eq(tag)
    return runs[~tagged].reset_index(drop=True), runs[tagged].reset_index(drop=True)


def with_group_ids(runs: pd.DataFrame) -> pd.DataFrame:
    """Number the comparison groups G1, G2, ... by preset, machine, device; unmodified spec first."""
    order = ["campaign", "preset_label", "device", "overrides", "threads", "spec_key"]
    keys = runs[GROUP_KEYS + ["overrides"]].drop_duplicates(GROUP_KEYS).sort_values(order).reset_index(drop=True)
    keys["group"] = [f"G{i + 1}" for i in range(len(keys))]
    return runs.merge(keys[GROUP_KEYS + ["group"]], on=GROUP_KEYS, how="left")


def _status_counts(statuses: pd.Series) -> str:
    counts = statuses.value_counts()
    order = ["ok", "diverged", "interrupted", "error"]
    return ", ".join(f"{counts[s]} {s}" for s in order + sorted(set(counts.index) - set(order)) if s in counts)


def memory_of(summary: dict) -> dict:
    """`peak_mem_mb`: training's peak resident memory (common.rss), or the process's
    peak for records written before it was kept (`mem_scope` says which);
    `mem_increase_mb`: what training added over its start."""
    train, start = _num(summary.get("train_peak_rss_mb")), _num(summary.get("rss_start_mb"))
    device = {"peak_device_mem_mb": _num(summary.get("train_peak_device_mib"))}  # a GPU's allocator; NaN on the CPU
    if math.isnan(train):
        return {"peak_mem_mb": _num(summary.get("peak_rss_mb")), "mem_increase_mb": math.nan, "mem_scope": "process",
                **device}
    scope = summary.get("peak_scope") if summary.get("peak_scope") in ("training", "process") else "process"
    return {"peak_mem_mb": train, "mem_increase_mb": train - start, "mem_scope": scope, **device}


def pick_rows(runs: pd.DataFrame, keys: list[str] = ROW_KEYS, prefer: tuple[str, ...] = ()) -> pd.DataFrame:
    """One run per key: the latest ok one, else the latest; with `runs`/`shown` notes.

    `prefer` names boolean columns ranked above ok-ness (e.g. "ran the full preset").
    """
    ranked = runs.assign(_ok=runs["status"].eq("ok")).sort_values([*prefer, "_ok", "timestamp"])
    chosen = ranked.groupby(keys, sort=False, dropna=False).tail(1).drop(columns="_ok")
    counts = runs.groupby(keys, dropna=False)["status"].agg(_status_counts).rename("runs").reset_index()
    total = runs.groupby(keys, dropna=False).size().rename("n_runs").reset_index()
    processes = _column(runs, "process").ne("").groupby([runs[k] for k in keys], dropna=False).sum()
    chosen = chosen.merge(counts, on=keys, how="left").merge(total, on=keys, how="left")
    chosen = chosen.merge(processes.rename("n_processes").reset_index(), on=keys, how="left")
    chosen["shown"] = [_shown_note(s, n, p) for s, n, p in
                       zip(chosen["status"], chosen["n_runs"], chosen["n_processes"], strict=True)]
    return _with_turns(chosen.reset_index(drop=True), runs, keys)


def _with_turns(chosen: pd.DataFrame, runs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """`timing_list` and `timing_loads`: the timed epochs and load measurements of every
    process that took turns at the row's rounds (`campaign --processes`), else the
    shown record's own; the rates come from these (stats.round_rates)."""
    def timed(frame: pd.DataFrame) -> tuple[list, list]:
        rows = list(frame.itertuples(index=False))
        return ([e for r in rows for e in list(r.epoch_list) + list(getattr(r, "extra_list", None) or [])],
                [e for r in rows for e in list(getattr(r, "load_list", None) or [])])

    chosen["timing_list"], chosen["timing_loads"] = [[timed(chosen.loc[[i]])[k] for i in chosen.index]
                                                     for k in (0, 1)]
    turns = runs[_column(runs, "process").ne("")]
    for i in chosen.index[chosen["n_processes"].gt(1)]:
        chosen.at[i, "timing_list"], chosen.at[i, "timing_loads"] = timed(
            turns[(turns[keys] == chosen.loc[i, keys]).all(axis=1)])
    return chosen


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name].fillna("").astype(str) if name in frame else pd.Series("", index=frame.index)


def _shown_note(status: str, n_runs: int, n_processes: int = 0) -> str:
    """Which record of the row's the table shows; the processes of one contender
    (`campaign --processes`) train the same run, so any of them stands for it."""
    if n_processes > 1 and n_processes == n_runs:
        return f"one of its {n_runs} processes" + ("" if status == "ok" else " (none ok)")
    if n_runs == 1:
        return "only run"
    return f"latest ok of {n_runs}" if status == "ok" else f"latest of {n_runs} (none ok)"


MICRO = ["machine", "device", "threads", "kind", "cell", "backend", "mode", "mode_default", "median_s", "min_s",
         "iqr_s", "rounds", "tokens_per_call", "flops_per_token", "tok_s", "flops_s", "vs_fastest", "matmul_peak",
         "of_ceiling", "framework_version", "shape", "file", "datetime"]


NEEDED = ("backend", "cell", "mode", "kind", "tokens_per_call", "flops_per_token")


def _machine(info: dict) -> str:
    cpu = (info.get("cpu") or {}).get("brand_raw") or info.get("processor") or "?"
    return f"{info.get('node', '?')} ({cpu})"


def _row(bench: dict, machine: str, path: Path, stamp: Any) -> dict[str, Any]:
    """One benchmark as a flat row; KeyError/TypeError/ValueError when it is not ours."""
    extra, stats = bench["extra_info"], bench["stats"]
    missing = [k for k in NEEDED if k not in extra]
    if missing:
        raise KeyError(f"extra_info lacks {missing}")
    median = float(stats["median"])
    tok_s = extra["tokens_per_call"] / median if median > 0 else math.nan
    return {"machine": machine, "device": extra.get("device", "cpu"), "threads": int(extra.get("threads") or 0),
            "kind": extra["kind"], "cell": extra["cell"], "backend": extra["backend"], "mode": extra["mode"],
            "mode_default": bool(extra.get("mode_default")), "median_s": median, "min_s": float(stats["min"]),
            "iqr_s": float(stats.get("iqr", math.nan)), "rounds": int(stats["rounds"]),
            "tokens_per_call": int(extra["tokens_per_call"]), "flops_per_token": float(extra["flops_per_token"]),
            "tok_s": tok_s, "flops_s": tok_s * float(extra["flops_per_token"]),
            "matmul_peak": float(extra.get("matmul_peak") or math.nan),
            "framework_version": extra.get("framework_version", "?"), "shape": extra.get("shape", ""),
            "file": path.name, "datetime": stamp}


def load_microbench(folder: Path) -> pd.DataFrame:
    """Every rnnbench benchmark in folder/*.json; unreadable files and foreign entries are
    skipped with a warning naming them."""
    rows = []
    for path in sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            benches, machine = data["benchmarks"], _machine(data.get("machine_info") or {})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            warnings.warn(f"{path}: skipped, not pytest-benchmark JSON ({type(exc).__name__}: {exc})", stacklevel=2)
            continue
        for bench in benches:
            try:
                rows.append(_row(bench, machine, path, data.get("datetime")))
            except (KeyError, TypeError, ValueError) as exc:
                warnings.warn(f"{path}: benchmark {bench.get('name', '?')!r} skipped, not an rnnbench "
                              f"micro-benchmark ({type(exc).__name__}: {exc})", stacklevel=2)
    return pd.DataFrame(rows, columns=[c for c in MICRO if c not in ("vs_fastest", "of_ceiling")])
