"""Run specifications: what to train, on which data, how.

Frozen dataclasses validated on construction, so a bad field fails before any data is
read or any framework imported. Every field name is unique across the three specs,
which lets a CLI override say `lr=0.5` as well as `train.lr=0.5`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from common.errors import SpecError

CORPORA = ("time_machine", "jaychou_lyrics", "ptb")
TOKENS = ("char", "word")
TEXTS = ("lines", "whole")
CELLS = ("rnn", "gru", "lstm")
INPUTS = ("one_hot", "embedding")
INITS = ("uniform", "normal", "framework")
SAMPLINGS = ("sequential", "random", "windows")
OPTIMIZERS = ("sgd", "adam")
CARRY_STATES = ("epoch", "run")  # the recurrent state restarts from zeros every epoch, or carries over the run
DTYPES = ("float32", "float64")
SPLITS = ("valid", "test")


def _is_positive_float(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and value > 0


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SpecError(f"{name}={value!r} is not allowed; choose one of: {', '.join(allowed)}")


def _positive(name: str, value: Any, minimum: int = 1, maximum: int = 2**31 - 1) -> None:
    """An integer field within [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise SpecError(f"{name}={value!r} must be a whole number from {minimum} to {maximum}")


def _number(name: str, value: Any, minimum: float, inclusive: bool = True) -> None:
    """A finite int or float >= minimum (> with inclusive=False); NaN and infinities
    are refused here, since every comparison with NaN is false and would let it by."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    finite = ok and math.isfinite(value)
    if not finite or value < minimum or (not inclusive and value == minimum):
        kind = "a finite number" if ok and not finite else "a number"
        raise SpecError(f"{name}={value!r} must be {kind} {'>=' if inclusive else '>'} {minimum}")


@dataclass(frozen=True)
class DataSpec:
    """Which corpus and how it becomes token ids.

    `text` picks the Time Machine preprocessing: `lines` is d2l 0.x (per line, then
    joined with nothing), `whole` is d2l 2.0 (whole text, newlines become spaces).
    `num_train`/`num_val` split the `windows` sampling into train/validation windows
    (0 = all windows train, no validation). `eval_splits` names the held-out splits
    to evaluate, comma-separated (`valid`: after every epoch; `test`: once, at the
    end), `none`, or `auto` (whatever the corpus has). `unk=false` leaves `<unk>` out
    of a character vocabulary that has every character (d2l-zh's jay lyrics).
    """

    corpus: str = "time_machine"
    token: str = "char"
    text: str = "lines"
    max_tokens: int = -1
    min_freq: int = 0
    num_train: int = 0
    num_val: int = 0
    eval_splits: str = "auto"
    unk: bool = True

    def __post_init__(self) -> None:
        _choice("corpus", self.corpus, CORPORA)
        _choice("token", self.token, TOKENS)
        _choice("text", self.text, TEXTS)
        if self.max_tokens != -1:
            _positive("max_tokens (or -1 for all)", self.max_tokens, 2)
        _positive("min_freq", self.min_freq, 0)
        _positive("num_train", self.num_train, 0)
        _positive("num_val", self.num_val, 0)
        _ = self.splits  # checks the names
        if not isinstance(self.unk, bool):
            raise SpecError(f"unk={self.unk!r} must be true or false")
        if not self.unk and (self.corpus != "jaychou_lyrics" or self.min_freq > 1):
            raise SpecError("unk=false (no <unk> in the vocabulary) needs every token kept: "
                            "corpus='jaychou_lyrics' with min_freq <= 1")
        if self.corpus == "ptb" and self.token != "word":
            raise SpecError("corpus='ptb' is word-level: set token='word'")
        if self.corpus == "jaychou_lyrics" and self.token != "char":
            raise SpecError("corpus='jaychou_lyrics' is character-level: set token='char'")


    @property
    def splits(self) -> tuple[str, ...] | None:
        """The evaluated splits, or None for `auto` (all the corpus has)."""
        if self.eval_splits == "auto":
            return None
        names = () if self.eval_splits == "none" else tuple(s.strip() for s in str(self.eval_splits).split(","))
        for name in names:
            _choice("eval_splits", name, SPLITS)
        return names


@dataclass(frozen=True)
class ModelSpec:
    """The recurrent language model: stacked cells and a dense output layer."""

    cell: str = "lstm"
    num_layers: int = 2
    num_hiddens: int = 256
    bidirectional: bool = False
    input: str = "one_hot"
    embed_size: int = 0
    dropout: float = 0.0
    init: str = "uniform"
    init_scale: float = 0.0

    def __post_init__(self) -> None:
        _choice("cell", self.cell, CELLS)
        _positive("num_layers", self.num_layers)
        _positive("num_hiddens", self.num_hiddens)
        if not isinstance(self.bidirectional, bool):
            raise SpecError(f"bidirectional={self.bidirectional!r} must be true or false")
        _choice("input", self.input, INPUTS)
        _choice("init", self.init.split(":", 1)[0] if isinstance(self.init, str) else self.init, INITS)
        if ":" in self.init and not (self.init.startswith("normal:") and _is_positive_float(self.init[7:])):
            raise SpecError(f"init={self.init!r}: the standard deviation after 'normal:' must be a number > 0 "
                            "(e.g. normal:0.01)")
        if self.input == "embedding":
            _positive("embed_size (required with input='embedding')", self.embed_size)
        _number("init_scale (0 = the init's own scaling)", self.init_scale, 0)
        if self.init_scale and self.init != "uniform":
            raise SpecError(f"init_scale={self.init_scale} draws U(-s, s) for every parameter: it needs init='uniform'")
        if isinstance(self.dropout, bool) or not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
            raise SpecError(f"dropout={self.dropout!r} must be in [0, 1)")

    @property
    def init_std(self) -> float:
        """The standard deviation of `normal` (or `normal:S`) weights; 0.01 by default,
        d2l 0.17's MXNet `init.Normal(0.01)`."""
        return float(self.init.split(":", 1)[1]) if ":" in self.init else 0.01

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def gates(self) -> int:
        """Gate blocks stacked in w_ih/w_hh: 4 (i,f,g,o), 3 (r,z,n) or 1."""
        return {"lstm": 4, "gru": 3, "rnn": 1}[self.cell]


@dataclass(frozen=True)
class TrainSpec:
    """How batches are drawn and the model optimised.

    Learning-rate schedule: epoch e (from 1) trains with lr * lr_decay**(e - decay_after)
    once e > decay_after, else lr (Zaremba et al.'s main.lua: lr 1, lr_decay 0.5,
    decay_after 5; TensorFlow's tutorial: decay_after 4).
    `random_offset=false` starts sequential batches at token 0 every epoch (the same
    batches each epoch, as d2l-zh's `data_iter_consecutive` and Zaremba's code).
    `eval_batch_size` cuts held-out splits into that many rows (0: batch_size); 1
    evaluates each split as one continuous stream with the state carried through it.
    """

    batch_size: int = 32
    num_steps: int = 35
    sampling: str = "sequential"
    optimizer: str = "sgd"
    lr: float = 2.0
    clip: float = 1.0
    epochs: int = 500
    seed: int = 0
    dtype: str = "float32"
    lr_decay: float = 1.0
    decay_after: int = 0
    random_offset: bool = True
    eval_batch_size: int = 0
    valid_batch_size: int = 0
    carry_state: str = "epoch"

    def __post_init__(self) -> None:
        if self.clip == "none":  # the d2lzh book's effective clipping (its clip never ran): recorded as 0
            object.__setattr__(self, "clip", 0.0)
        _positive("batch_size", self.batch_size)
        _positive("num_steps", self.num_steps)
        _choice("sampling", self.sampling, SAMPLINGS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _number("lr", self.lr, 0, inclusive=False)
        _number("clip (0 or \"none\" disables clipping)", self.clip, 0)
        _positive("epochs", self.epochs)
        _positive("seed", self.seed, 0, 2**32 - 1)
        _choice("dtype", self.dtype, DTYPES)
        _number("lr_decay", self.lr_decay, 0, inclusive=False)
        _positive("decay_after", self.decay_after, 0)
        if not isinstance(self.random_offset, bool):
            raise SpecError(f"random_offset={self.random_offset!r} must be true or false")
        _positive("eval_batch_size (0 = batch_size)", self.eval_batch_size, 0)
        _positive("valid_batch_size (0 = eval_batch_size)", self.valid_batch_size, 0)
        _choice("carry_state", self.carry_state, CARRY_STATES)
        if self.carry_state == "run" and self.sampling != "sequential":
            raise SpecError(f"carry_state='run' carries the state from one epoch into the next, which only "
                            f"sequential batches continue; sampling={self.sampling!r} starts every batch from "
                            f"zeros: use sampling='sequential' or carry_state='epoch'")
        if self.lr_decay != 1 and self.decay_after >= self.epochs:
            raise SpecError(
                f"the schedule decays the lr from epoch decay_after+1 = {self.decay_after + 1}, past the last "
                f"epoch ({self.epochs}): use decay_after <= {self.epochs - 1}, epochs >= {self.decay_after + 1}, "
                f"or lr_decay=1 (no schedule)")

    def lr_at(self, epoch: int) -> float:
        """The learning rate of epoch `epoch` (counted from 1)."""
        return self.lr * self.lr_decay ** max(0, epoch - self.decay_after)

    @property
    def valid_rows(self) -> int:
        """Rows of the validation split's batches (`valid_batch_size`, else as the test split)."""
        return self.valid_batch_size or self.eval_batch_size or self.batch_size

    @property
    def carries_state(self) -> bool:
        """Sequential batches continue each other, so the state is carried (detached)."""
        return self.sampling == "sequential"


SECTIONS = {"data": DataSpec, "model": ModelSpec, "train": TrainSpec}


@dataclass(frozen=True)
class RunSpec:
    data: DataSpec = DataSpec()
    model: ModelSpec = ModelSpec()
    train: TrainSpec = TrainSpec()

    def __post_init__(self) -> None:
        if self.train.sampling != "windows" and (self.data.num_train or self.data.num_val):
            raise SpecError("num_train/num_val split windows; they need sampling='windows'")

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "RunSpec":
        unknown = set(raw) - set(SECTIONS)
        if unknown:
            raise SpecError(f"unknown spec section(s) {sorted(unknown)}; use {list(SECTIONS)}")
        parts = {}
        for name, klass in SECTIONS.items():
            section = raw.get(name, {})
            if not isinstance(section, dict):
                raise SpecError(f"[{name}] must be a table of fields, not {section!r}")
            section = dict(section)
            known = {f.name for f in fields(klass)}
            bad = set(section) - known
            if bad:
                raise SpecError(f"unknown field(s) {sorted(bad)} in [{name}]; known: {sorted(known)}")
            parts[name] = klass(**section)
        return cls(**parts)

    def with_overrides(self, assignments: list[str]) -> "RunSpec":
        """Apply `field=value` or `section.field=value` strings (values parsed as TOML)."""
        raw = self.to_dict()
        for item in assignments:
            section, key, value = _parse_assignment(item)
            raw[section][key] = value
        return RunSpec.from_dict(raw)


def _field_section(key: str) -> str:
    for name, klass in SECTIONS.items():
        if key in {f.name for f in fields(klass)}:
            return name
    known = sorted(f.name for k in SECTIONS.values() for f in fields(k))
    raise SpecError(f"unknown field {key!r}; known fields: {', '.join(known)}")


def _parse_assignment(item: str) -> tuple[str, str, Any]:
    if "=" not in item:
        raise SpecError(f"override {item!r} must look like field=value (e.g. lr=0.5)")
    key, text = (part.strip() for part in item.split("=", 1))
    section, _, key = key.rpartition(".")
    if section and section not in SECTIONS:
        raise SpecError(f"unknown spec section {section!r} in {item!r}; use {list(SECTIONS)}")
    section = section or _field_section(key)
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text  # bare words such as gru or sgd
    return section, key, value


PRESET_DIR = Path(__file__).resolve().parent.parent / "benchmarks" / "presets"


def preset_names(preset_dir: Path | None = None) -> list[str]:
    """Names of the presets in `preset_dir` that load; a malformed one is left out
    with a one-line warning on stderr (once per file), so it cannot hide the rest from
    `list` or a suite. Asking for it by name still gives its error."""
    preset_dir = preset_dir or PRESET_DIR  # read at call time, so tests can point it elsewhere
    names = []
    for path in sorted(preset_dir.glob("*.toml")):
        try:
            load_preset(path.stem, preset_dir)
        except SpecError as exc:
            if path not in _WARNED:
                _WARNED.add(path)
                print(f"warning: {exc}", file=sys.stderr)
            continue
        names.append(path.stem)
    return names


_WARNED: set[Path] = set()


def is_preset_path(name: str) -> bool:
    """Whether --preset names a file (holds a path separator or ends in .toml) rather
    than a preset of benchmarks/presets; a name never reaches outside that folder."""
    return "/" in name or os.sep in name or name.endswith(".toml")


def preset_name(name: str) -> str:
    """What a record calls the preset: a file's own name without .toml, else the name."""
    return Path(name).stem if is_preset_path(name) else name


def load_preset(name: str, preset_dir: Path | None = None) -> tuple[RunSpec, dict[str, Any]]:
    """A preset's RunSpec and its `[book]` metadata (what the source reported).

    Every problem with the file (unreadable, not UTF-8, not TOML, a section or field
    of the wrong type) is one SpecError line that names the file.
    """
    preset_dir = preset_dir or PRESET_DIR
    if is_preset_path(name):
        path = Path(name)
        if not path.is_file():
            raise SpecError(f"preset file {name} not found: a preset is a name from `list` or the path of an "
                            "existing .toml file")
    else:
        path = preset_dir / f"{name}.toml"
    if not path.is_file():
        available = sorted(p.stem for p in preset_dir.glob("*.toml"))
        raise SpecError(f"unknown preset {name!r}; available: {', '.join(available)}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise SpecError(f"preset file {path} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    except OSError as exc:
        raise SpecError(f"preset file {path} cannot be read ({exc.strerror}): check its permissions") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"preset file {path} is not valid TOML: {exc}") from None
    try:
        meta = raw.pop("book", {})
        if not isinstance(meta, dict):
            raise SpecError(f"[book] must be a table (e.g. target_ppl = 1.1), not {meta!r}")
        description = raw.pop("description", "")
        if not isinstance(description, str):
            raise SpecError(f"description must be a string, not {description!r}")
        seeds = raw.pop("seeds", 1)
        _positive("seeds (how many seeds a run of this preset trains)", seeds, 1, 1000)
        _check_book(meta)
        spec = RunSpec.from_dict(raw)
    except SpecError as exc:
        raise SpecError(f"preset file {path}: {exc}") from None
    return spec, {**meta, "description": description, "seeds": seeds}


def _check_book(meta: dict[str, Any]) -> None:
    """The `[book]` fields the harness and report read: a target perplexity, its
    metric, and `results`, the book's printed numbers (a list of tables)."""
    results = meta.get("results", [])
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise SpecError("[book] results must be a list of tables, e.g. [{ framework = \"mxnet\", ppl = 1.1 }]")
    target = meta.get("target_ppl")
    if target is not None:
        _number("[book] target_ppl", target, 1)
    if meta.get("metric", "train_ppl") not in ("train_ppl", "val_ppl"):
        raise SpecError(f"[book] metric={meta['metric']!r} is not allowed; choose one of: train_ppl, val_ppl")
