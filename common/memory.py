"""The memory a run will need, estimated before anything is allocated.

A spec such as num_hiddens=200000 asks for terabytes; without an estimate the first
sign is a framework's allocation traceback (or the machine swapping). The estimate
counts what every backend holds at least once: the canonical float64 draw of the
parameters, then in the run's dtype the parameters, their gradients and two optimizer
moments; per step the gate activations kept for backpropagation and the output
layer's logits, probabilities and their gradient. It is a floor, not a prediction: a
run refused by it could not have fit.
"""

from __future__ import annotations

import math
import os

from common.errors import SpecError
from common.params import param_shapes
from common.specs import RunSpec

DTYPE_BYTES = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}
GIB = 2 ** 30


def estimate_bytes(spec: RunSpec, vocab_size: int) -> int:
    """A lower bound on the bytes a run of `spec` holds at once (module docstring)."""
    model, train = spec.model, spec.train
    width = DTYPE_BYTES.get(train.dtype, 4)
    params = sum(math.prod(shape) for shape in param_shapes(model, vocab_size).values())
    tokens = train.batch_size * train.num_steps
    kept = tokens * model.num_layers * model.num_directions * (model.gates + 2) * model.num_hiddens
    output = 3 * tokens * vocab_size
    return params * (8 + 4 * width) + (kept + output) * width


def machine_bytes() -> int:
    """Physical memory of this machine (0 where the system does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def check_fits(spec: RunSpec, vocab_size: int, available: int | None = None) -> None:
    """SpecError, in one line, when the run cannot fit in this machine's memory."""
    need, have = estimate_bytes(spec, vocab_size), machine_bytes() if available is None else available
    if have and need > have:
        m, t = spec.model, spec.train
        raise SpecError(f"this spec needs at least {need / GIB:,.1f} GiB ({m.num_layers} x {m.num_hiddens} "
                        f"{m.cell}, vocabulary {vocab_size:,}, batch {t.batch_size} x {t.num_steps}) and this "
                        f"machine has {have / GIB:,.1f} GiB: lower num_hiddens, batch_size or num_steps")
