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
    assert any("x.jsonl:2" in m and "not JSON" in m for m in messages)
    assert any("x.jsonl:3" in m for m in messages)


def test_a_crash_mid_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "x.jsonl"
    append_record(path, record(run_id="a"))
    monkeypatch.setattr("os.replace", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        append_record(path, record(run_id="b"))
    assert [r["run_id"] for r in iter_records(path)] == ["a"]
    assert not list(tmp_path.glob("*.tmp"))


def test_perplexity_and_steady_state():
    assert perplexity(0.0, 10) == 1.0
    assert perplexity(10 * math.log(28), 10) == pytest.approx(28)
    assert math.isnan(perplexity(math.nan, 3)) and perplexity(1e6, 1) == math.inf
    stats = steady_state([100.0, 10.0, 12.0, 11.0])
    assert stats["median"] == 11.0 and stats["min"] == 10.0 and stats["max"] == 12.0
