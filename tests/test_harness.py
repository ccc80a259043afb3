"""Harness bookkeeping that needs no framework: summaries, targets, thread fairness."""

import pytest

from benchmarks.run.harness import RunRequest, summarise, thread_warnings, time_to_target, utilisation
from common.specs import RunSpec


def epochs(ppls, seconds=2.0, tokens=1000):
    return [{"epoch": i + 1, "train_ppl": p, "tokens": tokens, "seconds": seconds, "tok_s": tokens / seconds}
            for i, p in enumerate(ppls)]


def test_time_to_target_counts_training_seconds_until_first_reached():
    rows = epochs([5.0, 2.0, 1.09, 1.2, 1.05])
    assert time_to_target(rows, {"target_ppl": 1.1}) == pytest.approx(6.0)
    assert time_to_target(rows, {"target_ppl": 1.0}) is None
    assert time_to_target(rows, {}) is None
    rows[1]["val_ppl"] = 1.5
    assert time_to_target(rows, {"target_ppl": 1.6, "metric": "val_ppl"}) == pytest.approx(4.0)


def test_summary_separates_warmup_from_steady_state():
    rows = epochs([9.0, 5.0, 3.0])
    rows[0]["seconds"], rows[0]["tok_s"] = 10.0, 100.0  # compile
    s = summarise(rows, {}, sum(r["seconds"] for r in rows))
    assert s["warmup_s"] == 10.0 and s["tok_s_median"] == 500.0 and s["final_train_ppl"] == 3.0


def test_utilisation_is_model_flops_times_throughput_over_peak():
    u = utilisation(RunSpec(), 28, 1000.0, 1e10)
    assert u["achieved_flops"] == u["train_flops_per_token"] * 1000.0
    assert u["utilisation"] == pytest.approx(u["achieved_flops"] / 1e10)
    assert utilisation(RunSpec(), 28, 1000.0, None)["utilisation"] is None


def test_the_harness_counts_no_one_hot_input_gradient():
    """The recorded FLOPs per token are common.flops' (PaLM's convention): the book's
    2x256 LSTM on V=28 one-hot ids, without the layer-0 input gradient 2*4h*V."""
    forward = 2 * 1024 * (28 + 256) + 2 * 1024 * (256 + 256) + 2 * 28 * 256
    assert utilisation(RunSpec(), 28, 1.0, None)["train_flops_per_token"] == 3 * forward - 2 * 1024 * 28


def test_thread_mismatch_is_warned_and_recorded(capsys):
    req = RunRequest(backend="mxnet", spec=RunSpec(), threads=2)
    assert thread_warnings(req, {"threads": 2}) == []
    [message] = thread_warnings(req, {"threads": 8})
    assert "8 intra-op threads, 2 were asked" in message
    assert "warning:" in capsys.readouterr().err
