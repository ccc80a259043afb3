import json
import math

import pytest

from common.metrics import perplexity, steady_state
from common.records import SCHEMA, append_record, iter_records


def record(**extra):
    base = {k: None for k in ("run_id", "timestamp", "backend", "mode", "device", "preset", "spec",
                              "epochs", "summary", "samples", "env")}
    return {**base, "schema": SCHEMA, "status": "ok", **extra}


def test_append_keeps_earlier_lines_and_reads_back(tmp_path):
    path = tmp_path / "runs" / "x.jsonl"
    append_record(path, record(run_id="a"))
    append_record(path, record(run_id="b", summary={"final_train_ppl": math.inf}))
    assert [r["run_id"] for r in iter_records(tmp_path)] == ["a", "b"]
    assert not list(path.parent.glob("*.tmp"))


def test_incomplete_record_is_refused(tmp_path):
    with pytest.raises(ValueError, match="required"):
        append_record(tmp_path / "x.jsonl", {"schema": SCHEMA})


def test_broken_and_foreign_lines_are_skipped_with_a_warning(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(record(run_id="a")) + "\n{broken\n" + json.dumps({"other": 1}) + "\n")
    with pytest.warns(UserWarning) as caught:
        runs = list(iter_records(tmp_path))
    assert [r["run_id"] for r in runs] == ["a"]
    messages = [str(w.message) for w in caught]
    assert messages == [f"{path}: 2 of 3 lines skipped (line 2: not JSON (Expecting property name enclosed in "
                        "double quotes); line 3: not an rnnbench run record)"]


def test_a_short_write_is_cut_back_off(tmp_path, monkeypatch):
    """A disk that takes only part of the line: the part is removed, never left half."""
    import os

    path = tmp_path / "x.jsonl"
    append_record(path, record(run_id="a"))
    before = path.read_bytes()
    real_write = os.write
    monkeypatch.setattr("os.write", lambda fd, data: real_write(fd, data[:10]))
    with pytest.raises(OSError, match="only 10 of .* bytes written, record not kept") as caught:
        append_record(path, record(run_id="b"))
    assert path.read_bytes() == before
    assert caught.value.errno == 28 and caught.value.filename == str(path)  # the CLI then says "free some space"


def test_records_are_strict_json_and_old_files_still_read(tmp_path):
    path = tmp_path / "x.jsonl"
    append_record(path, record(run_id="a", summary={"ppl": math.nan, "rows": [math.inf, 1.5]}))
    line = path.read_text()
    json.loads(line, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert json.loads(line)["summary"] == {"ppl": None, "rows": [None, 1.5]}
    old = tmp_path / "old.jsonl"
    old.write_text(json.dumps(record(run_id="old", summary={"ppl": math.inf})) + "\n")
    assert next(iter_records(old))["summary"]["ppl"] is None  # read as the writer writes it now
    huge = tmp_path / "huge.jsonl"  # a number too large for a float (JSON reads 1e400 as infinity)
    huge.write_text(json.dumps(record(run_id="h", campaign={"rounds": 1})).replace('"rounds": 1', '"rounds": 1e400'))
    assert next(iter_records(huge))["campaign"]["rounds"] is None


def test_append_keeps_mode_and_symlink_and_mends_a_missing_newline(tmp_path):
    import os
    import stat

    target = tmp_path / "real.jsonl"
    target.write_text(json.dumps(record(run_id="a")))  # no final newline
    os.chmod(target, 0o640)
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    append_record(link, record(run_id="b"))
    assert link.is_symlink() and stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [r["run_id"] for r in iter_records(target)] == ["a", "b"]


def test_perplexity_and_steady_state():
    assert perplexity(0.0, 10) == 1.0
    assert perplexity(10 * math.log(28), 10) == pytest.approx(28)
    assert math.isnan(perplexity(math.nan, 3)) and perplexity(1e6, 1) == math.inf
    stats = steady_state([100.0, 10.0, 12.0, 11.0])
    assert stats["median"] == 11.0 and stats["min"] == 10.0 and stats["max"] == 12.0
