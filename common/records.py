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

import fcntl
import json
import math
import os
import uuid
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

SCHEMA = "rnnbench/run/1"
STATUSES = ("ok", "diverged", "interrupted", "error")
REQUIRED = ("schema", "run_id", "timestamp", "status", "backend", "mode", "device", "preset",
            "spec", "epochs", "summary", "samples", "env")


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
            raise OSError(f"{path}: only {written} of {len(data)} bytes written (disk full?); record not kept")
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
    """Every valid record under `root` (a file or a folder of *.jsonl files).

    A line that is not JSON, or not one of our records, is skipped with a warning that
    names the file and line, so one bad line never hides the rest. NaN and Infinity,
    which files written before records became strict JSON hold, are still accepted.
    """
    files = [root] if root.is_file() else sorted(root.rglob("*.jsonl"))
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                warnings.warn(f"{path}:{number}: skipped, not JSON ({exc.msg})", stacklevel=2)
                continue
            if not isinstance(record, dict) or record.get("schema") != SCHEMA:
                warnings.warn(f"{path}:{number}: skipped, not an rnnbench run record", stacklevel=2)
                continue
            yield record
