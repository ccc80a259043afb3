"""A/B of execution modes in one process, epochs alternated, so that the machine's
drift (a shared VM varies by +-20% minute to minute) hits every mode alike.

    python -m benchmarks.interleave --backend pytorch --modes eager,book --epochs 62

Each mode trains its own model from the same canonical parameters on the same
batches; the first two epochs are warm-up. Prints the median tokens/sec per mode.
"""

from __future__ import annotations

import argparse
import statistics
import time

from backends import load_backend
from benchmarks.harness import RunRequest, build_model
from common.batches import train_batches
from common.corpus import load_corpus
from common.specs import load_preset

WARMUP = 2


def interleave(backend_name: str, modes: list[str], preset: str, epochs: int, threads: int | None,
               data_dir: str | None) -> dict[str, float]:
    backend = load_backend(backend_name, threads)
    spec, _ = load_preset(preset)
    corpus = load_corpus(spec.data, data_dir)
    V = len(corpus.vocab)
    models = {m: build_model(backend, RunRequest(backend_name, spec, mode=m), V) for m in modes}
    rates: dict[str, list[float]] = {m: [] for m in modes}
    for epoch in range(epochs):
        batches = train_batches(corpus, spec, epoch)
        for mode in modes if epoch % 2 == 0 else modes[::-1]:
            tic = time.perf_counter()
            stats = models[mode].train_epoch(batches)
            if epoch >= WARMUP:
                rates[mode].append(stats.tokens / (time.perf_counter() - tic))
    return {m: statistics.median(r) for m, r in rates.items()}


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.interleave", description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", required=True)
    p.add_argument("--modes", required=True, help="comma-separated, e.g. eager,book")
    p.add_argument("--preset", default="d2l-deep-lstm")
    p.add_argument("--epochs", type=int, default=42)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()
    medians = interleave(args.backend, args.modes.split(","), args.preset, args.epochs, args.threads, args.data_dir)
    for mode, rate in medians.items():
        print(f"{args.backend} {mode}: median {rate:,.0f} tok/s over {args.epochs - WARMUP} epochs")


if __name__ == "__main__":
    main()
