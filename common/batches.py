"""Minibatches: (X, Y) pairs of int32 arrays of shape (batch, num_steps), Y = X shifted
by one token, produced once here so every backend trains on the same bytes.

Randomness comes only from the legacy `np.random.RandomState([seed, epoch])`, whose
stream numpy keeps frozen, so the batches are byte-identical under numpy 1.23 and 2.x
and can be recomputed from (seed, epoch) alone. Samplings:
- `sequential` (d2l 0.17 `seq_data_iter_sequential`): a random offset in
  [0, num_steps], the stream cut into `batch_size` rows, consecutive column blocks, so
  batch i+1 continues batch i row by row;
- `random` (d2l 0.17 `seq_data_iter_random`): a random prefix of [0, num_steps-1]
  tokens dropped, the rest cut into non-overlapping subsequences visited in shuffled
  order, full batches only;
- `windows` (d2l 2.0 `TimeMachine`): a window of num_steps+1 tokens at every offset;
  the first `num_train` train (shuffled each epoch), the next `num_val` validate (in
  order); batches of batch_size with the last one partial (DataLoader, drop_last=False).
Sizes that would give no batches raise SpecError saying which field and what fits.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from common.corpus import Corpus
from common.errors import SpecError
from common.specs import RunSpec, TrainSpec

Batch = tuple[np.ndarray, np.ndarray]


def _rng(seed: int, epoch: int) -> np.random.RandomState:
    return np.random.RandomState([seed, epoch])


def _rows(ids: np.ndarray, starts: np.ndarray, num_steps: int) -> Batch:
    idx = starts[:, None] + np.arange(num_steps)
    return ids[idx].astype(np.int32, copy=False), ids[idx + 1].astype(np.int32, copy=False)


# ---- sequential ---------------------------------------------------------------------


def _fixes(options: list[tuple[str, int]], needed: int, n: int, max_tokens: int, what: str) -> str:
    """`use a <= x or b <= y or max_tokens >= z`: only the limits that could work (a
    bound below 1 is no advice), and max_tokens only when it is what cut the stream."""
    fixes = [f"{field} <= {bound}" for field, bound in options if bound >= 1]
    if what == "corpus" and 0 < max_tokens <= n:
        fixes.append(f"max_tokens >= {needed} (if the corpus has that many; -1 takes all of it)")
    elif not fixes:
        fixes.append(f"smaller sizes: at least {needed} tokens are needed")
    return "use " + " or ".join(fixes)


def _check_sequential(n: int, b: int, s: int, what: str, max_tokens: int = -1) -> None:
    # The worst offset is num_steps: then (n - s - 1) // b columns must hold one block.
    needed = b * s + s + 1
    if n < 2 * s + 1:
        raise SpecError(
            f"num_steps={s} is too long for the {what} of {n} tokens with sequential "
            f"sampling: " + _fixes([("num_steps", (n - 1) // 2)], needed, n, max_tokens, what)
        )
    if n < needed:
        raise SpecError(
            f"batch_size*num_steps = {b}*{s} needs at least {needed} tokens but the "
            f"{what} has {n}, so there would be zero batches: "
            + _fixes([("batch_size", (n - s - 1) // s), ("num_steps", (n - 1) // (b + 1))], needed, n, max_tokens, what)
        )


def _sequential(ids: np.ndarray, b: int, s: int, offset: int) -> list[Batch]:
    num_tokens = ((len(ids) - offset - 1) // b) * b
    xs = ids[offset : offset + num_tokens].reshape(b, -1)
    ys = ids[offset + 1 : offset + 1 + num_tokens].reshape(b, -1)
    return [
        (np.ascontiguousarray(xs[:, i : i + s]), np.ascontiguousarray(ys[:, i : i + s]))
        for i in range(0, (xs.shape[1] // s) * s, s)
    ]


# ---- random -------------------------------------------------------------------------


def _check_random(n: int, b: int, s: int, max_tokens: int = -1) -> None:
    # The worst dropped prefix is num_steps-1 tokens: (n - s) // s subsequences remain.
    needed = s * (b + 1)
    if n < 2 * s:
        raise SpecError(
            f"num_steps={s} is too long for the corpus of {n} tokens with random "
            f"sampling: " + _fixes([("num_steps", n // 2)], needed, n, max_tokens, "corpus")
        )
    if n < needed:
        raise SpecError(
            f"batch_size*num_steps = {b}*{s} needs at least {needed} tokens but the "
            f"corpus has {n}, so there would be zero batches: "
            + _fixes([("batch_size", (n - s) // s), ("num_steps", n // (b + 1))], needed, n, max_tokens, "corpus")
        )


def _random(ids: np.ndarray, b: int, s: int, rng: np.random.RandomState) -> list[Batch]:
    offset = int(rng.randint(0, s))
    num_subseqs = (len(ids) - offset - 1) // s
    starts = offset + s * rng.permutation(num_subseqs)
    return [_rows(ids, starts[i : i + b], s) for i in range(0, (num_subseqs // b) * b, b)]


# ---- windows ------------------------------------------------------------------------


def window_split(num_windows: int, num_train: int, num_val: int) -> tuple[range, range]:
    """Start offsets of the training and validation windows.

    The first `num_train` windows train and the next `num_val` validate; with
    num_train=0 every window not kept for validation (the last `num_val`) trains.
    """
    if num_train == 0:
        if num_val >= num_windows:
            raise SpecError(
                f"num_val={num_val} leaves no training windows: only {num_windows} windows "
                f"exist, use num_val <= {num_windows - 1}"
            )
        return range(num_windows - num_val), range(num_windows - num_val, num_windows)
    if num_train + num_val > num_windows:
        raise SpecError(
            f"num_train+num_val = {num_train}+{num_val} windows requested but the corpus "
            f"has only {num_windows} (one per start offset, num_steps+1 tokens each): "
            f"use num_train+num_val <= {num_windows}"
        )
    return range(num_train), range(num_train, num_train + num_val)


def _num_windows(n: int, s: int, what: str, max_tokens: int = -1) -> int:
    if n - s < 1:
        raise SpecError(
            f"num_steps={s} is too long for the {what} of {n} tokens (a window holds "
            f"num_steps+1 tokens): " + _fixes([("num_steps", n - 1)], s + 1, n, max_tokens, what)
        )
    return n - s


def _windows(ids: np.ndarray, starts: np.ndarray, b: int, s: int) -> list[Batch]:
    return [_rows(ids, starts[i : i + b], s) for i in range(0, len(starts), b)]


# ---- public -------------------------------------------------------------------------


def train_batches(corpus: Corpus, spec: RunSpec, epoch: int) -> list[Batch]:
    """The training batches of one epoch; the same (seed, epoch) gives the same bytes."""
    ids, t, cut = corpus.tokens, spec.train, spec.data.max_tokens
    b, s, n = t.batch_size, t.num_steps, len(corpus.tokens)
    rng = _rng(t.seed, epoch)
    if t.sampling == "sequential":
        _check_sequential(n, b, s, "corpus", cut)
        offset = int(rng.randint(0, s + 1))  # drawn either way, so later draws do not shift
        return _sequential(ids, b, s, offset if t.random_offset else 0)
    if t.sampling == "random":
        _check_random(n, b, s, cut)
        return _random(ids, b, s, rng)
    train, _ = window_split(_num_windows(n, s, "corpus", cut), spec.data.num_train, spec.data.num_val)
    return _windows(ids, train.start + rng.permutation(len(train)), b, s)


def valid_batches(corpus: Corpus, spec: RunSpec) -> list[Batch]:
    """Validation batches, in order (no randomness); [] when there is no validation data.

    `windows`: the `num_val` windows after the training ones, else (num_val=0) every
    window of corpus.valid. `sequential`/`random`: corpus.valid cut the sequential
    way with offset 0.
    """
    t = spec.train
    b, s = t.batch_size, t.num_steps
    if t.sampling == "windows":
        if spec.data.num_val:
            n_windows = _num_windows(len(corpus.tokens), s, "corpus", spec.data.max_tokens)
            _, val = window_split(n_windows, spec.data.num_train, spec.data.num_val)
            return _windows(corpus.tokens, np.arange(val.start, val.stop), b, s)
        if corpus.valid is None:
            return []
        n_windows = _num_windows(len(corpus.valid), s, "validation stream")
        return _windows(corpus.valid, np.arange(n_windows), b, s)
    if corpus.valid is None:
        return []
    if len(corpus.valid) - 1 < b * s:
        raise SpecError(
            f"batch_size*num_steps = {b}*{s} is more than the validation stream's "
            f"{len(corpus.valid)} tokens allow (zero batches): use batch_size <= "
            f"{max((len(corpus.valid) - 1) // s, 0)} or num_steps <= "
            f"{max((len(corpus.valid) - 1) // b, 0)}"
        )
    return _sequential(corpus.valid, b, s, 0)


def split_batches(corpus: Corpus, spec: RunSpec, split: str) -> list[Batch]:
    """The batches of held-out split `valid` or `test`, in order.

    `valid` is cut into `valid_batch_size` rows (when set), `test` (and `valid`
    otherwise) into `eval_batch_size` rows. With 1 row the split is one continuous stream: (1, num_steps) blocks
    from its first token, the last block shorter so every token but the first is
    predicted once (the state is carried through it, as Zaremba et al.'s code and
    TensorFlow's PTB tutorial evaluate). Otherwise `valid_batches`' way (the test
    split alike). A split the corpus does not have is a SpecError naming the fix.
    """
    ids = corpus.split(split)
    if ids is None:
        if split == "valid" and spec.train.sampling == "windows" and spec.data.num_val:
            return valid_batches(corpus, spec)
        raise SpecError(f"corpus {spec.data.corpus!r} has no {split} split (only ptb has valid and test): "
                        f"set eval_splits='auto' (what the corpus has) or leave {split} out of eval_splits")
    b = spec.train.valid_rows if split == "valid" else spec.train.eval_batch_size or spec.train.batch_size
    if b != 1:
        held_out = Corpus(corpus.tokens, ids, corpus.vocab)
        return valid_batches(held_out, RunSpec(spec.data, spec.model, _with_batch(spec, b)))
    return _stream(ids, spec.train.num_steps)


def _with_batch(spec: RunSpec, batch_size: int) -> TrainSpec:
    return dataclasses.replace(spec.train, batch_size=batch_size)


def _stream(ids: np.ndarray, s: int) -> list[Batch]:
    """One row: consecutive (1, s) blocks over the whole stream, the last one shorter."""
    if len(ids) < 2:
        raise SpecError(f"a held-out stream of {len(ids)} tokens has nothing to predict")
    return [(ids[None, i:min(i + s, len(ids) - 1)].astype(np.int32), ids[None, i + 1:min(i + s, len(ids) - 1) + 1]
             .astype(np.int32)) for i in range(0, len(ids) - 1, s)]


def eval_splits(corpus: Corpus, spec: RunSpec) -> dict[str, list[Batch]]:
    """split name -> batches, for the splits the spec asks to evaluate (`auto`: those
    the corpus has, and the `windows` validation windows). Where validation has its
    own rows (`valid_batch_size`, the paper's protocol), `valid_stream` is the same
    split cut as the test split is, evaluated once after training."""
    names = spec.data.splits
    if names is None:
        names = tuple(n for n in ("valid", "test") if corpus.split(n) is not None)
        if spec.train.sampling == "windows" and "valid" not in names and spec.data.num_val:
            names = ("valid",) + names
    out = {name: split_batches(corpus, spec, name) for name in names}
    if "valid" in out and spec.train.valid_rows != (spec.train.eval_batch_size or spec.train.batch_size):
        stream = dataclasses.replace(spec.train, valid_batch_size=0)  # the test split's protocol, once at the end
        out["valid_stream"] = split_batches(corpus, RunSpec(spec.data, spec.model, stream), "valid")
    return {name: batches for name, batches in out.items() if batches}


def batches_digest(batches: list[Batch]) -> str:
    """SHA-1 hex of every batch's shapes and little-endian int32 bytes, in order."""
    digest = hashlib.sha1()
    for x, y in batches:
        for a in (x, y):
            digest.update(repr(tuple(int(d) for d in a.shape)).encode())
            digest.update(np.ascontiguousarray(a, dtype="<i4").tobytes())
    return digest.hexdigest()
