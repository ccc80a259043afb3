"""`parity`: a backend's loss and gradients against the numpy reference, on the
preset's model and its first real batch, from the same canonical parameters.

Two measures: the largest relative error per tensor (max|error| / max|reference|,
the tiny-shape tests' measure), and, for float32, an elementwise tolerance
(reference.ELEMENTWISE_TOLERANCE: every entry within atol + rtol * |reference|, as
np.allclose), which a small entry far off cannot hide under a tensor's large ones.
"""

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
    """Errors of the loss and of each gradient tensor, for the model built in `mode`
    (default: the backend's default mode); an unknown mode is refused before any data is read."""
    backend = load_backend(backend_name, threads)
    backend.check_mode(mode)
    corpus = load_corpus(spec.data, data_dir)
    X, Y = train_batches(corpus, spec, 0)[0]
    return compare(backend, spec, len(corpus.vocab), X, Y, device, mode)


def reference_params(spec: RunSpec, vocab_size: int):
    """The canonical parameters parity starts from (a `framework` init drawn uniformly)."""
    model = replace(spec.model, init="uniform") if spec.model.init == "framework" else spec.model
    return init_params(model, vocab_size, spec.train.seed, spec.train.dtype)


def inputs(spec: RunSpec, data_dir: str | None, steps: int):
    """The first batch, the canonical start and the first `steps` batches: what every
    side of a data-parallel parity check uses."""
    corpus = load_corpus(spec.data, data_dir)
    batches = train_batches(corpus, spec, 0)
    return batches[0][0], batches[0][1], reference_params(spec, len(corpus.vocab)), batches[:steps]


def compare(backend, spec: RunSpec, vocab_size: int, X: np.ndarray, Y: np.ndarray, device: str = "cpu",
            mode: str | None = None, want: tuple | None = None) -> dict:
    """Loss and gradients of `backend` in `mode` on (X, Y) against the float64 reference
    (`want`: its (loss, grads), when already worked out)."""
    params = reference_params(spec, vocab_size)
    built = backend.build(spec, vocab_size, device, params, mode)
    loss, grads = built.loss_and_grads(X, Y)
    if want is None:
        want = reference.loss_and_grads({k: v.astype(np.float64) for k, v in params.items()}, spec.model, X, Y)[:2]
    ref_loss, ref_grads = want
    errors = {name: reference.relative_error(grads[name], ref_grads[name]) for name in ref_grads}
    result = {"loss": abs(loss - ref_loss) / abs(ref_loss), "grads": errors,
              "tolerance": reference.PARITY_TOLERANCE[spec.train.dtype], "shape": X.shape, "mode": built.mode}
    if spec.train.dtype in reference.ELEMENTWISE_TOLERANCE:
        rtol, atol = reference.ELEMENTWISE_TOLERANCE[spec.train.dtype]
        result["elementwise"] = {name: reference.elementwise_excess(grads[name], ref_grads[name], rtol, atol)
                                 for name in ref_grads}
        result["rtol"], result["atol"] = rtol, atol
    return result


def passes(result: dict) -> bool:
    """Relative errors within tolerance, and every entry within the elementwise one."""
    ok = max(max(result["grads"].values()), result["loss"]) <= result["tolerance"]
    return ok and max(result.get("elementwise", {"": 0.0}).values()) <= 1.0


def print_report(backend_name: str, result: dict) -> bool:
    worst_name = max(result["grads"], key=result["grads"].get)
    worst = result["grads"][worst_name]
    ok = passes(result)
    line = (f"{backend_name} ({result['mode']} mode): batch {result['shape'][0]}x{result['shape'][1]}, "
            f"loss rel. error {result['loss']:.2e}, largest gradient rel. error {worst:.2e} ({worst_name}); "
            f"tolerance {result['tolerance']:.0e}")
    if "elementwise" in result:
        name = max(result["elementwise"], key=result["elementwise"].get)
        line += (f"; elementwise (rtol {result['rtol']:.0e}, atol {result['atol']:.0e}): worst entry at "
                 f"{result['elementwise'][name]:.2f} of its tolerance ({name})")
    print(f"{line}: {'PASS' if ok else 'FAIL'}")
    return ok
