"""common.batches: the book's batch counts, shifting, determinism, pinned bytes, errors.

The pinned digests prove the batches are byte-identical wherever they are made; the
test suite runs under numpy 1.23 (MXNet's environment) and numpy 2.x with the same pins.
"""

from __future__ import annotations

import numpy as np
import pytest

from common.batches import batches_digest, train_batches, valid_batches, window_split
from common.corpus import Corpus
from common.errors import SpecError
from common.specs import DataSpec, ModelSpec, RunSpec, TrainSpec
from common.vocab import Vocab

# d2l-deep-lstm data: Time Machine lines/char, first 10,000, batch 32, 35 steps, seed 0.
DEEP_LSTM_EPOCH0 = "b5ec1f1f5acd075799ea2894424cfeeb79c47b55"
# d2l-deep-gru data: whole text, windows of 32+1, 10,000 train / 5,000 val, batch 1024.
WINDOWS_TRAIN_EPOCH0 = "7d7b0d6a28c60169a11ac1bd19bb4f9f9e9790e4"
WINDOWS_VALID = "1799caa90971d4e5602076511d0bb4ab086a4ab4"


def run(data=None, **train) -> RunSpec:
    return RunSpec(data or DataSpec(), ModelSpec(), TrainSpec(**train))


def toy(n: int, valid: int | None = None) -> Corpus:
    """A corpus whose ids are 0..n-1, so every batch shows where it was cut."""
    vocab = Vocab([str(i) for i in range(n)])
    ids = np.arange(n, dtype=np.int32)
    return Corpus(ids, None if valid is None else np.arange(valid, dtype=np.int32), vocab)


@pytest.fixture(scope="module")
def book(corpus_of):
    return corpus_of(max_tokens=10000)


@pytest.fixture(scope="module")
def whole(corpus_of):
    return corpus_of(text="whole", num_train=10000, num_val=5000)


BOOK = run(DataSpec(max_tokens=10000), batch_size=32, num_steps=35, seed=0)
WINDOWS = run(
    DataSpec(text="whole", num_train=10000, num_val=5000), batch_size=1024, num_steps=32, sampling="windows", seed=0
)


def test_book_sequential_has_8_batches_every_epoch(book):
    digests = set()
    for epoch in range(40):  # offsets 0..35 are all met within a few dozen epochs
        batches = train_batches(book, BOOK, epoch)
        assert len(batches) == 8
        for x, y in batches:
            assert x.shape == y.shape == (32, 35)
            assert x.dtype == y.dtype == np.int32 and x.flags.c_contiguous
        digests.add(batches_digest(batches))
    assert len(digests) > 1


def test_pinned_deep_lstm_epoch0(book):
    assert batches_digest(train_batches(book, BOOK, 0)) == DEEP_LSTM_EPOCH0


def test_pinned_windows(whole):
    assert batches_digest(train_batches(whole, WINDOWS, 0)) == WINDOWS_TRAIN_EPOCH0
    assert batches_digest(valid_batches(whole, WINDOWS)) == WINDOWS_VALID


def test_determinism(book):
    a, b = train_batches(book, BOOK, 3), train_batches(book, BOOK, 3)
    assert batches_digest(a) == batches_digest(b)
    assert batches_digest(train_batches(book, BOOK, 4)) != batches_digest(a)
    other_seed = run(DataSpec(max_tokens=10000), seed=1, sampling="random")
    same_seed = run(DataSpec(max_tokens=10000), seed=0, sampling="random")
    assert batches_digest(train_batches(book, other_seed, 0)) != batches_digest(train_batches(book, same_seed, 0))


def test_y_is_x_shifted_by_one(book, whole):
    for corpus, spec in [(book, BOOK), (book, run(sampling="random")), (whole, WINDOWS)]:
        for x, y in train_batches(corpus, spec, 0):
            ids = corpus.tokens
            # Every row is a contiguous piece of the stream: find it and compare.
            for row_x, row_y in zip(x[:3], y[:3], strict=True):
                start = _find(ids, row_x)
                assert np.array_equal(row_y, ids[start + 1 : start + 1 + len(row_y)])


def _find(ids: np.ndarray, row: np.ndarray) -> int:
    windows = np.lib.stride_tricks.sliding_window_view(ids, len(row))
    return int(np.flatnonzero((windows == row).all(axis=1))[0])


def test_sequential_is_d2l_seq_data_iter_sequential():
    corpus = toy(35)  # d2l's my_seq = list(range(35)), batch 2, 5 steps
    spec = run(batch_size=2, num_steps=5)
    offset = int(np.random.RandomState([0, 0]).randint(0, 6))
    batches = train_batches(corpus, spec, 0)
    num_tokens = ((35 - offset - 1) // 2) * 2
    xs = np.arange(offset, offset + num_tokens).reshape(2, -1)
    assert len(batches) == xs.shape[1] // 5
    for i, (x, y) in enumerate(batches):
        assert np.array_equal(x, xs[:, 5 * i : 5 * i + 5])
        assert np.array_equal(y, x + 1)
    # Consecutive batches continue each other row by row (state can be carried).
    assert np.array_equal(batches[1][0][:, 0], batches[0][0][:, -1] + 1)


def test_random_covers_distinct_non_overlapping_subsequences():
    corpus = toy(1000)
    spec = run(batch_size=4, num_steps=7, sampling="random")
    for epoch in range(5):
        batches = train_batches(corpus, spec, epoch)
        starts = np.concatenate([x[:, 0] for x, _ in batches])
        offset = int(starts.min() % 7)
        assert 0 <= offset <= 6
        assert np.all((starts - offset) % 7 == 0)  # aligned, so non-overlapping
        assert len(set(starts.tolist())) == len(starts)  # distinct
        num_subseqs = (1000 - offset - 1) // 7
        assert len(batches) == num_subseqs // 4 and len(starts) == 4 * len(batches)
        for x, y in batches:
            assert np.array_equal(x, x[:, :1] + np.arange(7))
            assert np.array_equal(y, x + 1)
        assert not np.array_equal(starts, np.sort(starts))  # shuffled


def test_windows_split_sizes(whole):
    train = train_batches(whole, WINDOWS, 0)
    assert len(train) == 10
    assert [x.shape[0] for x, _ in train] == [1024] * 9 + [784]
    assert all(x.shape[1] == 32 for x, _ in train)
    # Training windows are offsets 0..9999, each once, in RandomState([seed, epoch]) order.
    ids = whole.tokens
    order = np.random.RandomState([0, 0]).permutation(10000)
    x_all = np.concatenate([x for x, _ in train])
    y_all = np.concatenate([y for _, y in train])
    assert np.array_equal(x_all, ids[order[:, None] + np.arange(32)])
    assert np.array_equal(y_all, ids[order[:, None] + np.arange(1, 33)])
    val = valid_batches(whole, WINDOWS)
    assert [x.shape[0] for x, _ in val] == [1024] * 4 + [904]
    assert np.array_equal(val[0][0][0], ids[10000:10032])  # in order, right after train
    assert np.array_equal(val[-1][1][-1], ids[15000:15032])
    assert batches_digest(train) != batches_digest(train_batches(whole, WINDOWS, 1))


def test_windows_every_offset_once():
    corpus = toy(50)
    spec = run(DataSpec(num_train=30, num_val=10), batch_size=8, num_steps=4, sampling="windows")
    train = train_batches(corpus, spec, 0)
    starts = np.concatenate([x[:, 0] for x, _ in train])
    assert sorted(starts.tolist()) == list(range(30))
    assert [len(x) for x, _ in train] == [8, 8, 8, 6]
    val = valid_batches(corpus, spec)
    assert np.concatenate([x[:, 0] for x, _ in val]).tolist() == list(range(30, 40))
    for x, y in train + val:
        assert np.array_equal(y, x + 1)


def test_window_split_all_and_rest():
    assert window_split(100, 0, 0) == (range(100), range(100, 100))
    assert window_split(100, 0, 20) == (range(80), range(80, 100))
    assert window_split(100, 60, 40) == (range(60), range(60, 100))


def test_validation_streams():
    spec = run(batch_size=2, num_steps=3)
    assert valid_batches(toy(100), spec) == []
    batches = valid_batches(toy(100, valid=20), spec)  # offset 0: rows 0..8 and 9..17
    assert [x.tolist() for x, _ in batches] == [
        [[0, 1, 2], [9, 10, 11]],
        [[3, 4, 5], [12, 13, 14]],
        [[6, 7, 8], [15, 16, 17]],
    ]
    assert batches_digest(batches) == batches_digest(valid_batches(toy(100, 20), spec))
    win = run(batch_size=4, num_steps=3, sampling="windows")
    assert len(valid_batches(toy(100), win)) == 0
    assert sum(len(x) for x, _ in valid_batches(toy(100, valid=20), win)) == 17


def test_ptb_validation(corpus_of):
    ptb = corpus_of(corpus="ptb", token="word", max_tokens=20000)
    spec = run(DataSpec(corpus="ptb", token="word", max_tokens=20000), batch_size=20, num_steps=35)
    val = valid_batches(ptb, spec)
    assert len(val) == (73760 - 1) // 20 // 35
    assert len(train_batches(ptb, spec, 0)) >= 28


def test_the_papers_validation_and_the_stream_beside_it(corpus_of):
    """ptb-small validates as the Lua `run_valid` (20 rows x 20 steps, carried from a
    zeroed state) and keeps the batch-1 stream, the test split's protocol, beside it."""
    from common.batches import eval_splits
    from common.specs import load_preset

    spec = load_preset("ptb-small")[0]
    splits = eval_splits(corpus_of(corpus="ptb", token="word"), spec)
    assert set(splits) == {"valid", "valid_stream", "test"}
    assert splits["valid"][0][0].shape == (20, 20) and len(splits["valid"]) == (73760 - 1) // 20 // 20
    assert {X.shape[0] for X, _ in splits["valid_stream"] + splits["test"]} == {1}
    assert sum(X.size for X, _ in splits["valid_stream"]) == 73760 - 1  # every token but the first, once
    plain = eval_splits(corpus_of(corpus="ptb", token="word"), RunSpec(spec.data, spec.model, TrainSpec(
        batch_size=20, num_steps=20, eval_batch_size=1)))
    assert set(plain) == {"valid", "test"}  # one protocol for both: no second column


@pytest.mark.parametrize(
    "train, field, fits",
    [
        (dict(num_steps=60), "num_steps=60", "num_steps <= 49"),
        (dict(batch_size=20, num_steps=10), "batch_size*num_steps = 20*10", "batch_size <= 8"),
        (dict(num_steps=60, sampling="random"), "num_steps=60", "num_steps <= 50"),
        (dict(batch_size=20, num_steps=10, sampling="random"), "batch_size*num_steps", "batch_size <= 9"),
        (dict(num_steps=100, sampling="windows"), "num_steps=100", "num_steps <= 99"),
    ],
)
def test_impossible_sizes_name_the_field(train, field, fits):
    with pytest.raises(SpecError) as err:
        train_batches(toy(100), run(**train), 0)
    assert field in str(err.value) and fits in str(err.value)


def test_suggested_sizes_really_fit():
    corpus = toy(100)
    assert len(train_batches(corpus, run(num_steps=49, batch_size=1), 0)) >= 1
    for epoch in range(20):
        assert len(train_batches(corpus, run(batch_size=8, num_steps=10), epoch)) >= 1
        assert len(train_batches(corpus, run(batch_size=9, num_steps=10, sampling="random"), epoch)) >= 1


@pytest.mark.parametrize(
    "num_train, num_val, fits",
    [
        (90, 20, "num_train+num_val <= 96"),
        (0, 96, "num_val <= 95"),
    ],
)
def test_too_many_windows(num_train, num_val, fits):
    spec = run(DataSpec(num_train=num_train, num_val=num_val), num_steps=4, sampling="windows")
    with pytest.raises(SpecError, match=fits.replace("+", r"\+")):
        train_batches(toy(100), spec, 0)
    with pytest.raises(SpecError):
        valid_batches(toy(100), spec)


def test_validation_stream_too_short():
    with pytest.raises(SpecError, match="validation stream"):
        valid_batches(toy(1000, valid=50), run(batch_size=10, num_steps=5))
