"""The micro-benchmark matrix (backend x cell x mode) and the workload each case times.

Framework-free until a case is enumerated: backends load through the registry, and a
backend whose framework is absent becomes one `Unavailable` entry (skipped, with the
reason) instead of an import error. The shape is d2l-deep-lstm's (2 layers x 256,
one-hot input over 28 characters, batch 32 x 35 steps) with the cell swapped; the
batch is random int32 ids, so no data files are needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from backends import BACKENDS, load_backend
from backends.base import Backend, LanguageModel
from common.errors import BackendUnavailable
from common.flops import forward_flops_per_token, recurrent_train_flops_per_token, train_flops_per_token
from common.params import init_params
from common.specs import CELLS, RunSpec, load_preset

SHAPE_PRESET = "d2l-deep-lstm"
VOCAB_SIZE = 28  # the Time Machine's character vocabulary in that preset
KINDS = ("train", "recurrent", "generate")
SEED = 0


@dataclass(frozen=True)
class Case:
    """One backend, cell and execution mode."""

    backend: str
    cell: str
    mode: str

    @property
    def id(self) -> str:
        return f"{self.backend}-{self.cell}-{self.mode}"

    @classmethod
    def from_id(cls, text: str) -> "Case":
        """The inverse of `id` (backend and cell names hold no '-'; a mode may)."""
        backend, cell, mode = text.split("-", 2)
        return cls(backend, cell, mode)


@dataclass(frozen=True)
class Unavailable:
    """A backend that cannot load here: one skipped entry, with the reason."""

    backend: str
    reason: str

    @property
    def id(self) -> str:
        return f"{self.backend}-unavailable"


def enumerate_cases(backends: list[str] | None = None, threads: int | None = None,
                    cells: tuple[str, ...] = CELLS) -> list[Case | Unavailable]:
    """Every (cell, mode) of every loadable backend in `backends` (default: all)."""
    out: list[Case | Unavailable] = []
    for name in backends or list(BACKENDS):
        try:
            backend = load_backend(name, threads)
        except BackendUnavailable as exc:
            out.append(Unavailable(name, str(exc)))
            continue
        out += [Case(name, cell, mode) for cell in cells for mode in backend.modes]
    return out


def micro_spec(cell: str) -> RunSpec:
    """d2l-deep-lstm's spec with `cell` swapped in."""
    spec, _ = load_preset(SHAPE_PRESET)
    return spec.with_overrides([f"cell={cell}"])


def random_batch(spec: RunSpec, vocab_size: int = VOCAB_SIZE, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """(X, Y) int32 ids of shape (batch, num_steps), drawn once from a seeded generator."""
    rng = np.random.default_rng(seed)
    shape = (spec.train.batch_size, spec.train.num_steps)
    return (rng.integers(0, vocab_size, shape, dtype=np.int32), rng.integers(0, vocab_size, shape, dtype=np.int32))


@dataclass
class Workload:
    """A built model and the two timed calls. Both return only after the device is done
    (`train_epoch` and `predict` guarantee it: a sync inside the timed call)."""

    case: Case
    backend: Backend
    model: LanguageModel
    spec: RunSpec
    batch: tuple[np.ndarray, np.ndarray]
    vocab_size: int = VOCAB_SIZE
    prefix: list[int] = field(default_factory=lambda: [1])

    def train_step(self) -> None:
        """Forward, backward, clip and update on one batch (state reset first)."""
        self.model.train_epoch([self.batch])

    def recurrent_step(self) -> None:
        """Forward and backward of the recurrent layers alone (`recurrent_pass`): how close
        the framework's recurrent kernels come to the ceiling without the rest of a step."""
        self.model.recurrent_pass(self.batch[0])

    def generate_step(self) -> None:
        """One greedy token from a one-token prefix: one forward step, argmax, host read."""
        self.model.predict(self.prefix, 1)

    def tokens(self, kind: str) -> int:
        """Tokens one call of `kind` processes."""
        return 1 if kind == "generate" else self.batch[0].size

    def flops_per_token(self, kind: str) -> int:
        """Model FLOPs per token (common.flops): training and the recurrent layers alone
        count forward, weight-gradient and needed input-gradient products; generation
        the forward ones."""
        if kind == "recurrent":
            return recurrent_train_flops_per_token(self.spec.model, self.vocab_size)
        fn = train_flops_per_token if kind == "train" else forward_flops_per_token
        return fn(self.spec.model, self.vocab_size)

    def step(self, kind: str):
        return {"train": self.train_step, "recurrent": self.recurrent_step, "generate": self.generate_step}[kind]


def build_workload(case: Case, threads: int | None = None, device: str = "cpu") -> Workload:
    """The case's model at the micro shape, from the canonical seeded parameters."""
    backend = load_backend(case.backend, threads)
    spec = micro_spec(case.cell)
    params = init_params(spec.model, VOCAB_SIZE, spec.train.seed, spec.train.dtype)
    model = backend.build(spec, VOCAB_SIZE, device, params, case.mode)
    return Workload(case, backend, model, spec, random_batch(spec))


def extra_info(work: Workload, kind: str, device: str, median_s: float | None, min_s: float | None,
               matmul_peak: float | None = None) -> dict:
    """What the JSON keeps beside pytest-benchmark's timings: the case, the work per call,
    tokens/sec and model FLOP/s at the median (and best) time, and the framework's float32
    matmul peak measured in the same session (the report's ceiling is the best of them)."""
    env = work.backend.environment()
    tokens, per_token = work.tokens(kind), work.flops_per_token(kind)
    info = {"backend": work.case.backend, "cell": work.case.cell, "mode": work.case.mode,
            "mode_default": work.case.mode == work.backend.default_mode, "kind": kind, "device": device,
            "threads": env.get("threads"), "framework_version": env.get("version"),
            "shape": f"{SHAPE_PRESET}: {work.spec.model.num_layers}x{work.spec.model.num_hiddens}, vocab "
                     f"{work.vocab_size}, batch {work.spec.train.batch_size}x{work.spec.train.num_steps}",
            "tokens_per_call": tokens, "flops_per_token": per_token, "matmul_peak": matmul_peak}
    for label, seconds in (("median", median_s), ("best", min_s)):
        if seconds:
            info[f"tok_s_{label}"] = tokens / seconds
            info[f"flops_s_{label}"] = tokens * per_token / seconds
    return info
