"""The verdict on synthetic campaigns: a planted difference is found inside the machine's
drift, an A/A pair is a tie, campaigns and machines are never pooled, `compare` calls
A/A `same` and 1 thread against 2 `slower`, and bad references get one line."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

pytest.importorskip("pandas")
pytest.importorskip("scipy")
pytest.importorskip("matplotlib")

from benchmarks.cli import main  # noqa: E402
from benchmarks.report import build_report  # noqa: E402
from tests.fake_records import append_record, record, write  # noqa: E402

ROUNDS = 7
DRIFT = np.random.default_rng(7).uniform(0.8, 1.2, ROUNDS)  # the VM's +-20%, the same for everyone in a round


def noisy(scale, spread, seed):
    return scale * DRIFT * np.random.default_rng(seed).uniform(1 - spread, 1 + spread, ROUNDS)


def headline(tmp_path, folder, campaign=None):
    build_report(folder, tmp_path / "out", campaign=campaign)
    return json.loads((tmp_path / "out" / "summary.json").read_text())


def test_a_planted_ten_percent_difference_is_found_inside_the_drift(tmp_path):
    runs = write(tmp_path / "runs", record("pytorch", "c1", noisy(50_000, 0.01, 1)),
                 record("mxnet", "c1", noisy(45_000, 0.01, 2)), record("jax", "c1", noisy(50_000, 0.01, 3)))
    rows = {r["backend"]: r for r in headline(tmp_path, runs)["rows"]}
    assert rows["mxnet"]["verdict"] == "slower"
    lo, hi = rows["mxnet"]["ratio_ci"]
    assert lo < 0.9 < hi < 0.97
    assert {rows["pytorch"]["verdict"], rows["jax"]["verdict"]} == {"tie"}  # the A/A pair
    assert rows["mxnet"]["rounds"] == ROUNDS
    # the drift alone spans +-20%: unpaired, tok/s intervals overlap though the ratio is clear
    assert rows["mxnet"]["tok_s_ci"][1] > rows["pytorch"]["tok_s_ci"][0]


def test_fastest_only_when_every_other_row_is_slower(tmp_path):
    runs = write(tmp_path / "runs", record("pytorch", "c1", noisy(60_000, 0.01, 1)),
                 record("mxnet", "c1", noisy(45_000, 0.01, 2)))
    rows = {r["backend"]: r for r in headline(tmp_path, runs)["rows"]}
    assert rows["pytorch"]["verdict"] == "fastest" and rows["pytorch"]["ratio_to_fastest"] == 1.0
    assert rows["mxnet"]["ratio_to_fastest"] == pytest.approx(0.75, abs=0.02)


def test_a_diverged_row_is_never_fastest(tmp_path):
    runs = write(tmp_path / "runs", record("pytorch", "c1", noisy(90_000, 0.01, 1), status="diverged"),
                 record("mxnet", "c1", noisy(45_000, 0.01, 2)), record("jax", "c1", noisy(30_000, 0.01, 3)))
    rows = {r["backend"]: r for r in headline(tmp_path, runs)["rows"]}
    assert rows["pytorch"]["verdict"] == "diverged"
    assert rows["mxnet"]["verdict"] == "fastest" and rows["jax"]["verdict"] == "slower"


def test_campaigns_and_machines_are_never_pooled(tmp_path):
    runs = write(tmp_path / "runs",
                 record("pytorch", "mine", noisy(12_000, 0.01, 1), fingerprint="fp-slow",
                        stamp="2026-12-02T10:00:00+00:00"),
                 record("mxnet", "mine", noisy(11_000, 0.01, 2), fingerprint="fp-slow",
                        stamp="2026-12-02T10:00:00+00:00"),
                 record("jax", "reference", noisy(67_000, 0.01, 3), fingerprint="fp-fast"))
    summary = headline(tmp_path, runs)
    assert summary["campaign"] == "mine" and summary["machine"]["id"] == "fp-slow"  # the newest leads
    assert {r["backend"] for r in summary["rows"]} == {"pytorch", "mxnet"}
    assert {r["backend"]: r["verdict"] for r in summary["rows"]} == {"pytorch": "fastest", "mxnet": "slower"}
    text = (tmp_path / "out" / "REPORT.md").read_text()
    assert text.index("Campaign mine (this report's)") < text.index("Campaign reference")


def campaign_pair(tmp_path, new_scale, new_threads=2, new_fp="fp-alpha"):
    backends = ["pytorch", "jax"]
    base = write(tmp_path / "base", *[record(b, "base", noisy(50_000, 0.03, i)) for i, b in enumerate(backends)])
    new = write(tmp_path / "new", *[record(b, "new", noisy(50_000 * new_scale, 0.03, 10 + i), threads=new_threads,
                                           fingerprint=new_fp, stamp="2026-12-02T10:00:00+00:00")
                                    for i, b in enumerate(backends)])
    return base, new


def compare(capsys, *args):
    code = main(["compare", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_compare_a_a_is_same_and_one_thread_is_slower(tmp_path, capsys):
    base, new = campaign_pair(tmp_path, 1.04)  # 4% drift between campaigns: within the 10% minimum
    code, out, _ = compare(capsys, base, new, "--json")
    assert code == 0
    assert {r["verdict"] for r in json.loads(out)["rows"]} == {"same"}
    slow = tmp_path / "slow"
    slow.mkdir()
    base, new = campaign_pair(slow, 0.55, new_threads=1)
    code, out, _ = compare(capsys, base, new, "--json")
    rows = json.loads(out)["rows"]
    assert code == 0 and {r["verdict"] for r in rows} == {"slower"}
    assert all(r["ratio_ci"][1] < 0.9 and r["threads"] == [2, 1] for r in rows)


def test_compare_refuses_other_machines_unless_forced(tmp_path, capsys):
    base, new = campaign_pair(tmp_path, 0.3, new_fp="fp-beta")
    code, _, err = compare(capsys, base, new)
    assert code == 2 and err.startswith("error: will not compare base with new: BASE ran on machine fp-alpha")
    assert err.count("\n") == 1 and "--force" in err
    code, out, _ = compare(capsys, base, new, "--force")
    assert code == 0 and "slower" in out


def test_compare_by_campaign_id_and_bad_references(tmp_path, capsys):
    base, new = campaign_pair(tmp_path, 1.0)
    code, out, _ = compare(capsys, "base", "new", "--results", base, "--results", new, "--json")
    assert code == 0 and json.loads(out)["base"] == "base"
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    for args, message in [(("nope", "new", "--results", new), "'nope' is not a campaign there"),
                          ((empty, new), "holds no run records"),
                          ((tmp_path / "notes.txt", new), "holds no run records"),
                          ((base, new, "--min-effect", "2"), "must be a fraction")]:
        code, _, err = compare(capsys, *args)
        assert code == 2 and message in err and err.count("\n") == 1, err


def test_report_bad_input_gets_one_line(tmp_path, capsys):
    base, _ = campaign_pair(tmp_path, 1.0)
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "README.md").write_text("# not records")
    (tmp_path / "a-file").write_text("x")
    for args, message in [(("--results", empty), "no run records"),
                          (("--results", tmp_path / "README.md"), "is not a folder of run records"),
                          (("--results", base, "--campaign", "nope"), "no campaign 'nope'"),
                          (("--results", base, "--out", tmp_path / "a-file"), "is a file")]:
        code = main(["report", *map(str, args)])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, err
    assert (base / "pytorch.jsonl").read_text().count("\n") == 1  # nothing rewritten


def test_a_nameless_or_repeated_record_is_not_a_row(tmp_path):
    good = record("pytorch", "c1", noisy(50_000, 0.01, 1))
    nameless = {**record("mxnet", "c1", noisy(40_000, 0.01, 2)), "backend": None, "run_id": "nameless"}
    runs = write(tmp_path / "runs", good, good, record("jax", "c1", noisy(40_000, 0.01, 3)))
    append_record(runs / "other.jsonl", nameless)
    with pytest.warns(UserWarning) as caught:
        summary = headline(tmp_path, runs)
    messages = " ".join(str(w.message) for w in caught)
    assert "recorded more than once; counted once" in messages and "`backend` is None" in messages
    assert sorted(r["backend"] for r in summary["rows"]) == ["jax", "pytorch"]
    import pandas as pd

    table = pd.read_csv(tmp_path / "out" / "throughput.csv")
    assert sorted(table["backend"]) == ["jax", "pytorch"]
    assert table.loc[table["backend"] == "pytorch", "runs"].item() == "1 ok"


def test_utilisation_above_the_ceiling_is_flagged_not_printed(tmp_path):
    over = record("pytorch", "c1", noisy(50_000, 0.01, 1))
    over["summary"]["peak_flops"] = 1e9  # 1e6 FLOPs/token x 50,000 tok/s = 5e10 FLOP/s: 50x this peak
    runs = write(tmp_path / "runs", over)
    [row] = headline(tmp_path, runs)["rows"]
    assert row["utilisation"] is None and "measurement error" in row["utilisation_flag"]
    text = (tmp_path / "out" / "REPORT.md").read_text()
    assert "over 100%: measurement error" in text and "5000%" not in text and "4999%" not in text


def test_a_row_that_misses_the_target_is_never_ranked(tmp_path):
    """jay-deep as measured: the fastest backend ended far above the book's perplexity."""
    fast = record("jax", "c1", noisy(28_000, 0.01, 1), preset="jay-deep")
    fast["summary"]["final_train_ppl"] = 11.8
    rows = [fast] + [record(b, "c1", noisy(21_000, 0.01, i), preset="jay-deep")
                     for i, b in enumerate(["pytorch", "mxnet"])]
    for r in rows[1:]:
        r["summary"]["final_train_ppl"] = 1.04
    summary = headline(tmp_path, write(tmp_path / "runs", *rows))
    verdicts = {r["backend"]: (r["verdict"], r["reached_target"]) for r in summary["rows"]}
    assert verdicts["jax"] == ("missed target", False)
    assert {verdicts["pytorch"][0], verdicts["mxnet"][0]} == {"tie"} and verdicts["mxnet"][1] is True


def test_a_modified_spec_has_no_target_to_miss(tmp_path):
    """The book suite's 30-epoch runs of the book's own loop: no target applies."""
    rows = [record("pytorch", "c1", noisy(50_000, 0.01, 1), preset="d2l-deep-lstm"),
            record("mxnet", "c1", noisy(35_000, 0.01, 2), preset="d2l-deep-lstm")]
    for r in rows:
        r["spec"]["train"]["epochs"] = 30
        r["summary"]["final_train_ppl"] = 17.4
    rows.append(record("jax", "c1", noisy(40_000, 0.01, 3), preset="jay-gru"))  # a preset as written, with a target
    rows[-1]["summary"]["final_train_ppl"] = 1.04
    summary = headline(tmp_path, write(tmp_path / "runs", *rows))
    summary["rows"] = [r for r in summary["rows"] if r["preset"] == "d2l-deep-lstm"]
    assert {r["backend"]: (r["verdict"], r["reached_target"]) for r in summary["rows"]} == {
        "pytorch": ("fastest", None), "mxnet": ("slower", None)}


def test_ceiling_is_the_best_matmul_of_this_campaign_only(tmp_path):
    """The ceiling is one number per campaign: the best matmul any framework measured in
    it with any library (PyTorch's packed oneDNN `own peak` here, above every plain
    `a @ b`), never another campaign's peak."""
    rates = noisy(40_000, 0.01, 3)  # 1e6 FLOPs/token -> 4e10 FLOP/s
    runs = write(tmp_path / "runs",
                 record("pytorch", "c1", rates, peak=1e11, own=8e11, stamp="2026-12-01T10:00:00+00:00"),
                 record("jax", "c1", rates, peak=2e11, stamp="2026-12-01T10:00:00+00:00"),
                 record("mxnet", "c0", rates, peak=9e11, stamp="2026-11-01T10:00:00+00:00"))
    rows = headline(tmp_path, runs, campaign="c1")["rows"]
    for row in rows:
        assert row["utilisation"] == pytest.approx(row["tok_s"] * 1e6 / 8e11)
    text = (tmp_path / "out" / "REPORT.md").read_text()
    assert "ceiling (best float32 matmul any framework measured in the campaign, any library) 800.0 GFLOP/s" in text
    throughput = (tmp_path / "out" / "throughput.csv").read_text().splitlines()
    assert any(",800000000000.0," in line for line in throughput)  # pytorch's own peak, shown apart


def test_tracks_are_labelled_and_the_speedup_is_stated(tmp_path):
    """Every headline row says its track (table, summary.json), and each preset states each
    backend's out-of-box -> tuned speedup."""
    runs = write(tmp_path / "runs",
                 record("pytorch", "c1", noisy(30_000, 0.01, 1), mode="eager", track="tuned"),
                 record("pytorch", "c1", noisy(20_000, 0.01, 2), mode="nn", track="out-of-box"),
                 record("mxnet", "c1", noisy(10_000, 0.01, 3), mode="book", track="book"))
    rows = headline(tmp_path, runs)["rows"]
    assert {(r["mode"], r["track"]) for r in rows} == {("eager", "tuned"), ("nn", "out-of-box"), ("book", "book")}
    text = (tmp_path / "out" / "REPORT.md").read_text()
    assert re.search(r"\| backend \(mode\) +\| track +\|", text)
    assert re.search(r"\| pytorch/out-of-box \(`nn`\) +\| out-of-box +\|", text)
    speedup = {r["mode"]: r["tok_s"] for r in rows}
    assert f"out-of-box → tuned (tok/s ratio): pytorch {speedup['eager'] / speedup['nn']:.2f}×" in text
