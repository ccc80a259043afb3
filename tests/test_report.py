"""The report from a small fixed set of records written here (no framework needed)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("pandas")
pytest.importorskip("matplotlib")
pytest.importorskip("tabulate")

import pandas as pd  # noqa: E402

from benchmarks.report import add_report_arguments, build_report, run_report  # noqa: E402
from common.metrics import steady_state  # noqa: E402
from common.records import SCHEMA, append_record  # noqa: E402
from common.specs import load_preset  # noqa: E402

VERSIONS = {"pytorch": "2.3.0", "mxnet": "1.9.1", "jax": "0.4.30"}
ALPHA = ("alpha", "Intel Xeon E5-2680")
BETA = ("beta", "AMD EPYC 7B12")


def make_record(backend, mode, *, preset="quick-lstm", status="ok", machine=ALPHA, device=("cpu", 0),
                tok_s=1000.0, done=None, epochs=None, ppl_end=2.0, day=1, threads=2, commit="abc1234", val=False):
    """A record as the harness writes it: geometric perplexity decay, warm-up epoch 3x slower."""
    spec, meta = load_preset(preset)
    spec = spec.with_overrides([f"epochs={epochs}"]) if epochs else spec
    planned = spec.train.epochs
    done = planned if done is None else done
    rows = []
    for i in range(1, done + 1):
        seconds = 10000 / tok_s * (3 if i == 1 else 1)
        ppl = 25.0 * (ppl_end / 25.0) ** (i / planned)
        rows.append({"epoch": i, "train_ppl": ppl, "tokens": 10000, "seconds": seconds, "tok_s": 10000 / seconds})
        if val:
            rows[-1]["val_ppl"] = ppl * 1.1
    if status == "diverged":
        rows[-1]["train_ppl"] = math.inf
    target = meta.get("target_ppl")
    cumulative = [sum(r["seconds"] for r in rows[:i + 1]) for i in range(len(rows))]
    reached = [c for r, c in zip(rows, cumulative, strict=True) if target and r["train_ppl"] <= target]
    tok = steady_state([r["tok_s"] for r in rows])
    kind, index = device
    return {
        "schema": SCHEMA, "run_id": f"{backend}-{mode}-{preset}-{machine[0]}-{kind}{index}-{status}-{day}-{done}",
        "timestamp": f"2024-05-{day:02d}T10:00:00+00:00", "status": status,
        "error": None if status == "ok" else status, "backend": backend, "mode": mode,
        "mode_default": mode in ("eager", "hybridized"),
        "device": {"kind": kind, "index": index, "name": machine[1] if kind == "cpu" else "NVIDIA T4"},
        "preset": preset, "threads": threads, "spec": spec.to_dict(), "epochs": rows,
        "summary": {"epochs_done": done, "final_train_ppl": rows[-1]["train_ppl"],
                    "final_val_ppl": rows[-1].get("val_ppl"),
                    "tok_s_median": tok["median"], "tok_s_min": tok["min"], "tok_s_max": tok["max"],
                    "tok_s_iqr": tok["iqr"], "warmup_s": rows[0]["seconds"], "train_s": cumulative[-1],
                    "wall_s": cumulative[-1] + 1, "peak_rss_mb": 300.0, "target_ppl": target,
                    "time_to_target_s": reached[0] if reached else None},
        "samples": {"time traveller": f"time traveller {backend} says |hi| <unk>", "traveller": "traveller x"},
        "env": {"python": "3.11.9", "os": "Linux 6.1", "machine": "x86_64", "hostname": machine[0],
                "cpu_model": machine[1], "cpu_count": 2, "numpy": "1.26.4", "git_commit": commit,
                "framework": {"framework": backend, "version": VERSIONS[backend], "threads": threads,
                              "mkldnn": True}},
    }


def failed_record(backend, mode, **where):
    """A run that failed before its first epoch finished: no epochs, empty summary."""
    record = make_record(backend, mode, status="error", done=1, **where)
    record["error"] = "RuntimeError: out of memory"
    record["epochs"], record["samples"] = [], {}
    record["summary"] = {"epochs_done": 0, **{k: None for k in record["summary"] if k != "epochs_done"}}
    return record


RECORDS = [
    # quick-lstm on alpha's CPU: mxnet is fastest; pytorch ran twice (ok, then diverged)
    make_record("pytorch", "eager", tok_s=2000.0, day=1),
    make_record("pytorch", "eager", tok_s=9000.0, status="diverged", done=4, day=3),
    make_record("mxnet", "hybridized", tok_s=2500.0, day=1),
    make_record("mxnet", "hybridized", tok_s=3000.0, day=2),
    make_record("mxnet", "eager", tok_s=8000.0, status="interrupted", done=2, day=2),
    make_record("jax", "scan", tok_s=9500.0, status="diverged", done=3, day=2),
    # the same preset on another machine, and on alpha's GPU: separate groups
    make_record("pytorch", "eager", machine=BETA, tok_s=5000.0, day=2),
    make_record("pytorch", "eager", device=("gpu", 0), tok_s=50000.0, day=2),
    make_record("mxnet", "hybridized", device=("gpu", 0), tok_s=40000.0, day=2, commit="def5678"),
    failed_record("jax", "scan", device=("gpu", 0), day=2, commit="def5678"),
    # validation perplexity, no target
    make_record("pytorch", "eager", preset="d2l-deep-gru", tok_s=30000.0, done=3, day=2, val=True),
    # the book preset: a full pytorch run reproduces, jax's full run does not, mxnet was interrupted
    make_record("pytorch", "eager", preset="d2l-deep-lstm", tok_s=6000.0, ppl_end=1.05, day=4),
    make_record("pytorch", "eager", preset="d2l-deep-lstm", tok_s=6100.0, epochs=5, day=5),
    make_record("pytorch", "eager", preset="d2l-deep-lstm", machine=BETA, tok_s=6100.0, epochs=5, day=5),
    make_record("jax", "scan", preset="d2l-deep-lstm", tok_s=4000.0, ppl_end=1.3, day=4),
    make_record("mxnet", "hybridized", preset="d2l-deep-lstm", status="interrupted", done=7, day=4),
]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("results") / "runs"
    for record in RECORDS[:-1]:
        append_record(runs / f"{record['backend']}.jsonl", record)
    runs.joinpath("mixed.jsonl").write_text(
        '{"schema": "rnnbench/run/1", "run_id": "cut-off\n'  # line 1: broken
        + json.dumps({"hello": "a foreign line"}) + "\n"     # line 2: not ours
        + json.dumps(RECORDS[-1]) + "\n")                    # line 3: still read
    return runs


@pytest.fixture(scope="module")
def report(results: Path, tmp_path_factory):
    with pytest.warns(UserWarning) as caught:
        path = build_report(results, tmp_path_factory.mktemp("report") / "out")
    return path, [str(w.message) for w in caught]


def _csv(report, name):
    return pd.read_csv(report[0].parent / f"{name}.csv", keep_default_na=False, na_values=[""])


def test_broken_and_foreign_lines_are_skipped_with_file_and_line(report, results):
    messages = report[1]
    assert any(f"{results / 'mixed.jsonl'}:1" in m and "not JSON" in m for m in messages)
    assert any(f"{results / 'mixed.jsonl'}:2" in m and "not an rnnbench run record" in m for m in messages)
    assert len(messages) == 2
    text = report[0].read_text()
    assert "Skipped input" in text and "mixed.jsonl:1" in text


def test_groups_never_mix_machines_devices_or_specs(report):
    table = _csv(report, "throughput")
    groups = table.groupby("group")
    for _, rows in groups:
        assert rows[["preset", "machine", "device", "threads", "overrides"]].nunique().max() == 1
    quick = table[table["preset"] == "quick-lstm"]
    assert quick["group"].nunique() == 3  # alpha cpu, alpha gpu, beta cpu
    deep = table[table["preset"] == "d2l-deep-lstm"]
    assert sorted(deep["overrides"].fillna("")) == ["", "", "", "epochs=5", "epochs=5"]


def test_rows_ratios_and_latest_ok(report):
    table = _csv(report, "throughput")
    alpha = table[(table["preset"] == "quick-lstm") & table["machine"].str.startswith("alpha")
                  & table["device"].str.startswith("cpu")].set_index(["backend", "mode"])
    assert len(alpha) == 4
    assert alpha.loc[("jax", "scan"), "status"] == "diverged" and alpha.loc[("jax", "scan"), "runs"] == "1 diverged"
    assert math.isinf(alpha.loc[("jax", "scan"), "final_train_ppl"])
    mx, pt = alpha.loc[("mxnet", "hybridized")], alpha.loc[("pytorch", "eager")]
    mx_eager = alpha.loc[("mxnet", "eager")]
    assert mx["runs"] == "2 ok" and mx["shown"] == "latest ok of 2"
    assert mx["tok_s_median"] == pytest.approx(3000.0) and mx["vs_fastest"] == pytest.approx(1.0)
    assert pt["runs"] == "1 ok, 1 diverged" and pt["status"] == "ok"  # the later diverged run is not shown
    assert pt["vs_fastest"] == pytest.approx(2000.0 / 3000.0)
    # the interrupted run is faster, but never sets the pace
    assert mx_eager["status"] == "interrupted" and mx_eager["vs_fastest"] == pytest.approx(8000.0 / 3000.0)
    assert list(alpha.index)[:2] == [("mxnet", "hybridized"), ("pytorch", "eager")]  # ok rows first, fastest first
    gru = table[table["preset"] == "d2l-deep-gru"].iloc[0]
    assert gru["final_val_ppl"] == pytest.approx(gru["final_train_ppl"] * 1.1) and gru["epochs_done"] == 3
    beta = table[table["machine"].str.startswith("beta") & (table["preset"] == "quick-lstm")]
    assert len(beta) == 1 and beta["vs_fastest"].iloc[0] == pytest.approx(1.0)
    gpu = table[table["device"].str.startswith("gpu:0")].set_index("backend")
    assert gpu.loc["mxnet", "vs_fastest"] == pytest.approx(0.8)
    assert gpu.loc["jax", "status"] == "error" and math.isnan(gpu.loc["jax", "tok_s_median"])


def test_reproduction_says_yes_no_and_partial(report):
    table = _csv(report, "reproduction")
    deep = table[table["preset"] == "d2l-deep-lstm"]
    book = deep[deep["source"].str.startswith("book")]
    assert sorted(book["who"]) == ["mxnet on gpu", "pytorch on cpu"]
    assert set(book["tok_s"]) == {137071.0, 6503.5}
    here = deep[deep["source"] == "here"].set_index("who")["reproduces"]
    assert here.loc["pytorch eager"].tolist() == ["yes", "partial run: 5 of 500 epochs"]  # alpha (full run), beta
    assert here["jax scan"] == "no"
    assert here["mxnet hybridized"] == "partial run: 7 of 500 epochs, interrupted"
    jay = table[table["preset"] == "jay-gru"]
    assert "not run" in set(jay["reproduces"])


def test_time_to_quality(report):
    table = _csv(report, "time_to_quality")
    deep = table[(table["preset"] == "d2l-deep-lstm")].set_index(["backend", "mode"])
    full = deep[deep["epochs_done"] == 500]
    assert full.loc[("pytorch", "eager"), "result"].endswith(")") and "s (epoch" in full.loc[("pytorch", "eager"),
                                                                                               "result"]
    assert full.loc[("jax", "scan"), "result"] == "not reached in 500 epochs"
    assert set(table["preset"]) == {"d2l-deep-lstm"}  # presets without a target have no row


def test_environments_and_samples(report):
    env = _csv(report, "environments")
    gpu = env[env["device"].str.startswith("gpu:0")].set_index("backend")
    assert gpu.loc["mxnet", "framework_version"] == "1.9.1" and gpu.loc["mxnet", "git_commit"] == "def5678"
    assert gpu.loc["pytorch", "framework_details"] == "mkldnn=True"
    text = report[0].read_text()
    assert "`time traveller mxnet says \\|hi\\| <unk>`" in text  # code span, pipes escaped
    html = (report[0].parent / "REPORT.html").read_text()
    assert "<code>time traveller mxnet says |hi| &lt;unk&gt;</code>" in html


def test_plots_written_and_linked(report):
    path = report[0]
    pngs = sorted((path.parent / "plots").glob("*.png"))
    groups = _csv(report, "throughput")["group"].nunique()
    assert len(pngs) == 2 * groups
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
    text = path.read_text()
    for png in pngs:
        assert f"](plots/{png.name})" in text
    assert f"src='plots/{pngs[0].name}'" in (path.parent / "REPORT.html").read_text()


def test_since_and_commit_filters(results, tmp_path):
    with pytest.warns(UserWarning):
        build_report(results, tmp_path / "a", since="2024-05-04")
    assert set(_csv((tmp_path / "a" / "REPORT.md",), "throughput")["preset"]) == {"d2l-deep-lstm"}
    with pytest.warns(UserWarning):
        build_report(results, tmp_path / "b", commit="def")
    table = _csv((tmp_path / "b" / "REPORT.md",), "throughput")
    assert list(table["backend"]) == ["mxnet", "jax"]


def test_cli_entry(results, tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    add_report_arguments(parser)
    assert run_report(parser.parse_args(["--results", str(results), "--out", str(tmp_path / "o")])) == 0
    captured = capsys.readouterr()
    assert "mixed.jsonl:1" in captured.err and (tmp_path / "o" / "REPORT.html").is_file()
    assert run_report(parser.parse_args(["--results", str(tmp_path / "missing")])) == 2
    assert run_report(parser.parse_args(["--results", str(results), "--since", "yesterday"])) == 2


def test_empty_results_folder(tmp_path):
    (tmp_path / "runs").mkdir()
    path = build_report(tmp_path / "runs", tmp_path / "out")
    assert "0 record(s)" in path.read_text()
    assert (tmp_path / "out" / "throughput.csv").is_file()
