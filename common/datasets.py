"""Data files: a registry of name -> (file, url, sha1), and `fetch` to find or get one.

d2l downloads its data from its data hub and checks each file's SHA-1; this module
keeps that contract, and also reads a local folder (`--data-dir` / RNNBENCH_DATA) so
everything runs offline. Every failure is a `DataError` whose one message names the
file, the expected hash, where we looked and how to fix it.

Lookup order: the data folder (if any), then the cache folder (RNNBENCH_CACHE or
~/.cache/rnnbench); only when neither holds the file is it downloaded into the cache.
A copy that is found but has the wrong hash is an error, never silently replaced.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
import zipfile
from pathlib import Path
from typing import NamedTuple

from common.errors import DataError
from common.files import replacing

DATA_URL = "http://d2l-data.s3-accelerate.amazonaws.com/"
ENV_DATA = "RNNBENCH_DATA"
ENV_CACHE = "RNNBENCH_CACHE"
ENV_URL = "RNNBENCH_DATA_URL"  # base URL override (e.g. a mirror, or file:// in tests)


class Dataset(NamedTuple):
    """One registry entry: the file name, its URL on the data hub, its SHA-1."""

    filename: str
    url: str
    sha1: str


DATA_HUB: dict[str, Dataset] = {
    "time_machine": Dataset(
        "timemachine.txt", DATA_URL + "timemachine.txt", "090b5e7e70c295757f55df93cb0a180b9691891a"
    ),
    "jaychou_lyrics": Dataset(
        "jaychou_lyrics.txt.zip",
        DATA_URL + "jaychou_lyrics.txt.zip",
        "aea46bd5d5fb2f05d6cd38d8e6b461d679fa4f00",
    ),
    "ptb": Dataset("ptb.zip", DATA_URL + "ptb.zip", "319d85e578af0cdc590547f26231e4e31cdf1e42"),
}

# (resolved path, size, mtime_ns) -> sha1 hex: each file is hashed once per process.
_SHA1_CACHE: dict[tuple[str, int, int], str] = {}


def resolve_data_dir(arg: str | os.PathLike | None = None) -> Path | None:
    """The local data folder: the explicit argument, else $RNNBENCH_DATA, else None."""
    if arg:
        return Path(arg).expanduser()
    env = os.environ.get(ENV_DATA)
    return Path(env).expanduser() if env else None


def default_cache_dir() -> Path:
    """Where downloads go: $RNNBENCH_CACHE, else ~/.cache/rnnbench."""
    env = os.environ.get(ENV_CACHE)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rnnbench"


def sha1_of(path: Path) -> str:
    """SHA-1 hex digest of a file, streamed in 1 MiB blocks and memoised per process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA1_CACHE:
        digest = hashlib.sha1()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _SHA1_CACHE[key] = digest.hexdigest()
    return _SHA1_CACHE[key]


def download(url: str, dest: Path) -> None:
    """Copy `url` to `dest` atomically (common.files.replacing).

    Module-level so tests may monkeypatch it; urllib also serves file:// URLs.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    with replacing(dest) as tmp, tmp.open("wb") as out, urllib.request.urlopen(url, timeout=60) as src:
        shutil.copyfileobj(src, out)


def _entry(name: str) -> Dataset:
    if name not in DATA_HUB:
        raise DataError(f"unknown data set {name!r}; known: {', '.join(sorted(DATA_HUB))}")
    return DATA_HUB[name]


def _verified(path: Path, entry: Dataset) -> Path:
    actual = sha1_of(path)
    if actual != entry.sha1:
        raise DataError(
            f"{path} has sha1 {actual} but {entry.filename} should have sha1 {entry.sha1}: "
            f"the file is corrupt or a different version; replace it with a good copy of "
            f"{entry.filename} (from {entry.url}), or delete it so it is downloaded again"
        )
    return path


def fetch(
    name: str,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    *,
    base_url: str | None = None,
    allow_download: bool = True,
) -> Path:
    """Path to the verified file of data set `name`, downloading it only if needed.

    `data_dir` is used as given (call `resolve_data_dir` to honour RNNBENCH_DATA);
    `base_url` (or $RNNBENCH_DATA_URL) replaces the data hub's base URL.
    """
    entry = _entry(name)
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    folders = ([Path(data_dir)] if data_dir else []) + [cache]
    if data_dir:
        _check_folder(Path(data_dir), entry)
    for folder in folders:
        candidate = folder / entry.filename
        if candidate.is_file():
            return _verified(candidate, entry)

    looked = " and ".join(str(f) for f in folders)
    fix = f"set {ENV_DATA} or --data-dir to a folder holding {entry.filename} (sha1 {entry.sha1})"
    if not allow_download:
        raise DataError(f"{entry.filename} not found in {looked}; {fix}")
    base = base_url or os.environ.get(ENV_URL)
    url = base.rstrip("/") + "/" + entry.filename if base else entry.url
    dest = cache / entry.filename
    try:
        download(url, dest)
    except Exception as exc:  # urllib raises URLError, OSError, ValueError, ...
        raise DataError(
            f"{entry.filename} not found in {looked} and downloading {url} failed ({type(exc).__name__}: {exc}); {fix}"
        ) from exc
    try:
        return _verified(dest, entry)
    except DataError as exc:
        raise DataError(f"downloaded from {url}, but {exc}") from None


def _check_folder(folder: Path, entry: Dataset) -> None:
    """DataError, saying what is wrong, when the data folder is not a folder or holds
    something other than a file under the data set's name (nothing is downloaded)."""
    where = f"{ENV_DATA} or --data-dir"
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{where} names {folder}, which is a file, not a folder: give the folder that holds "
                        f"{entry.filename}")
    candidate = folder / entry.filename
    if candidate.exists() and not candidate.is_file():
        kind = "a folder" if candidate.is_dir() else "not a regular file (a FIFO or a device)"
        raise DataError(f"{candidate} is {kind}: put the data set's file there ({entry.filename}, sha1 {entry.sha1})")


def read_zip_member(path: Path, member: str) -> str:
    """Text (utf-8) of `member` inside the zip at `path`; DataError if unreadable."""
    try:
        with zipfile.ZipFile(path) as zf, zf.open(member) as f:
            return f.read().decode("utf-8")
    except (zipfile.BadZipFile, KeyError, OSError, UnicodeDecodeError, EOFError) as exc:
        sha = next((d.sha1 for d in DATA_HUB.values() if d.filename == path.name), None)
        expected = f" (sha1 {sha})" if sha else ""
        raise DataError(
            f"cannot read {member} from {path} ({type(exc).__name__}: {exc}); "
            f"delete {path} so it is downloaded again, or replace it with a good copy "
            f"of {path.name}{expected}"
        ) from exc
