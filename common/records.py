"""Result records: one JSON object per run, appended atomically to JSON Lines files.

The schema is DESIGN.md's contract between the harness and the report. A results
file is only ever replaced whole (write a temporary file, fsync, rename), so a run
killed mid-write leaves the previous file intact, never half a line.
"""

from __future__ import annotations

import json
import os
import tempfile
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


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Add one record as a line to `path`, replacing the file atomically."""
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise ValueError(f"record lacks required fields {missing}")
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_bytes() if path.exists() else b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    line = json.dumps(record, sort_keys=True, allow_nan=True).encode() + b"\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(old + line)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def iter_records(root: Path) -> Iterator[dict[str, Any]]:
    """Every valid record under `root` (a file or a folder of *.jsonl files).

    A line that is not JSON, or not one of our records, is skipped with a warning that
    names the file and line, so one bad line never hides the rest.
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
