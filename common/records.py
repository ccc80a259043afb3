"""Result records: one JSON object per run, appended to JSON Lines files.

The schema is DESIGN.md's contract between the harness and the report. Several runs
may append to the same file at once (parallel `run`s, a suite and a manual run), so a
record is added as one complete line by a single `write` on a descriptor opened with
O_APPEND, under an exclusive fcntl lock: no update is lost, no line is ever half
written, and the file is never rewritten or replaced (its mode, owner and any symlink
pointing at it are kept). Lines are strict JSON (non-finite floats are written as
null) so any JSON reader can load them; older files with NaN/Infinity still read.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import re
import uuid
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from common.errors import SpecError

SCHEMA = "rnnbench/run/1"
STATUSES = ("ok", "diverged", "interrupted", "error")
REQUIRED = ("schema", "run_id", "timestamp", "status", "backend", "mode", "device", "preset",
            "spec", "epochs", "summary", "samples", "env")


# Names a user gives that records keep and reports print (--campaign, --tag, --contender,
# --twin-of, --run-id): letters, digits and a few separators, so no name can carry markup
# (a tag, a heading, a code span) into REPORT.md or a terminal.
SAFE_NAME = re.compile(r"[A-Za-z0-9_.,:/@~+= -]{1,120}")


def check_name(flag: str, value: str | None) -> None:
    """SpecError, in one line, for a name outside SAFE_NAME."""
    if value is not None and not SAFE_NAME.fullmatch(value):
        raise SpecError(f"{flag} {value!r}: use 1-120 letters, digits, spaces and _ . , : / @ ~ + = - "
                        "(a name is printed in reports as written)")


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def new_campaign_id() -> str:
    """A campaign id that sorts by start time: UTC date and time, then 4 random hex digits."""
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Add `record` as one line at the end of `path` (created if missing).

    Safe against concurrent appenders and interruption: the line goes out in one
    os.write on an O_APPEND descriptor while an exclusive lock is held, then is
    fsynced. A short write (disk full) is cut back off, so a reader never sees a half
    line; a file whose last line lacks its newline (a foreign edit) gets one first.
    """
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise ValueError(f"record lacks required fields {missing}")
    line = json.dumps(_strict(record), sort_keys=True, allow_nan=False).encode() + b"\n"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)  # follows symlinks
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)  # released by os.close
        size = os.fstat(fd).st_size
        data = line if size == 0 or os.pread(fd, 1, size - 1) == b"\n" else b"\n" + line
        written = os.write(fd, data)
        if written != len(data):
            os.ftruncate(fd, size)
            raise OSError(errno.ENOSPC, f"only {written} of {len(data)} bytes written, record not kept", str(path))
        os.fsync(fd)
    finally:
        os.close(fd)


def _strict(value: Any) -> Any:
    """`value` with every NaN/Infinity float replaced by None (JSON has no such numbers;
    a run's `status` and `error` already say that it diverged)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def iter_records(root: Path) -> Iterator[dict[str, Any]]:
    """Every valid record under `root` (a file or a folder of *.jsonl files)."""
    for _, _, record in iter_located(root):
        yield record


def iter_located(root: Path) -> Iterator[tuple[Path, int, dict[str, Any]]]:
    """(file, line number, record) for every valid record under `root`.

    No single file or line can stop the reading: only regular files are read (a folder
    named *.jsonl, a link to nothing or a FIFO is named and skipped); a file that cannot
    be read is skipped with its reason; each line is checked on its own (UTF-8, JSON
    whose numbers are all finite, one of our records with its required fields), and
    each file with bad lines gets one warning, `path: k of n lines skipped (line 3: not
    JSON; ...)`. NaN and Infinity, which files written before records became strict
    JSON hold, read as null, as the writer writes them now (so does a number too large
    for a float, such as 1e400)."""
    for path in _record_files(Path(root)):
        try:
            data = path.read_bytes()
        except OSError as exc:
            warnings.warn(f"{path}: skipped, cannot be read ({exc.strerror or exc})", stacklevel=2)
            continue
        problems, total = [], 0
        for number, raw in enumerate(data.split(b"\n"), 1):
            if not raw.strip():
                continue
            total += 1
            record, why = parse_line(raw)
            if why:
                problems.append(f"line {number}: {why}")
            else:
                yield path, number, record
        if problems:
            shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3:,} more" if len(problems) > 3 else "")
            warnings.warn(f"{path}: {len(problems):,} of {total:,} lines skipped ({shown})", stacklevel=2)


def _record_files(root: Path) -> list[Path]:
    """The regular *.jsonl files at or under `root`; anything else is named and skipped."""
    if root.is_file():
        return [root]
    if not root.is_dir():
        warnings.warn(f"{root}: skipped, {_not_regular(root)}", stacklevel=3)
        return []
    files = []
    for path in sorted(root.rglob("*.jsonl")):
        if path.is_file():
            files.append(path)
        else:
            warnings.warn(f"{path}: skipped, {_not_regular(path)}", stacklevel=3)
    return files


def _not_regular(path: Path) -> str:
    if path.is_symlink() and not path.exists():
        return "a link to nothing"
    if path.is_dir():
        return "a folder, not a file of records"
    return "not a regular file" if path.exists() else "not found"


def parse_line(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(record, None) for a good line, else (None, why it is not one)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not UTF-8"
    try:
        record = json.loads(text, parse_constant=lambda _: None, parse_float=_finite)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError, so is a 5,000-digit integer
        return None, f"not JSON ({getattr(exc, 'msg', type(exc).__name__)})"
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        return None, "not an rnnbench run record"
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        return None, f"record lacks {', '.join(missing)}"
    wrong = [k for k, kind in SHAPES.items() if k in record and record[k] is not None
             and not isinstance(record[k], kind)]
    if wrong:
        return None, f"record's {', '.join(wrong)} of the wrong type"
    return record, None


def _finite(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None


# The container fields the report walks into, with the type each must have.
SHAPES = {"run_id": str, "timestamp": str, "status": str, "backend": str, "mode": str, "preset": (str, dict),
          "device": dict, "spec": dict, "epochs": list, "summary": dict, "samples": dict, "env": dict,
          "campaign": dict, "extra_epochs": list}
