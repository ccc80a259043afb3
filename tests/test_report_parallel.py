"""The report's data-parallel scaling table: efficiency from paired rounds, the
1-worker baseline in the same mode and campaign, the section only when there are
worker runs."""

from __future__ import annotations

import math

import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("scipy")
pytest.importorskip("matplotlib")

from benchmarks.report.parallel import display, workers_blocks, workers_table  # noqa: E402

SPEC = {"train": {"batch_size": 32, "num_steps": 35}}


def _run(workers: int, rates: list[float], mode: str = "nn", campaign: str = "c1", comm: float = math.nan,
         status: str = "ok") -> dict:
    epochs = [{"round": 0, "tokens": 1000, "seconds": 1.0}]  # the warm-up never counts
    epochs += [{"round": r + 1, "tokens": rate * 2, "seconds": 2.0} for r, rate in enumerate(rates)]
    return {"campaign": campaign, "preset_label": "quick-lstm", "device": "cpu", "spec_key": "k", "backend": "pytorch",
            "workers": workers, "mode": mode, "status": status, "timestamp": pd.Timestamp("2026-12-01"),
            "epoch_list": epochs, "spec": SPEC, "engine": "torch.distributed/gloo" if workers > 1 else "",
            "comm_s": comm}


def test_efficiency_is_tok_s_at_n_over_n_times_tok_s_at_1_per_round():
    runs = pd.DataFrame([_run(1, [100, 200, 400]), _run(2, [150, 300, 600], comm=0.002),
                         _run(1, [1, 1, 1], mode="eager")])  # another mode: never the baseline
    table = workers_table(runs)
    assert len(table) == 1
    row = table.iloc[0]
    assert row["efficiency"] == pytest.approx(0.75) and row["rounds_paired"] == 3
    assert math.isnan(row["efficiency_lo"]) and row["tok_s_1"] == pytest.approx(200)  # 3 rounds: no 95% interval
    assert row["tok_s_n"] == pytest.approx(300)
    assert row["comm_share"] == pytest.approx(0.002 * 300 / (32 * 35))
    shown = display(table).iloc[0]
    assert shown["efficiency"].startswith("0.75") and shown["all-reduce"] == "2.00 ms"


def test_runs_of_other_campaigns_are_not_paired():
    table = workers_table(pd.DataFrame([_run(1, [100, 100], campaign="a"), _run(2, [150, 150], campaign="b")]))
    assert table["efficiency"].isna().all() and (table["rounds_paired"] == 0).all()


def test_no_worker_runs_no_section(tmp_path):
    table = workers_table(pd.DataFrame([_run(1, [100, 100])]))
    assert table.empty and workers_blocks(table, tmp_path) == []


def test_the_section_has_a_table_and_a_plot(tmp_path):
    table = workers_table(pd.DataFrame([_run(1, [100, 110]), _run(2, [150, 160])]))
    blocks = workers_blocks(table, tmp_path)
    kinds = [b[0] for b in blocks]
    assert kinds[:2] == ["h", "p"] and "table" in kinds and "img" in kinds
    assert (tmp_path / next(b for b in blocks if b[0] == "img")[1]).is_file()
    assert "not a speed-up" in blocks[1][1]
