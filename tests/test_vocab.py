"""common.vocab.Vocab: d2l 0.17 order, ties, min_freq, unknowns; d2l 2.0 sorted order."""

from __future__ import annotations

import numpy as np
import pytest

from common.vocab import Vocab


def test_order_by_falling_frequency_ties_first_seen():
    vocab = Vocab(list("bcaacbd c"))  # c:3, b:2, a:2 (b seen first), ' ':1, d:1 (d first)
    assert vocab.idx_to_token == ["<unk>", "c", "b", "a", "d", " "]
    assert vocab.token_to_idx == {t: i for i, t in enumerate(vocab.idx_to_token)}
    assert vocab.token_freqs[0] == ("c", 3)


def test_nested_lists_are_flattened():
    assert Vocab([["x", "y"], [], ["y"]]).idx_to_token == ["<unk>", "y", "x"]


def test_reserved_tokens_follow_unk_and_are_not_repeated():
    vocab = Vocab(["a", "<pad>", "a", "<unk>"], reserved_tokens=["<pad>", "<bos>"])
    assert vocab.idx_to_token == ["<unk>", "<pad>", "<bos>", "a"]
    assert len(vocab) == 4


def test_min_freq_drops_rare_tokens_to_unk():
    vocab = Vocab(["a", "a", "b", "c", "c", "c"], min_freq=2)
    assert vocab.idx_to_token == ["<unk>", "c", "a"]
    assert vocab["b"] == vocab.unk == 0


def test_lookup_and_back():
    vocab = Vocab(list("hello"))
    assert vocab["l"] == 1
    assert vocab[["h", "zz", "o"]] == [2, 0, 4]
    assert vocab[("l", "l")] == [1, 1]
    assert vocab.to_tokens([1, 2]) == ["l", "h"]
    assert vocab.to_tokens(np.array([3, 4], dtype=np.int32)) == ["e", "o"]
    assert vocab.to_tokens(np.int32(0)) == "<unk>"
    assert vocab.to_tokens(1) == "l"


def test_empty():
    vocab = Vocab()
    assert len(vocab) == 1 and vocab["x"] == 0


def test_sorted_order_is_d2l_2_0():
    vocab = Vocab(list("b a"), order="sorted")
    assert vocab.idx_to_token == [" ", "<unk>", "a", "b"]
    assert vocab.unk == 1 and vocab["?"] == 1
    with pytest.raises(ValueError):
        Vocab([], order="alphabetical")
