"""common.corpus: each reader reproduces its source's tokens and vocabulary."""

from __future__ import annotations

import collections
import hashlib
import re
import zipfile

import numpy as np
import pytest

from common import datasets
from common.corpus import load_corpus
from common.errors import DataError, SpecError
from common.specs import DataSpec

BOOK_VOCAB = [
    "<unk>",
    " ",
    "e",
    "t",
    "a",
    "i",
    "n",
    "o",
    "s",
    "h",
    "r",
    "d",
    "l",
    "m",
    "u",
    "c",
    "f",
    "w",
    "g",
    "y",
    "p",
    "b",
    "v",
    "k",
    "x",
    "z",
    "j",
    "q",
]


def _book_lines(data_dir):
    with open(data_dir / "timemachine.txt", encoding="utf-8") as f:
        return [re.sub("[^A-Za-z]+", " ", line).strip().lower() for line in f]


def test_time_machine_lines_char_is_the_books(corpus_of, data_dir):
    c = corpus_of(max_tokens=10000)
    assert c.tokens.dtype == np.int32 and c.tokens.shape == (10000,)
    assert len(c.vocab) == 28 and c.valid is None
    assert c.vocab.idx_to_token == BOOK_VOCAB
    # Independently: every character of the book, counted, by falling frequency.
    text = "".join(_book_lines(data_dir))
    counts = collections.Counter(text)
    assert [t for t, _ in counts.most_common()] == BOOK_VOCAB[1:]
    assert len(set(counts.values())) == len(counts)  # no ties, so the order is unambiguous
    # The stream is the first 10,000 characters of the whole joined book.
    assert "".join(c.vocab.to_tokens(c.tokens)) == text[:10000]
    assert len(corpus_of().tokens) == len(text) == 170580  # d2l 0.17: len(corpus)


def test_time_machine_arrays_are_read_only(corpus_of):
    with pytest.raises(ValueError):
        corpus_of(max_tokens=10000).tokens[0] = 1


def test_time_machine_lines_word(corpus_of, data_dir):
    c = corpus_of(token="word")
    words = [w for line in _book_lines(data_dir) for w in line.split()]
    assert c.vocab.to_tokens(c.tokens) == words
    assert c.vocab.idx_to_token[:4] == ["<unk>", "the", "i", "and"]
    assert len(corpus_of(token="word", min_freq=2).vocab) < len(c.vocab)


def test_time_machine_whole_is_d2l_2_0(corpus_of, data_dir):
    c = corpus_of(text="whole")
    raw = (data_dir / "timemachine.txt").read_text(encoding="utf-8")
    text = re.sub("[^A-Za-z]+", " ", raw).lower()
    assert len(c.tokens) == len(text) == 173428 and len(c.vocab) == 28  # d2l 2.0 prints these
    assert c.vocab.idx_to_token == [" ", "<unk>"] + [chr(i) for i in range(97, 123)]
    assert "".join(c.vocab.to_tokens(c.tokens[:200])) == text[:200]
    assert len(corpus_of(text="whole", max_tokens=500).tokens) == 500


def test_jaychou_first_10000_chars(corpus_of, data_dir):
    c = corpus_of(corpus="jaychou_lyrics", max_tokens=10000)
    with zipfile.ZipFile(data_dir / "jaychou_lyrics.txt.zip") as zf:
        text = zf.read("jaychou_lyrics.txt").decode("utf-8")
    text = text.replace("\n", " ").replace("\r", " ")[:10000]
    assert "".join(c.vocab.to_tokens(c.tokens)) == text
    assert len(c.vocab) == len(set(text)) + 1 == 1039  # the characters, plus <unk>
    assert c.vocab.idx_to_token[:3] == ["<unk>", " ", "我"]
    assert c.vocab.unk not in set(c.tokens.tolist())


def test_jaychou_is_character_level(data_dir):
    with pytest.raises(SpecError, match="character-level"):
        load_corpus(DataSpec(corpus="jaychou_lyrics", token="word"), data_dir)


def test_ptb_train_and_valid(corpus_of, data_dir):
    c = corpus_of(corpus="ptb", token="word")
    assert len(c.vocab) == 10000
    assert c.vocab.idx_to_token[:3] == ["<unk>", "the", "<eos>"]
    assert len(c.tokens) == 929589 and len(c.valid) == 73760
    assert c.valid.dtype == np.int32
    with zipfile.ZipFile(data_dir / "ptb.zip") as zf:
        first = zf.read("ptb/ptb.valid.txt").decode("utf-8").split("\n")[0].split()
    assert c.vocab.to_tokens(c.valid[: len(first) + 1]) == first + ["<eos>"]
    assert c.vocab.to_tokens(c.tokens[-1]) == "<eos>"
    short = corpus_of(corpus="ptb", token="word", max_tokens=1000)
    assert len(short.tokens) == 1000 and len(short.vocab) == 10000
    assert np.array_equal(short.tokens, c.tokens[:1000])


def test_data_dir_from_environment(data_dir, monkeypatch):
    monkeypatch.setenv("RNNBENCH_DATA", str(data_dir))
    assert len(load_corpus(DataSpec(max_tokens=100)).tokens) == 100


def test_missing_data_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="timemachine.txt"):
        load_corpus(DataSpec(), tmp_path)


def test_unreadable_zip_is_a_data_error(tmp_path, monkeypatch):
    garbage = b"PK garbage, not a zip"
    (tmp_path / "jaychou_lyrics.txt.zip").write_bytes(garbage)
    entry = datasets.DATA_HUB["jaychou_lyrics"]
    sha = hashlib.sha1(garbage).hexdigest()
    monkeypatch.setitem(datasets.DATA_HUB, "jaychou_lyrics", entry._replace(sha1=sha))
    with pytest.raises(DataError, match="cannot read jaychou_lyrics.txt"):
        load_corpus(DataSpec(corpus="jaychou_lyrics"), tmp_path)
