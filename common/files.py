"""Outputs that are either the old file or the new one, never half of either.

`report` rewrites REPORT.md, REPORT.html, summary.json, CSVs and plots in place; a
full disk or a kill partway through must not leave a truncated file where a good one
stood. Each output is written to a hidden temporary file in the same folder (the same
file system, so the rename is atomic) and then os.replace'd over the old one; on any
error the temporary file is removed and the old file is untouched.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix, so writers that look at it
    still choose the right format); on a clean exit it replaces `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text(path: Path, text: str) -> None:
    """`path.write_text(text)`, atomically."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def describe_os_error(exc: OSError) -> str:
    """One line for an OSError at the command line: what failed, on which path, and
    the usual fix."""
    where = f"{exc.filename}: " if exc.filename else ""
    reason = exc.strerror or str(exc)
    fixes = {28: "free some space or write elsewhere (--out / --results DIR)",
             13: "check the folder's permissions or write elsewhere (--out / --results DIR)",
             30: "the file system is read-only: write elsewhere (--out / --results DIR)"}
    fix = fixes.get(exc.errno or 0, "check the path")
    return f"{where}{reason}; {fix}"
