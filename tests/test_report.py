"""The report from a small fixed set of records written here (no framework needed)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

pytest.importorskip("pandas")
pytest.importorskip("matplotlib")
pytest.importorskip("tabulate")

import pandas as pd  # noqa: E402

from benchmarks.report import add_report_arguments, build_report, run_report  # noqa: E402
from benchmarks.report.tables import scaling_point  # noqa: E402
from common.flops import forward_flops_per_token, recurrent_train_flops_per_token, train_flops_per_token  # noqa: E402
from common.metrics import steady_state  # noqa: E402
from common.records import SCHEMA, append_record  # noqa: E402
from common.specs import load_preset  # noqa: E402

VERSIONS = {"pytorch": "2.3.0", "mxnet": "1.9.1", "jax": "0.4.30"}
ALPHA = ("alpha", "Intel Xeon E5-2680")
VOCAB = 28
BETA = ("beta", "AMD EPYC 7B12")


def make_record(backend, mode, *, preset="quick-lstm", status="ok", machine=ALPHA, device=("cpu", 0),
                tok_s=1000.0, done=None, epochs=None, ppl_end=2.0, day=1, threads=2, commit="abc1234", val=False,
                peak=None, sets=(), tag=None, rss=300.0, campaign=None):
    """A record as the harness writes it: geometric perplexity decay, warm-up epoch 3x slower;
    `peak` is the run's matmul FLOP/s, `sets` spec overrides, `tag` the run's tag."""
    spec, meta = load_preset(preset)
    spec = spec.with_overrides([*([f"epochs={epochs}"] if epochs else []), *sets])
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
        "schema": SCHEMA, "run_id": f"{backend}-{mode}-{preset}-{machine[0]}-{kind}{index}-{status}-{day}-{done}"
                                    + "".join(f"-{s}" for s in sets) + (f"-{tag}" if tag else ""),
        "timestamp": f"2024-05-{day:02d}T10:00:00+00:00", "status": status,
        "error": None if status == "ok" else status, "backend": backend, "mode": mode,
        "mode_default": mode in ("eager", "hybridized"),
        "device": {"kind": kind, "index": index, "name": machine[1] if kind == "cpu" else "NVIDIA T4"},
        "preset": preset, "threads": threads, "spec": spec.to_dict(), "epochs": rows,
        "campaign": {"id": campaign or f"c-{machine[0]}", "rounds": 1},
        **({"tag": tag} if tag else {}),
        "summary": {"epochs_done": done, "final_train_ppl": rows[-1]["train_ppl"],
                    "final_val_ppl": rows[-1].get("val_ppl"),
                    "tok_s_median": tok["median"], "tok_s_min": tok["min"], "tok_s_max": tok["max"],
                    "tok_s_iqr": tok["iqr"], "warmup_s": rows[0]["seconds"], "train_s": cumulative[-1],
                    "wall_s": cumulative[-1] + 1, "peak_rss_mb": rss, "target_ppl": target,
                    "time_to_target_s": reached[0] if reached else None,
                    "train_flops_per_token": train_flops_per_token(spec.model, VOCAB),
                    "achieved_flops": train_flops_per_token(spec.model, VOCAB) * tok["median"],
                    "peak_flops": peak},
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
    # quick-lstm on alpha's CPU: mxnet is fastest; pytorch ran twice (ok, then diverged);
    # the best matmul peak (the group's ceiling) comes from mxnet's older run
    make_record("pytorch", "eager", tok_s=2000.0, day=1, peak=2e11),
    make_record("pytorch", "eager", tok_s=9000.0, status="diverged", done=4, day=3),
    make_record("mxnet", "hybridized", tok_s=2500.0, day=1, peak=5e11),
    make_record("mxnet", "hybridized", tok_s=3000.0, day=2, peak=4e11),
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
    # scaling runs (tagged): never in the main tables; jax's peak is the machine's best
    make_record("pytorch", "eager", tag="scaling", epochs=3, tok_s=40000.0, rss=500.0),
    make_record("pytorch", "eager", tag="scaling", epochs=3, sets=["batch_size=1"], tok_s=10000.0, rss=490.0),
    make_record("jax", "scan", tag="scaling", epochs=3, tok_s=38000.0, peak=6e11, rss=400.0),
    make_record("jax", "scan", tag="scaling", epochs=3, sets=["batch_size=1"], tok_s=15000.0, rss=410.0),
    make_record("jax", "scan", tag="scaling", epochs=3, sets=["num_hiddens=1024"], tok_s=4000.0, rss=700.0),
    make_record("jax", "scan", tag="scaling", epochs=3, sets=["num_hiddens=1024", "batch_size=4"], tok_s=999.0),
    make_record("pytorch", "eager", preset="quick-gru", tag="scaling", epochs=3, sets=["batch_size=64"],
                tok_s=50000.0),
    make_record("mxnet", "hybridized", preset="d2l-deep-lstm", status="interrupted", done=7, day=4),
]
SCALING_IDS = {r["run_id"] for r in RECORDS if r.get("tag") == "scaling"}


def bench_entry(backend, cell, mode, kind, median, default=False, peak=None):
    """One benchmark as pytest-benchmark writes it, with benchmarks/micro's extra_info."""
    model = load_preset("d2l-deep-lstm")[0].with_overrides([f"cell={cell}"]).model
    per_token = {"train": train_flops_per_token(model, VOCAB), "generate": forward_flops_per_token(model, VOCAB),
                 "recurrent": recurrent_train_flops_per_token(model, VOCAB)}[kind]
    return {"group": f"{kind} {cell}", "name": f"{kind}-{backend}-{cell}-{mode}", "params": {"kind": kind},
            "extra_info": {"backend": backend, "cell": cell, "mode": mode, "mode_default": default, "kind": kind,
                           "device": "cpu", "threads": 2, "framework_version": VERSIONS[backend],
                           "tokens_per_call": 1 if kind == "generate" else 1120, "flops_per_token": per_token,
                           "matmul_peak": peak},
            "stats": {"min": median * 0.9, "max": median * 1.2, "mean": median, "median": median,
                      "iqr": median * 0.05, "rounds": 20, "iterations": 1}}


def bench_file(*benchmarks):
    return {"machine_info": {"node": "alpha", "cpu": {"brand_raw": ALPHA[1]}}, "benchmarks": list(benchmarks),
            "datetime": "2024-05-02T10:00:00+00:00", "version": "5.3.1"}


MICRO = {
    "pytorch.json": bench_file(bench_entry("pytorch", "lstm", "eager", "train", 0.028, default=True, peak=4e11),
                               bench_entry("pytorch", "lstm", "compile", "train", 0.0224, peak=4e11),
                               bench_entry("pytorch", "lstm", "eager", "generate", 0.0004, default=True, peak=4e11),
                               bench_entry("pytorch", "lstm", "eager", "recurrent", 0.02, default=True, peak=4e11)),
    "mxnet.json": bench_file(bench_entry("mxnet", "lstm", "hybridized", "train", 0.056, default=True, peak=4.4e11)),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("results") / "runs"
    for record in RECORDS[:-1]:
        append_record(runs / f"{record['backend']}.jsonl", record)
    runs.joinpath("mixed.jsonl").write_text(
        '{"schema": "rnnbench/run/1", "run_id": "cut-off\n'  # line 1: broken
        + json.dumps({"hello": "a foreign line"}) + "\n"     # line 2: not ours
        + json.dumps(RECORDS[-1]) + "\n")                    # line 3: still read
    micro = runs.parent / "microbench"  # where `nox -s microbench` writes, beside runs/
    micro.mkdir()
    for name, data in MICRO.items():
        micro.joinpath(name).write_text(json.dumps(data))
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
    assert len(messages) == 1  # one warning per file, naming each bad line
    assert messages[0].startswith(f"{results / 'mixed.jsonl'}: 2 of 3 lines skipped")
    assert "line 1: not JSON" in messages[0] and "line 2: not an rnnbench run record" in messages[0]
    text = report[0].read_text()
    assert "Skipped input" in text and "mixed.jsonl: 2 of 3 lines skipped" in text


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
    assert not math.isfinite(alpha.loc[("jax", "scan"), "final_train_ppl"])  # inf, recorded as null
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
    assert len(pngs) == 3 * groups  # perplexity, tok/s and the verdict (forest) plot
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
    text = path.read_text()
    for png in pngs:
        assert f"](plots/{png.name})" in text
    assert f'src="plots/{pngs[0].name}"' in (path.parent / "REPORT.html").read_text()


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
    assert "mixed.jsonl: 2 of 3 lines skipped (line 1: not JSON" in captured.err
    assert (tmp_path / "o" / "REPORT.html").is_file()
    assert run_report(parser.parse_args(["--results", str(tmp_path / "missing")])) == 2
    assert run_report(parser.parse_args(["--results", str(results), "--since", "yesterday"])) == 2


def test_empty_results_folder(tmp_path):
    (tmp_path / "runs").mkdir()
    path = build_report(tmp_path / "runs", tmp_path / "out")
    assert "0 record(s)" in path.read_text()
    assert (tmp_path / "out" / "throughput.csv").is_file()


def test_utilisation_against_the_groups_best_peak(report):
    table = _csv(report, "throughput")
    alpha = table[(table["preset"] == "quick-lstm") & table["machine"].str.startswith("alpha")
                  & table["device"].str.startswith("cpu")].set_index(["backend", "mode"])
    per_token = train_flops_per_token(load_preset("quick-lstm")[0].model, VOCAB)
    pt, mx = alpha.loc[("pytorch", "eager")], alpha.loc[("mxnet", "hybridized")]
    assert pt["train_flops_per_token"] == per_token and pt["achieved_flops"] == pytest.approx(per_token * 2000.0)
    assert pt["peak_flops"] == 2e11 and mx["peak_flops"] == 4e11  # each run's own peak
    assert pt["ceiling_flops"] == mx["ceiling_flops"] == 5e11      # the best in the group, any record
    assert pt["of_ceiling"] == pytest.approx(per_token * 2000.0 / 5e11)
    assert mx["of_ceiling"] == pytest.approx(per_token * 3000.0 / 5e11)
    beta = table[table["machine"].str.startswith("beta") & (table["preset"] == "quick-lstm")].iloc[0]
    assert math.isnan(beta["ceiling_flops"]) and math.isnan(beta["of_ceiling"])  # no peak measured there
    text = report[0].read_text()
    assert "| GFLOP/s" in text and "own peak GFLOP/s" in text and "of ceiling" in text
    assert f"| {per_token * 2000.0 / 1e9:,.1f} " in text and f"| {100 * per_token * 2000.0 / 5e11:.0f}% " in text
    assert "3 × forward − 2·G·h·V" in text and "the MFU convention" in text  # the formula is stated


def test_scaling_runs_stay_out_of_the_main_tables(report):
    for name in ("throughput", "time_to_quality"):
        assert not set(_csv(report, name)["run_id"]) & SCALING_IDS, name
    for name in ("throughput", "environments"):
        assert "quick-gru" not in set(_csv(report, name)["preset"]), name  # only scaling runs used quick-gru
    assert "batch_size=1" not in report[0].read_text().split("## 5. Scaling curves")[0]


def test_scaling_table_places_each_run_on_its_curve(report):
    table = _csv(report, "scaling")
    assert set(table["run_id"]) == SCALING_IDS and set(table["sgroup"]) == {"S1"}
    lstm = table[table["preset"] == "quick-lstm"]
    points = sorted(zip(lstm["backend"], lstm["axis"], lstm["value"].fillna(-1), strict=True))
    assert points == [("jax", "batch_size", 1.0, ), ("jax", "num_hiddens", 1024.0), ("jax", "other", -1),
                      ("jax", "preset", -1), ("pytorch", "batch_size", 1.0), ("pytorch", "preset", -1)]
    jax_base = lstm[(lstm["backend"] == "jax") & (lstm["axis"] == "preset")].iloc[0]
    per_token = train_flops_per_token(load_preset("quick-lstm")[0].model, VOCAB)
    assert jax_base["ceiling_flops"] == 6e11  # the machine's best peak, scaling runs included
    assert jax_base["of_ceiling"] == pytest.approx(per_token * 38000.0 / 6e11)
    gru = table[table["preset"] == "quick-gru"].iloc[0]
    assert (gru["cell"], gru["axis"], gru["value"]) == ("gru", "batch_size", 64.0)


def test_scaling_section_tables_and_plots(report):
    path = report[0]
    text = path.read_text()
    section = text.split("## 5. Scaling curves")[1].split("## 6.")[0]
    pngs = sorted((path.parent / "plots" / "scaling").glob("*.png"))
    assert [p.name for p in pngs] == ["S1-quick-gru-scaling.png", "S1-quick-lstm-scaling.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
    for png in pngs:
        assert f"](plots/scaling/{png.name})" in section
    per_token = train_flops_per_token(load_preset("quick-lstm")[0].model, VOCAB)
    share = f"{100 * per_token * 15000.0 / 6e11:.0f}%"
    assert "Varying batch size:" in section and "Varying hidden units:" in section
    assert "| jax tok/s (of ceiling)" in section and "| pytorch peak MB" in section
    assert "| 1 " in section and f"15,000 ({share})" in section and "| 410 " in section
    assert "| 32 " in section and "40,000" in section  # the preset's own run is on every curve
    assert "Not on a curve" in section and "batch_size=4" in section and "num_hiddens=1024" in section


def test_scaling_point():
    base = load_preset("quick-lstm")[0].to_dict()
    spec = load_preset("quick-lstm")[0].with_overrides(["epochs=3"]).to_dict()
    assert scaling_point(spec, base)[0] == "preset"
    spec = load_preset("quick-lstm")[0].with_overrides(["epochs=3", "num_layers=4"]).to_dict()
    assert scaling_point(spec, base) == ("num_layers", 4.0)
    spec = load_preset("quick-lstm")[0].with_overrides(["lr=1"]).to_dict()
    assert scaling_point(spec, base)[0] == "other"
    assert scaling_point(spec, None)[0] == "other"


def test_microbench_table_and_section(report):
    table = _csv(report, "microbench").set_index(["backend", "mode", "kind"])
    eager = table.loc[("pytorch", "eager", "train")]
    assert eager["tok_s"] == pytest.approx(1120 / 0.028)
    assert eager["flops_s"] == pytest.approx(1120 / 0.028 * eager["flops_per_token"])
    assert table.loc[("pytorch", "compile", "train"), "vs_fastest"] == pytest.approx(1.0)
    assert eager["vs_fastest"] == pytest.approx(0.0224 / 0.028)
    assert table.loc[("mxnet", "hybridized", "train"), "vs_fastest"] == pytest.approx(0.0224 / 0.056)
    assert table.loc[("pytorch", "eager", "generate"), "vs_fastest"] == pytest.approx(1.0)  # own step kind
    assert list(_csv(report, "microbench")["kind"]) == ["train"] * 3 + ["recurrent", "generate"]
    # the ceiling is the best peak of the machine's files (MXNet's 440 GFLOP/s here)
    assert eager["of_ceiling"] == pytest.approx(eager["flops_s"] / 4.4e11)
    recurrent = table.loc[("pytorch", "eager", "recurrent")]
    # forward, weight and input gradients, less the one-hot input's gradient (2 * 4 * 256 * 28)
    needed = 3 * 2 * 4 * 256 * (28 + 256 + 256 + 256) - 2 * 4 * 256 * 28
    assert recurrent["flops_s"] == pytest.approx(1120 / 0.02 * needed)
    assert recurrent["of_ceiling"] == pytest.approx(recurrent["flops_s"] / 4.4e11)
    section = re.sub(r" +", " ", report[0].read_text().split("## 6. Micro-benchmarks")[1].split("## Sample")[0])
    assert "cpu on alpha (Intel Xeon E5-2680) · 2 threads" in section
    assert "| train | lstm | pytorch | compile | 22.4 |" in section
    assert "| train | lstm | pytorch | eager (default) | 28.0 | 25.2 | 1120 | 40,000 | 195.1 | 44% | 0.80 |" in section
    assert ("| recurrent | lstm | pytorch | eager (default) | 20.0 | 18.0 | 1120 | 56,000 | 270.7 | 62% "
            "| 1.00 (fastest) |") in section
    assert "| generate | lstm | pytorch | eager (default) | 0.4 | 0.36 | 1 | 2,500 |" in section


def test_microbench_skips_foreign_and_broken_json(tmp_path):
    (tmp_path / "runs").mkdir()
    micro = tmp_path / "microbench"
    micro.mkdir()
    micro.joinpath("broken.json").write_text("{not json")
    foreign = bench_file(bench_entry("jax", "gru", "scan", "train", 0.02))
    foreign["benchmarks"].append({"name": "test_other", "extra_info": {}, "stats": {"median": 1.0}})
    micro.joinpath("jax.json").write_text(json.dumps(foreign))
    with pytest.warns(UserWarning) as caught:
        path = build_report(tmp_path / "runs", tmp_path / "out")
    messages = [str(w.message) for w in caught]
    assert any("broken.json" in m and "not pytest-benchmark JSON" in m for m in messages)
    assert any("'test_other'" in m and "not an rnnbench micro-benchmark" in m for m in messages)
    assert len(_csv((path,), "microbench")) == 1
    assert "No micro-benchmark results." not in path.read_text()
    assert "No scaling runs recorded." in path.read_text()


def test_only_the_current_default_mode_is_labelled_default(tmp_path):
    """A backend whose default changed (jax: scan, later wavefront) keeps its old runs,
    but only the newest default is labelled so."""
    from benchmarks.report.data import load_runs

    old = {**make_record("jax", "scan", day=1), "mode_default": True}
    new = {**make_record("jax", "wavefront", day=3), "mode_default": True}
    other = make_record("jax", "scan-unroll", day=4)  # not a default
    for record in (old, new, other):
        append_record(tmp_path / "runs" / "jax.jsonl", record)
    runs = load_runs(tmp_path / "runs")
    assert dict(zip(runs["mode"], runs["mode_default"], strict=True)) == {
        "scan": False, "wavefront": True, "scan-unroll": False}


def test_word_level_perplexity_keeps_the_papers_decimal():
    """The paper's 120.7 / 114.5 sit beside ours: a ppl of 117.44 must not print as 117."""
    from benchmarks.report.display import ppl
    assert [ppl(1.02734), ppl(117.438), ppl(320.04), ppl(12_345.6)] == ["1.027", "117.4", "320.0", "12,346"]
