"""Micro-benchmarks in the report: pytest-benchmark JSON files -> one table.

`nox -s microbench` writes results/microbench/<backend>.json (benchmarks/micro). Each
benchmark there is one training step or one greedy generation step of one backend x
cell x mode at d2l-deep-lstm's shape; its `extra_info` says which, how many tokens a
call processes and the model FLOPs per token (common.flops). From the median time:
tok/s = tokens per call / median seconds, GFLOP/s = tok/s x FLOPs per token. The
ceiling is the best float32 matmul peak that the files of one machine, device and
thread count measured (each backend's own, in its session), as for the main runs;
"of ceiling" is GFLOP/s over it. The `recurrent` kind times the recurrent layers alone.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.report import format as fmt

MICRO_KEYS = ["machine", "device", "threads"]
MICRO = ["machine", "device", "threads", "kind", "cell", "backend", "mode", "mode_default", "median_s", "min_s",
         "iqr_s", "rounds", "tokens_per_call", "flops_per_token", "tok_s", "flops_s", "vs_fastest", "matmul_peak",
         "of_ceiling", "framework_version", "shape", "file", "datetime"]
NEEDED = ("backend", "cell", "mode", "kind", "tokens_per_call", "flops_per_token")
KIND_ORDER = {"train": 0, "recurrent": 1, "generate": 2}


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


def display(table: pd.DataFrame) -> pd.DataFrame:
    """One machine's rows of the micro-benchmark table, for display."""
    return pd.DataFrame({
        "step": table["kind"], "cell": table["cell"], "backend": table["backend"],
        "mode": fmt.both(table, "mode", "mode_default", fmt.mode),
        "median ms": table["median_s"].map(fmt.millis), "min ms": table["min_s"].map(fmt.millis),
        "tokens/call": table["tokens_per_call"].astype(str), "tok/s": table["tok_s"].map(fmt.rate),
        "GFLOP/s": table["flops_s"].map(fmt.gflops), "of ceiling": table["of_ceiling"].map(fmt.percent),
        "vs fastest": table["vs_fastest"].map(fmt.ratio),
        "rounds": table["rounds"].astype(str),
    })
