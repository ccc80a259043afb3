"""Quality you can compare, without a framework: the learning-rate schedule and the
harness that applies it, PTB's test split and held-out streams, seeds (the plan, the
draws), and the bad inputs of each (one line naming the fix)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from backends.base import EpochStats, LanguageModel
from benchmarks.campaign.suites import per_seed, plan
from benchmarks.run.harness import RunState, train
from common.batches import batches_digest, eval_splits, split_batches, train_batches
from common.errors import SpecError
from common.params import init_params
from common.specs import DataSpec, ModelSpec, RunSpec, TrainSpec, load_preset


def test_zaremba_schedule():
    """lr for epochs 1-4, then halved at the start of each later epoch."""
    t = TrainSpec(lr=1.0, lr_decay=0.5, decay_after=4, epochs=13)
    assert [t.lr_at(e) for e in range(1, 8)] == [1.0, 1.0, 1.0, 1.0, 0.5, 0.25, 0.125]
    assert TrainSpec(lr=2.0).lr_at(400) == 2.0  # no schedule: constant


def test_a_schedule_past_the_end_is_one_line_naming_the_fix():
    with pytest.raises(SpecError) as err:
        TrainSpec(lr_decay=0.5, decay_after=4, epochs=3)
    message = str(err.value)
    assert "\n" not in message and "decay_after <= 2" in message and "epochs >= 5" in message
    TrainSpec(lr_decay=1.0, decay_after=40, epochs=3)  # no decay: nothing names a later epoch


class Recorder(LanguageModel):
    """Just enough of a model for the harness: records the lr of every epoch."""

    def __init__(self):
        self.vocab_size, self.lr, self.seen = 50, None, []

    def _set_learning_rate(self, lr):
        self.lr = lr

    def _train_epoch(self, batches):
        self.seen.append(self.lr)
        tokens = sum(x.size for x, _ in batches)
        return EpochStats(float(tokens), tokens)

    _evaluate = _train_epoch

    def _predict(self, prefix_ids, num_preds):
        return [0] * num_preds

    def _loss_and_grads(self, X, Y):
        raise NotImplementedError

    def get_params(self):
        return {}

    def set_params(self, params):
        pass


def test_the_harness_sets_each_epochs_lr_and_records_it():
    spec = RunSpec(train=TrainSpec(batch_size=2, num_steps=3, lr=8.0, lr_decay=0.5, decay_after=2, epochs=4))
    corpus = type("C", (), {"tokens": np.arange(50, dtype=np.int32) % 50})()
    model, state = Recorder(), RunState()
    train(model, corpus, spec, None, state, lambda row: None)
    assert model.seen == [None, None, 4.0, 2.0]  # built at lr 8: set only when it changes
    assert [e["lr"] for e in state.epochs] == [8.0, 8.0, 4.0, 2.0]


def test_ptb_test_split_and_streams(corpus_of):
    ptb = corpus_of(corpus="ptb", token="word")
    assert len(ptb.test) == 82430 and ptb.test.dtype == np.int32
    spec = RunSpec(DataSpec(corpus="ptb", token="word", eval_splits="valid,test"),
                   train=TrainSpec(batch_size=20, num_steps=20, eval_batch_size=1))
    splits = eval_splits(ptb, spec)
    assert list(splits) == ["valid", "test"]
    stream = splits["test"]
    assert all(x.shape[0] == 1 for x, _ in stream) and stream[-1][0].shape == (1, (82430 - 1) % 20)
    xs, ys = np.concatenate([x[0] for x, _ in stream]), np.concatenate([y[0] for _, y in stream])
    assert np.array_equal(xs, ptb.test[:-1]) and np.array_equal(ys, ptb.test[1:])  # every token once, in order


def test_a_split_the_corpus_lacks_is_one_line_naming_the_fix(corpus_of):
    tm = corpus_of(max_tokens=2000)
    spec = RunSpec(DataSpec(max_tokens=2000, eval_splits="test"), train=TrainSpec(batch_size=4, num_steps=5))
    with pytest.raises(SpecError) as err:
        eval_splits(tm, spec)
    assert "\n" not in str(err.value) and "no test split" in str(err.value) and "eval_splits='auto'" in str(err.value)
    assert eval_splits(tm, RunSpec(DataSpec(max_tokens=2000), train=TrainSpec(batch_size=4, num_steps=5))) == {}
    with pytest.raises(SpecError, match="eval_splits='train' is not allowed; choose one of: valid, test"):
        DataSpec(eval_splits="train")


def test_split_batches_at_training_size_match_validation(corpus_of):
    ptb = corpus_of(corpus="ptb", token="word", max_tokens=20000)
    spec = RunSpec(DataSpec(corpus="ptb", token="word", max_tokens=20000), train=TrainSpec(batch_size=20, num_steps=35))
    assert len(split_batches(ptb, spec, "test")) == (82430 - 1) // 20 // 35


def test_seed_k_draws_its_own_start_and_offsets(corpus_of):
    """Seed k: its own initial parameters and batch offsets, the same bytes every time
    (so the same in every backend, which load them); another seed, another draw."""
    tm = corpus_of(max_tokens=3000)
    model = ModelSpec(num_hiddens=8)
    for k in (0, 3):
        a, b = init_params(model, 28, k), init_params(model, 28, k)
        assert all(np.array_equal(a[n], b[n]) for n in a)
    assert not np.array_equal(init_params(model, 28, 0)["dense.w"], init_params(model, 28, 3)["dense.w"])
    digests = {k: batches_digest(train_batches(tm, RunSpec(train=TrainSpec(seed=k)), 1)) for k in range(4)}
    assert len(set(digests.values())) > 1
    assert digests[2] == batches_digest(train_batches(tm, RunSpec(train=TrainSpec(seed=2)), 1))
    fixed = {batches_digest(train_batches(tm, RunSpec(train=TrainSpec(seed=k, random_offset=False)), e))
             for k in range(3) for e in range(3)}
    assert len(fixed) == 1  # no random offset: the same batches every epoch, whatever the seed


def test_a_campaign_runs_one_process_per_seed():
    runs = plan("jax", ["--preset", "smoke", "--seeds", "3"])
    assert runs == [["--preset", "smoke", "--seeds", "3", "--seed-index", str(k)] for k in range(3)]
    assert len(plan("jax", ["--preset", "jay-deep"])) == load_preset("jay-deep")[1]["seeds"] == 5
    assert per_seed(["--preset", "smoke"]) == [["--preset", "smoke"]]


@pytest.mark.parametrize("args, message", [
    (["--seeds", "0"], "--seeds=0 must be at least 1 (how many seeds to train, e.g. --seeds 5)"),
    (["--seeds", "2", "--seed-index", "2"], "--seed-index=2 must be from 0 to 1"),
    (["--set", "eval_splits=test"], "no test split"),
    (["--set", "lr_decay=0.5", "--set", "decay_after=9"], "decay_after <= 2"),
])
def test_bad_quality_inputs_are_one_line(args, message, data_dir):
    out = subprocess.run([sys.executable, "-m", "benchmarks", "run", "--backend", "pytorch", "--preset", "smoke",
                          "--data-dir", str(data_dir), *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], out.stderr


def test_olympic_time_to_target():
    """MLPerf: drop the fastest and the slowest, average the rest; a seed that missed is
    the slowest; a second miss, or most seeds missing, is `not reached` (inf)."""
    olympic = pytest.importorskip("benchmarks.report.seeds").olympic_time
    assert olympic([5.0, 1.0, 3.0, 2.0, 4.0]) == pytest.approx(3.0)
    assert olympic([5.0, 1.0, math.inf, 2.0, 4.0]) == pytest.approx((2 + 4 + 5) / 3)  # the miss is dropped
    assert olympic([5.0, math.inf, math.inf, 2.0, 4.0]) == math.inf
    assert olympic([math.inf, math.inf, math.inf, 2.0, 1.0]) == math.inf  # most missed
    assert olympic([1.0, 2.0, math.inf]) == pytest.approx(2.0)
    assert olympic([3.0]) == 3.0 and math.isnan(olympic([]))
