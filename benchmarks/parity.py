"""`parity`: a backend's loss and gradients against the numpy reference, on the
preset's model and its first real batch, from the same canonical parameters."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from backends import load_backend
from common import reference
from common.batches import train_batches
from common.corpus import load_corpus
from common.params import init_params
from common.specs import RunSpec


def check(backend_name: str, spec: RunSpec, device: str, data_dir: str | None, threads: int | None,
          mode: str | None = None) -> dict:
    """Largest relative errors of the loss and of each gradient tensor, for the model
    built in `mode` (default: the backend's default mode); an unknown mode is refused
    before any data is read."""
    backend = load_backend(backend_name, threads)
    backend.check_mode(mode)
    corpus = load_corpus(spec.data, data_dir)
    X, Y = train_batches(corpus, spec, 0)[0]
    V = len(corpus.vocab)
    model = replace(spec.model, init="uniform") if spec.model.init == "framework" else spec.model
    params = init_params(model, V, spec.train.seed, spec.train.dtype)
    built = backend.build(spec, V, device, params, mode)
    loss, grads = built.loss_and_grads(X, Y)
    ref_loss, ref_grads, _ = reference.loss_and_grads(
        {k: v.astype(np.float64) for k, v in params.items()}, spec.model, X, Y)
    errors = {name: reference.relative_error(grads[name], ref_grads[name]) for name in ref_grads}
    return {"loss": abs(loss - ref_loss) / abs(ref_loss), "grads": errors,
            "tolerance": reference.PARITY_TOLERANCE[spec.train.dtype], "shape": X.shape, "mode": built.mode}


def print_report(backend_name: str, result: dict) -> bool:
    worst_name = max(result["grads"], key=result["grads"].get)
    worst = result["grads"][worst_name]
    ok = max(worst, result["loss"]) <= result["tolerance"]
    print(f"{backend_name} ({result['mode']} mode): batch {result['shape'][0]}x{result['shape'][1]}, "
          f"loss rel. error {result['loss']:.2e}, largest gradient rel. error {worst:.2e} ({worst_name}); "
          f"tolerance {result['tolerance']:.0e}: {'PASS' if ok else 'FAIL'}")
    return ok
