"""Data-parallel batch split: which rows of every batch each of N workers trains on.

Done once here, in numpy, so every backend's workers see the same slices: worker r of
N takes the contiguous block of rows [r * B/N, (r + 1) * B/N). Contiguous blocks (not
every N-th row) keep `sequential` sampling's carried state right: row i of a batch
continues row i of the batch before, so each worker's rows continue its own rows.

Every slice has the same number of rows, so the mean of the workers' mean losses (and
gradients) is the whole batch's mean: a batch whose rows do not divide by N is
refused rather than weighted.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Sequence

import numpy as np

from common.errors import SpecError

Batch = tuple[np.ndarray, np.ndarray]


def check_workers(workers: int, batch_rows: Sequence[int], batch_size: int) -> None:
    """Refuse a worker count that cannot split these batches evenly, in one line naming the fix.

    `batch_rows`: the row count of each training batch of an epoch (all equal except,
    with `windows` sampling, a partial last one); `batch_size` the spec's."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise SpecError(f"--workers={workers} must be at least 1 (1 trains in one process)")
    if workers > batch_size:
        raise SpecError(f"--workers={workers} is more than the batch's {batch_size} sequences, so some worker "
                        f"would get none: use --workers {batch_size} or fewer, or raise train.batch_size")
    for rows in sorted(set(batch_rows), reverse=True):
        if rows % workers:
            what = "the batch's" if rows == batch_size else "a partial last batch's"
            raise SpecError(f"{what} {rows} sequences do not split evenly over --workers={workers}: "
                            f"use a worker count that divides {rows}, or set train.batch_size to a multiple "
                            f"of {workers}" + ("" if rows == batch_size else " that leaves no partial batch"))


def rows_of(rank: int, workers: int, rows: int) -> slice:
    """The rows of a `rows`-row batch that worker `rank` of `workers` trains on."""
    if not 0 <= rank < workers:
        raise ValueError(f"rank {rank} is not in [0, {workers})")
    if rows % workers:
        raise SpecError(f"a batch of {rows} sequences does not split evenly over {workers} workers")
    size = rows // workers
    return slice(rank * size, (rank + 1) * size)


def shard(batch: Batch, rank: int, workers: int) -> Batch:
    """Worker `rank`'s slice of one (X, Y) batch (views, not copies)."""
    X, Y = batch
    part = rows_of(rank, workers, X.shape[0])
    return X[part], Y[part]


def shards(batches: Iterable[Batch], rank: int, workers: int) -> Iterator[Batch]:
    """Worker `rank`'s slice of every batch, in order."""
    for batch in batches:
        yield shard(batch, rank, workers)
