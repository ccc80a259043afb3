"""Corpora: read each source exactly as the book did and turn it into token ids.

The readers copy their sources' preprocessing so the book's vocabularies come out
the same:
- time_machine, text="lines" (d2l 0.17 `read_time_machine`/`load_corpus_time_machine`):
  each line reduced to lowercase letters and single spaces and stripped; the lines'
  tokens are concatenated with nothing between them; the vocabulary (d2l 0.17 order)
  is built from the whole book, then the id stream is cut to `max_tokens`.
- time_machine, text="whole" (d2l 2.0 `TimeMachine`): the whole text reduced the same
  way, not stripped (newlines become spaces); d2l 2.0's sorted vocabulary.
- jaychou_lyrics (d2l-zh `load_data_jay_lyrics`): newlines to spaces, first
  `max_tokens` characters, vocabulary from those characters only (with unk=false, as
  d2l-zh's `list(set(chars))`, no `<unk>`: one output class fewer).
- ptb: words of ptb.train.txt with `<eos>` at each line end; the vocabulary from the
  training words; ptb.valid.txt and ptb.test.txt the same way, through the training
  vocabulary.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.datasets import fetch, read_zip_member, resolve_data_dir
from common.errors import SpecError
from common.specs import DataSpec
from common.vocab import Vocab

EOS = "<eos>"
# d2l 2.0 sorts its vocabulary; set to "frequency" to use d2l 0.17's order everywhere.
WHOLE_TEXT_ORDER = "sorted"
_NON_LETTERS = re.compile("[^A-Za-z]+")


@dataclass(frozen=True, eq=False)
class Corpus:
    """The id stream used for training, optional validation and test streams, the
    vocabulary.

    Arrays are int32 and read-only, so every consumer sees the same bytes.
    """

    tokens: np.ndarray
    valid: np.ndarray | None
    vocab: Vocab
    test: np.ndarray | None = None

    def split(self, name: str) -> np.ndarray | None:
        """The held-out stream `valid` or `test` (None when the corpus has none)."""
        return {"valid": self.valid, "test": self.test}[name]


def _ids(vocab: Vocab, tokens: list[str]) -> np.ndarray:
    lookup, unk = vocab.token_to_idx, vocab.unk
    ids = np.fromiter((lookup.get(t, unk) for t in tokens), dtype=np.int32, count=len(tokens))
    ids.flags.writeable = False
    return ids


def _cut(ids: np.ndarray, max_tokens: int) -> np.ndarray:
    return ids[:max_tokens] if max_tokens > 0 else ids


def _split(text: str, token: str) -> list[str]:
    return text.split() if token == "word" else list(text)


def _time_machine(spec: DataSpec, data_dir: Path | None) -> Corpus:
    path = fetch("time_machine", data_dir)
    with open(path, encoding="utf-8") as f:
        raw_lines = f.readlines()  # as d2l: universal newlines, split on '\n' only
    if spec.text == "lines":
        lines = [_NON_LETTERS.sub(" ", line).strip().lower() for line in raw_lines]
        tokens = [t for line in lines for t in _split(line, spec.token)]
        vocab = Vocab(tokens, min_freq=spec.min_freq)
    else:
        tokens = _split(_NON_LETTERS.sub(" ", "".join(raw_lines)).lower(), spec.token)
        vocab = Vocab(tokens, min_freq=spec.min_freq, order=WHOLE_TEXT_ORDER)
    return Corpus(_cut(_ids(vocab, tokens), spec.max_tokens), None, vocab)


def _jaychou(spec: DataSpec, data_dir: Path | None) -> Corpus:
    if spec.token != "char":
        raise SpecError("corpus='jaychou_lyrics' is character-level: set token='char'")
    text = read_zip_member(fetch("jaychou_lyrics", data_dir), "jaychou_lyrics.txt")
    text = text.replace("\n", " ").replace("\r", " ")
    chars = list(text[: spec.max_tokens] if spec.max_tokens > 0 else text)
    vocab = Vocab(chars, min_freq=spec.min_freq, unk=spec.unk)
    return Corpus(_ids(vocab, chars), None, vocab)


def _ptb_words(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline ending the last line does not start another one
    return [w for line in lines for w in (*line.split(), EOS)]


def _ptb(spec: DataSpec, data_dir: Path | None) -> Corpus:
    path = fetch("ptb", data_dir)
    train = _ptb_words(read_zip_member(path, "ptb/ptb.train.txt"))
    valid = _ptb_words(read_zip_member(path, "ptb/ptb.valid.txt"))
    test = _ptb_words(read_zip_member(path, "ptb/ptb.test.txt"))
    vocab = Vocab(train, min_freq=spec.min_freq)
    return Corpus(_cut(_ids(vocab, train), spec.max_tokens), _ids(vocab, valid), vocab, _ids(vocab, test))


_READERS = {"time_machine": _time_machine, "jaychou_lyrics": _jaychou, "ptb": _ptb}


def load_corpus(spec: DataSpec, data_dir: str | os.PathLike | None = None) -> Corpus:
    """Read, tokenize and number the corpus `spec` names (data_dir, else $RNNBENCH_DATA)."""
    return _READERS[spec.corpus](spec, resolve_data_dir(data_dir))
