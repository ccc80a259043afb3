"""The data-parallel batch split (common.shards): every backend's workers get the same
rows, contiguous blocks that together are the batch, and impossible splits are refused
in one line naming the fix."""

from __future__ import annotations

import numpy as np
import pytest

from common.errors import SpecError
from common.shards import check_workers, rows_of, shard, shards


def _batch(rows: int = 8, steps: int = 3, offset: int = 0):
    X = np.arange(rows * steps, dtype=np.int32).reshape(rows, steps) + offset
    return X, X + 1


@pytest.mark.parametrize("workers", [1, 2, 4, 8])
def test_slices_are_contiguous_and_together_the_batch(workers):
    X, Y = _batch()
    parts = [shard((X, Y), r, workers) for r in range(workers)]
    assert all(p[0].shape == (8 // workers, 3) for p in parts)
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), X)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), Y)
    assert rows_of(workers - 1, workers, 8) == slice(8 - 8 // workers, 8)  # the last worker's rows


def test_a_worker_keeps_the_same_rows_across_batches():
    """Sequential sampling carries row i's state to row i of the next batch: the same
    worker must get row i every time."""
    batches = [_batch(offset=100 * k) for k in range(3)]
    mine = list(shards(batches, 1, 2))
    for (X, _), (full, _) in zip(mine, batches, strict=True):
        np.testing.assert_array_equal(X, full[4:8])


@pytest.mark.parametrize(("workers", "rows", "needle"), [
    (0, [32], "--workers=0 must be at least 1"),
    (-2, [32], "must be at least 1"),
    (33, [32], "use --workers 32 or fewer"),
    (3, [32], "do not split evenly over --workers=3"),
    (4, [32, 32, 6], "partial last batch's 6 sequences"),
])
def test_impossible_splits_are_refused_in_one_line(workers, rows, needle):
    with pytest.raises(SpecError) as err:
        check_workers(workers, rows, 32)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_possible_splits_pass():
    check_workers(2, [32, 32, 8], 32)
    check_workers(1, [7], 7)


def test_an_uneven_batch_or_a_bad_rank_is_refused():
    with pytest.raises(SpecError):
        shard(_batch(rows=5), 0, 2)
    with pytest.raises(ValueError):
        rows_of(2, 2, 8)
