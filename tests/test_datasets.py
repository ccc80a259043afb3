"""common.datasets: lookup order, SHA-1 checks, offline download and every error path."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from common import datasets
from common.datasets import DATA_HUB, Dataset, fetch, read_zip_member, resolve_data_dir
from common.errors import DataError

TM = DATA_HUB["time_machine"]


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def test_registry_matches_the_d2l_hub():
    assert DATA_HUB["time_machine"] == Dataset(
        "timemachine.txt",
        "http://d2l-data.s3-accelerate.amazonaws.com/timemachine.txt",
        "090b5e7e70c295757f55df93cb0a180b9691891a",
    )
    assert DATA_HUB["jaychou_lyrics"].sha1 == "aea46bd5d5fb2f05d6cd38d8e6b461d679fa4f00"
    assert DATA_HUB["ptb"].filename == "ptb.zip"
    assert DATA_HUB["ptb"].sha1 == "319d85e578af0cdc590547f26231e4e31cdf1e42"


def test_resolve_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("RNNBENCH_DATA", raising=False)
    assert resolve_data_dir(None) is None
    monkeypatch.setenv("RNNBENCH_DATA", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    assert resolve_data_dir("/elsewhere") == Path("/elsewhere")  # explicit arg wins


@pytest.mark.parametrize("name", sorted(DATA_HUB))
def test_real_files_verify(data_dir, name, tmp_path):
    path = fetch(name, data_dir, cache_dir=tmp_path)
    assert path == data_dir / DATA_HUB[name].filename
    assert not any(tmp_path.iterdir())  # nothing downloaded


def test_cache_is_used_when_data_dir_lacks_the_file(data_dir, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(data_dir / TM.filename, cache / TM.filename)
    assert fetch("time_machine", tmp_path / "empty", cache_dir=cache) == cache / TM.filename


def test_download_from_file_url_into_cache(data_dir, tmp_path):
    hub, cache = tmp_path / "hub", tmp_path / "cache"
    hub.mkdir()
    shutil.copy(data_dir / TM.filename, hub / TM.filename)
    path = fetch("time_machine", None, cache_dir=cache, base_url=hub.as_uri())
    assert path == cache / TM.filename
    assert path.read_bytes() == (hub / TM.filename).read_bytes()
    assert [p.name for p in cache.iterdir()] == [TM.filename]  # no temp file left
    # Second call finds the cached copy and downloads nothing.
    (hub / TM.filename).unlink()
    assert fetch("time_machine", None, cache_dir=cache, base_url=hub.as_uri()) == path


def test_download_base_url_from_environment(data_dir, tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    hub.mkdir()
    shutil.copy(data_dir / TM.filename, hub / TM.filename)
    monkeypatch.setenv("RNNBENCH_DATA_URL", hub.as_uri() + "/")
    assert fetch("time_machine", cache_dir=tmp_path / "c").is_file()


def test_failed_download_is_a_data_error(tmp_path):
    with pytest.raises(DataError) as err:
        fetch("time_machine", tmp_path / "data", cache_dir=tmp_path / "cache", base_url=(tmp_path / "nowhere").as_uri())
    msg = str(err.value)
    for part in (TM.filename, TM.sha1, str(tmp_path / "data"), str(tmp_path / "cache"), "downloading", "RNNBENCH_DATA"):
        assert part in msg
    assert not (tmp_path / "cache" / TM.filename).exists()
    assert not list((tmp_path / "cache").glob(".*"))  # the temporary file was removed


def test_downloader_is_patchable_and_a_raising_one_is_reported(tmp_path, monkeypatch):
    def boom(url, dest):
        raise OSError("network unreachable")

    monkeypatch.setattr(datasets, "download", boom)
    with pytest.raises(DataError, match="network unreachable"):
        fetch("ptb", cache_dir=tmp_path)


def test_downloaded_file_with_wrong_hash(tmp_path):
    hub = tmp_path / "hub"
    hub.mkdir()
    (hub / TM.filename).write_bytes(b"not the time machine")
    with pytest.raises(DataError) as err:
        fetch("time_machine", cache_dir=tmp_path / "c", base_url=hub.as_uri())
    assert TM.sha1 in str(err.value) and _sha1(b"not the time machine") in str(err.value)


def test_missing_file_without_download(tmp_path):
    with pytest.raises(DataError) as err:
        fetch("ptb", tmp_path, cache_dir=tmp_path / "c", allow_download=False)
    msg = str(err.value)
    assert "ptb.zip not found" in msg and DATA_HUB["ptb"].sha1 in msg and str(tmp_path) in msg
    assert "RNNBENCH_DATA or --data-dir" in msg


def test_corrupt_copy_names_both_hashes_and_the_fix(tmp_path):
    bad = tmp_path / TM.filename
    bad.write_bytes(b"corrupted")
    with pytest.raises(DataError) as err:
        fetch("time_machine", tmp_path, cache_dir=tmp_path / "c")
    msg = str(err.value)
    assert str(bad) in msg and TM.sha1 in msg and _sha1(b"corrupted") in msg
    assert "delete it so it is downloaded again" in msg
    assert not (tmp_path / "c").exists()  # a corrupt copy is never silently replaced


def test_hash_is_recomputed_when_the_file_changes(data_dir, tmp_path):
    copy = tmp_path / TM.filename
    shutil.copy(data_dir / TM.filename, copy)
    assert fetch("time_machine", tmp_path, cache_dir=tmp_path / "c") == copy
    copy.write_bytes(copy.read_bytes()[:-1])
    with pytest.raises(DataError):
        fetch("time_machine", tmp_path, cache_dir=tmp_path / "c")


def test_unknown_name():
    with pytest.raises(DataError, match="unknown data set 'wiki'.*time_machine"):
        fetch("wiki")


def test_unreadable_zip(tmp_path, monkeypatch):
    garbage = b"this is not a zip archive"
    (tmp_path / "ptb.zip").write_bytes(garbage)
    monkeypatch.setitem(DATA_HUB, "ptb", DATA_HUB["ptb"]._replace(sha1=_sha1(garbage)))
    path = fetch("ptb", tmp_path, cache_dir=tmp_path / "c")
    with pytest.raises(DataError) as err:
        read_zip_member(path, "ptb/ptb.train.txt")
    msg = str(err.value)
    assert "cannot read ptb/ptb.train.txt" in msg and str(path) in msg and _sha1(garbage) in msg


def test_zip_without_the_member(data_dir):
    with pytest.raises(DataError, match="cannot read nope.txt"):
        read_zip_member(data_dir / "ptb.zip", "nope.txt")
