"""The adapter interface every framework implements.

A `Backend` names its framework, lists devices, describes its build and threads, and
builds a `LanguageModel` from a RunSpec. Everything crossing this interface is numpy
or plain Python: batches are int32 arrays (batch, num_steps) made once by `common`,
parameters are dicts in the canonical layout of `common.params`.

Contract for `train_epoch`/`evaluate`: all device work is finished before they
return (one sync per epoch, none per step), so the harness's wall clock is honest.

The base classes do what is the same in every framework, once: `Backend.build`
checks the mode, device and parameters and then calls the backend's `_build`;
`LanguageModel`'s public methods check their inputs (integer ids in [0, vocab),
(batch, num_steps) shapes, a non-empty prefix) and then call the `_`-prefixed hooks a
backend implements. The tests in tests/contract hold every backend to this contract.
"""

from __future__ import annotations

import math
import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Mapping, Sequence

import numpy as np

from common.batches import Batch
from common.errors import DeviceUnavailable, SpecError
from common.params import Params, check_params
from common.specs import RunSpec


@dataclass(frozen=True)
class EpochStats:
    """Loss summed over tokens (mean loss x tokens per batch) and the token count."""

    loss_sum: float
    tokens: int


@dataclass(frozen=True)
class Device:
    kind: str  # "cpu" or "gpu"
    index: int

    def __str__(self) -> str:
        return self.kind if self.kind == "cpu" else f"{self.kind}:{self.index}"


def parse_device(text: str) -> Device:
    """`cpu`, `gpu`, `gpu:N` (also `cuda:N`) -> Device; anything else is an error."""
    match = re.fullmatch(r"(cpu|gpu|cuda)(?::(\d+))?", text.strip().lower())
    if not match:
        raise DeviceUnavailable(f"device {text!r} is not understood; use cpu or gpu:N (e.g. gpu:0)")
    kind = "cpu" if match.group(1) == "cpu" else "gpu"
    if kind == "cpu" and int(match.group(2) or 0) != 0:
        raise DeviceUnavailable(f"device {text!r}: the CPU is one device, `cpu` (threads are set with --threads)")
    return Device(kind, int(match.group(2) or 0))


def require_device(device: Device, available: Sequence[str], framework: str) -> None:
    """Raise a clear error when `device` is not one this framework can see."""
    if str(device) in available or (device.kind == "cpu" and "cpu" in available):
        return
    if device.kind == "gpu" and not any(d.startswith("gpu") for d in available):
        raise DeviceUnavailable(
            f"{framework} sees no GPU on this machine (devices: {', '.join(available)}); "
            "run with --device cpu, or install the framework's CUDA build on a machine with a GPU"
        )
    raise DeviceUnavailable(f"{framework} has no device {device}; available: {', '.join(available)}")


def best_flops(work: Callable[[], Any], flops: float, repeats: int, warmup: int = 2) -> float:
    """FLOP/s of the fastest of `repeats` calls of `work` (which must block until done)."""
    for _ in range(warmup):
        work()
    best = math.inf
    for _ in range(repeats):
        tic = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - tic)
    return flops / best


def check_ids(ids: np.ndarray, vocab_size: int, what: str = "token ids") -> None:
    """Integer ids in [0, vocab_size): one-hot encoding would silently turn an id
    outside it into zeros in some frameworks (MXNet, JAX) and an error in others."""
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{what} must be integers; got {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"token ids must lie in [0, {vocab_size}); {what} have {ids.min()}..{ids.max()}")


def check_batch(X: np.ndarray, Y: np.ndarray | None, vocab_size: int) -> None:
    """A batch is an int (batch, num_steps) array of inputs and one of targets alike."""
    X = np.asarray(X)
    if X.ndim != 2 or (Y is not None and np.shape(Y) != X.shape):
        got = f"X {X.shape}" + ("" if Y is None else f", Y {np.shape(Y)}")
        raise ValueError(f"a batch must be (batch, num_steps) arrays; got {got}")
    check_ids(X, vocab_size, "batch inputs")
    if Y is not None:
        check_ids(np.asarray(Y), vocab_size, "batch targets")


TRACKS = ("out-of-box", "tuned", "book")
TRACK_MEANING = {
    "out-of-box": "the framework as its documentation and the book teach it: its own recurrent layers, optimizer "
                  "and clipping, no project kernels",
    "tuned": "the fastest this project makes the framework go; every trick is named in the mode's description",
    "book": "d2l's own training loop as the book wrote it (per-step host syncs), on the book's library layers",
}


@dataclass(frozen=True)
class ModeInfo:
    """What every backend's `Mode` row says about itself: its track (one of TRACKS)
    and a one-line description naming each trick (or library call) it uses. Backends
    subclass it (or give their own `Mode` these two fields) and add their settings."""

    track: str = "tuned"
    description: str = ""
    init: str = field(default="", kw_only=True)  # a book mode's source's own init; "": the spec's

    def __post_init__(self) -> None:
        if self.track not in TRACKS:
            raise ValueError(f"track {self.track!r} is not one of {', '.join(TRACKS)}")

    @property
    def library(self) -> bool:
        """The framework's own layers, optimizer and clipping, nothing of this project's:
        the out-of-box switch, spelled once for every backend."""
        return self.track == "out-of-box"

    @property
    def book(self) -> bool:
        """d2l's own training loop as the book wrote it."""
        return self.track == "book"


class LanguageModel(ABC):
    """A built model on one device, with its optimizer and carried state.

    Callers use the public methods, which check their inputs; a backend implements
    the hooks (`_train_epoch`, `_evaluate`, `_predict`, `_loss_and_grads`, and
    optionally `_recurrent_pass`), which receive only checked inputs."""

    spec: RunSpec
    mode: str
    vocab_size: int
    # The eps a library's own clipping adds to the norm (clip / (norm + eps)); 0 for the
    # project's exact clip. The contract's trajectory tests hand it to the reference.
    clip_epsilon: float = 0.0

    def _checked(self, batches: Iterable[Batch]) -> Iterable[Batch]:
        for X, Y in batches:
            check_batch(X, Y, self.vocab_size)
            yield X, Y

    def train_epoch(self, batches: Iterable[Batch]) -> EpochStats:
        """One pass of clipped updates; state reset at the epoch start (or, with
        `carry_state = "run"`, the last epoch's), then carried (detached) across batches
        for `sequential` sampling or reset per batch."""
        return self._train_epoch(self._checked(batches))

    def _epoch_start_state(self):
        """The state a training epoch starts from: None (zeros) unless the spec carries
        it over the run (`carry_state = "run"`, as the d2lzh book's loop sets `state =
        None` once, before its epochs); then the last training epoch's final state."""
        return getattr(self, "_run_state", None) if self.spec.train.carry_state == "run" else None

    def _epoch_end_state(self, state) -> None:
        """Keep a training epoch's final state for the next one (`carry_state = "run"`)."""
        if self.spec.train.carry_state == "run":
            self._run_state = state

    def evaluate(self, batches: Iterable[Batch]) -> EpochStats:
        """Loss without updates (and without dropout), state handled as in training."""
        return self._evaluate(self._checked(batches))

    def predict(self, prefix_ids: Sequence[int], num_preds: int) -> list[int]:
        """Greedy continuation (d2l's predict_ch8): the `num_preds` ids after the prefix."""
        if isinstance(num_preds, bool) or not isinstance(num_preds, (int, np.integer)) or num_preds < 0:
            raise ValueError(f"num_preds must be an integer >= 0; got {num_preds!r}")
        prefix = np.asarray(prefix_ids)
        if prefix.size == 0:
            raise ValueError("predict needs a non-empty prefix")
        check_ids(prefix.reshape(-1), self.vocab_size, "prefix ids")
        return self._predict([int(i) for i in prefix.reshape(-1)], int(num_preds)) if num_preds else []

    def loss_and_grads(self, X: np.ndarray, Y: np.ndarray) -> tuple[float, Params]:
        """Mean loss and canonical gradients for one batch from a zero state."""
        check_batch(X, Y, self.vocab_size)
        return self._loss_and_grads(X, Y)

    def recurrent_pass(self, X: np.ndarray, grads: bool = False) -> tuple[float, Params | None]:
        """Forward and backward (to the recurrent weights, of the outputs' sum) of the
        recurrent layers alone on batch X's inputs from a zero state; returns that sum,
        whose read is the sync, and with `grads` the canonical `rnn.*` gradients (read
        after it, for the tests). No embedding gradient, dense layer, loss or update:
        the micro-benchmarks' `recurrent` kind, which sets the framework's recurrent
        kernels against the same ceiling as the whole training step."""
        check_batch(X, None, self.vocab_size)
        return self._recurrent_pass(X, grads)

    def set_learning_rate(self, lr: float) -> None:
        """Train the following steps with learning rate `lr` (the harness's schedule sets
        it before an epoch); the optimizer's other state (Adam's moments) is kept."""
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"the learning rate must be a finite number > 0; got {lr!r}")
        self._set_learning_rate(float(lr))

    def _set_learning_rate(self, lr: float) -> None:
        """Set the optimizer's learning rate for subsequent steps (every backend model)."""
        raise NotImplementedError(f"{type(self).__name__} cannot change its learning rate")

    @abstractmethod
    def get_params(self) -> Params:
        """Current parameters, canonical layout, as numpy arrays."""

    @abstractmethod
    def set_params(self, params: Params) -> None:
        """Load canonical parameters (and reset the optimizer state)."""

    # -- the hooks a backend implements (inputs already checked) -----------------------
    @abstractmethod
    def _train_epoch(self, batches: Iterable[Batch]) -> EpochStats: ...

    @abstractmethod
    def _evaluate(self, batches: Iterable[Batch]) -> EpochStats: ...

    @abstractmethod
    def _predict(self, prefix_ids: list[int], num_preds: int) -> list[int]:
        """`num_preds` >= 1 and a non-empty prefix of ids in range."""

    @abstractmethod
    def _loss_and_grads(self, X: np.ndarray, Y: np.ndarray) -> tuple[float, Params]: ...

    def _recurrent_pass(self, X: np.ndarray, grads: bool) -> tuple[float, Params | None]:
        raise NotImplementedError(f"{type(self).__name__} does not time its recurrent layers alone")


class IncompleteBackend(TypeError):
    """A backend class that misses a piece of the interface (raised when it is defined)."""


_BACKEND_HOOKS = ("devices", "environment", "set_threads", "_build")  # Backend's abstract methods


class Backend(ABC):
    """One framework. Subclasses import their framework at module level; the registry
    in `backends/__init__.py` imports them only when asked for by name.

    Modes, one convention in every backend: its backend.py has a table `MODES`, mode
    name -> a frozen `Mode` (a `ModeInfo`: track, description, and the out-of-box and
    book switches that follow from the track) of that mode's settings. `_build` builds
    every model the same way, `Model(spec, vocab_size, device, params, mode, MODES[mode])`,
    and model code reads the settings, never the mode's name."""

    name: str
    framework: str
    default_mode: str
    MODES: ClassVar[Mapping[str, ModeInfo]]  # mode name -> its frozen Mode row (the backend.py table)
    modes: tuple[str, ...]  # tuple(MODES), set by the class check below

    def __init_subclass__(cls, **kwargs) -> None:
        """The "adding a backend" checklist, enforced when a backend class is defined
        (a class that sets `name`; one without is a shared base): its names, its mode
        table and every hook, each missing piece named in one line."""
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            return
        missing = [a for a in ("framework", "default_mode", "MODES") if not hasattr(cls, a)]
        missing += [h for h in _BACKEND_HOOKS if getattr(getattr(cls, h, None), "__isabstractmethod__", False)]
        if missing:
            raise IncompleteBackend(f"backend {cls.name!r} ({cls.__module__}.{cls.__name__}) lacks "
                                    f"{', '.join(missing)}: see README, Adding a backend")
        bad = [m for m, row in cls.MODES.items() if getattr(row, "track", None) not in TRACKS]
        if bad or cls.default_mode not in cls.MODES:
            raise IncompleteBackend(f"backend {cls.name!r}: every MODES row needs a track ({', '.join(TRACKS)}) and "
                                    f"default_mode must be one of MODES; check {', '.join(bad) or cls.default_mode}")
        cls.modes = tuple(cls.MODES)

    @abstractmethod
    def devices(self) -> list[str]:
        """Devices this framework can run on here, e.g. ["cpu", "gpu:0"]."""

    @abstractmethod
    def environment(self) -> dict[str, Any]:
        """Framework version, build features (oneDNN, CUDA, cuDNN), threads in use."""

    @abstractmethod
    def set_threads(self, threads: int) -> None:
        """Use `threads` intra-op threads (called once, before building models)."""

    def build(self, spec: RunSpec, vocab_size: int, device: str = "cpu",
              params: Params | None = None, mode: str | None = None) -> LanguageModel:
        """A model for `spec`, on `device`, starting from `params` (canonical) or, when
        None, from the framework's own (seeded) initialisation, run in `mode` (default:
        `default_mode`). Checks all three, then calls `_build`."""
        mode = self.check_mode(mode)
        dev = parse_device(device)
        require_device(dev, self.devices(), self.framework)
        if params is not None:
            check_params(params, spec.model, vocab_size)
        return self._build(spec, vocab_size, dev, params, mode)

    @abstractmethod
    def _build(self, spec: RunSpec, vocab_size: int, device: Device, params: Params | None,
               mode: str) -> LanguageModel:
        """The model, from checked arguments."""

    def matmul_peak(self, device: str = "cpu", n: int = 2048, repeats: int = 5) -> float:
        """Best-of float32 FLOP/s of the framework's plain n x n matmul (`a @ b`,
        `nd.dot`, `jnp.dot`: the same choice in every framework) on `device`,
        synchronised: the campaign's ceiling is the best of these over its frameworks."""
        raise NotImplementedError(f"{self.name} does not measure a matmul peak")

    def matmul_peaks(self, device: str = "cpu", n: int = 2048, repeats: int = 5) -> dict[str, float]:
        """FLOP/s of each float32 matmul this framework offers (its `plain` one first,
        then e.g. the library its recurrent kernels call): the framework's `own peak` is
        the best of them, shown beside the ceiling and never mixed into it."""
        return {"plain": self.matmul_peak(device, n, repeats)}

    def device_name(self, device: str) -> str | None:
        """A GPU's model name; None for the CPU (the harness reads the CPU model)."""
        return None

    def device_memory(self, device: str) -> tuple[float, float] | None:
        """(MiB now, peak MiB since `reset_device_peak`) of the framework's own allocator
        on a GPU; None on the CPU (its memory is the process's, measured by common.rss)
        or where the framework does not say."""
        return None

    def reset_device_peak(self, device: str) -> None:  # noqa: B027 - optional: most devices keep no peak
        """Start the device's peak over, where the framework can (before training)."""

    @property
    def mode_table(self) -> Mapping[str, ModeInfo]:
        """The backend's `MODES` table (mode name -> its frozen `Mode` row)."""
        return self.MODES

    def track_of(self, mode: str) -> str:
        """The track ("out-of-box", "tuned" or "book") of one of this backend's modes."""
        row = self.mode_table[mode]
        track = getattr(row, "track", None)
        if track not in TRACKS:
            raise SpecError(f"{self.name} mode {mode!r} has no track (give its Mode a `track`, one of "
                            f"{', '.join(TRACKS)})")
        return track

    def describe_mode(self, mode: str) -> str:
        return getattr(self.mode_table[mode], "description", "") or ""

    def mode_for(self, track: str) -> str | None:
        """The mode that stands for `track` in this backend: for `tuned` the default mode
        (the fastest), otherwise the first mode of that track in `MODES`; None if none."""
        if track not in TRACKS:
            raise SpecError(f"unknown track {track!r}; choose one of: {', '.join(TRACKS)}")
        if track == "tuned":
            return self.default_mode
        return next((m for m in self.modes if self.track_of(m) == track), None)

    def track_modes(self) -> dict[str, str]:
        """track -> the mode standing for it, for the tracks this backend has."""
        found = {track: self.mode_for(track) for track in TRACKS}
        return {track: mode for track, mode in found.items() if mode is not None}

    def check_mode(self, mode: str | None) -> str:
        """A mode name, or a track name standing for that track's mode (so a campaign can
        ask every backend for `tuned` and `out-of-box` alike); None: the default mode."""
        mode = mode or self.default_mode
        if mode not in self.modes and mode in TRACKS:
            found = self.mode_for(mode)
            if found is None:
                raise SpecError(f"{self.name} has no {mode!r} mode; its tracks: {', '.join(self.track_modes())}")
            return found
        if mode not in self.modes:
            raise SpecError(f"{self.name} has no mode {mode!r}; choose one of: {', '.join(self.modes)} "
                            f"(or a track: {', '.join(self.track_modes())})")
        return mode
