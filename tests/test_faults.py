"""The second fault probe (issue 24): one odd file never stops `report` or `compare`,
outputs are replaced atomically, a contender that hangs or never starts cannot hang
the campaign or go unnoticed, and each mistake is one line that names the fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from common.errors import SpecError
from common.files import replacing, write_text
from common.records import iter_located
from tests.fake_records import record, write

REPO = Path(__file__).resolve().parents[1]
RATES = [40_000.0 + 250 * k for k in range(8)]


def odd_folders(tmp_path: Path) -> dict[str, Path]:
    """Results folders that each hold two good records and one odd thing."""
    made = {}
    for name in ("folder", "dangling", "fifo", "infinity", "garbage", "latin-1", "clash"):
        runs = tmp_path / name / "runs"
        write(runs, record("pytorch", "c1", RATES), record("jax", "c1", [r * 0.8 for r in RATES]))
        made[name] = runs
    (made["folder"] / "x.jsonl").mkdir()
    os.symlink(tmp_path / "nowhere.jsonl", made["dangling"] / "y.jsonl")
    os.mkfifo(made["fifo"] / "p.jsonl")  # reading it would block for ever
    big = json.dumps(record("mxnet", "c1", RATES)).replace('"rounds": 8', '"rounds": 1e400')
    (made["infinity"] / "m.jsonl").write_text(big + "\n")
    (made["garbage"] / "g.jsonl").write_bytes(os.urandom(200_000))
    latin = json.dumps(record("mxnet", "c1", RATES)).replace("quick-lstm", "quick-l\u00e9stm").encode("latin-1")
    (made["latin-1"] / "l.jsonl").write_bytes(latin + b"\n")
    clash = record("pytorch", "c1", RATES)  # same campaign and contender, another backend
    clash.update(backend="tensorflow", run_id="tf")
    write(made["clash"], clash)
    return made


def test_the_reader_skips_what_is_not_a_record_file_and_says_where(tmp_path):
    folders = odd_folders(tmp_path)
    expected = {"folder": "x.jsonl: skipped, a folder", "dangling": "y.jsonl: skipped, a link to nothing",
                "fifo": "p.jsonl: skipped, not a regular file", "garbage": "g.jsonl: ",
                "latin-1": "l.jsonl: 1 of 1 lines skipped (line 1: not UTF-8)"}
    for name, runs in folders.items():
        with pytest.warns() if name in expected else _no_warning() as caught:
            found = [r["run_id"] for _, _, r in iter_located(runs)]
        assert len(found) == 2 + (name in ("infinity", "clash")), name
        if name in expected:
            assert len(caught) == 1 and expected[name] in str(caught[0].message), name
    [(_, _, mxnet)] = [x for x in iter_located(folders["infinity"]) if x[2]["backend"] == "mxnet"]
    assert mxnet["campaign"]["rounds"] is None  # 1e400 is no number of rounds


class _no_warning:
    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings(record=True)
        caught = self._catch.__enter__()
        warnings.simplefilter("always")
        return caught

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)


@pytest.mark.parametrize("command", ["report", "compare"])
def test_no_odd_file_stops_report_or_compare(tmp_path, command):
    pytest.importorskip("pandas")
    pytest.importorskip("scipy")
    for name, runs in odd_folders(tmp_path).items():
        argv = (["report", "--results", str(runs), "--out", str(runs.parent / "out")] if command == "report"
                else ["compare", str(runs), str(runs), "--force"])
        out = subprocess.run([sys.executable, "-m", "benchmarks", *argv], cwd=REPO, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0 and "Traceback" not in out.stderr, (name, out.stderr)
        lines = out.stderr.splitlines()
        assert all(line.startswith("warning: ") for line in lines), (name, lines)
        assert len(set(lines)) <= 1, (name, lines)  # one line per odd file (compare reads the folder twice)


def test_a_failed_write_leaves_the_old_file_whole(tmp_path):
    path = tmp_path / "REPORT.md"
    write_text(path, "the old report\n")
    with pytest.raises(OSError):
        with replacing(path) as tmp:
            tmp.write_text("half of a new rep")
            raise OSError(28, "No space left on device", str(tmp))
    assert path.read_text() == "the old report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["REPORT.md"]  # no temporary file left behind
    write_text(path, "the new report\n")
    assert path.read_text() == "the new report\n" and len(list(tmp_path.iterdir())) == 1


def test_an_os_error_at_the_command_line_is_one_line(tmp_path):
    pytest.importorskip("pandas")
    runs = tmp_path / "runs"
    write(runs, record("pytorch", "c1", RATES))
    (tmp_path / "file").write_text("not a folder")
    out = subprocess.run([sys.executable, "-m", "benchmarks", "report", "--results", str(runs), "--out",
                          str(tmp_path / "file" / "out")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith(f"error: {tmp_path / 'file' / 'out'}: Not a directory; check the path")


HANGING_RUN = textwrap.dedent("""\
    #!{python}
    # Stands in for a gated run; the one named {frozen!r} stops itself (SIGSTOP) in round 2,
    # as a debugger or a frozen driver would leave it. On `stop` it writes why to the log.
    import os, signal, sys
    args = sys.argv[1:]
    label = args[args.index("--contender") + 1]
    print("@rnnbench alive", flush=True)  # it has a heartbeat, so its silence is a hang
    print("@rnnbench ready rounds=3", flush=True)
    for r in range(1, 4):
        line = sys.stdin.readline()
        if not line.startswith("@rnnbench go"):
            open({log!r}, "a").write(label + " " + line.strip() + "\\n")
            sys.exit(130)
        if label == {frozen!r} and r == 2:
            os.kill(os.getpid(), signal.SIGSTOP)
            continue
        print("@rnnbench %s round=%d tok_s=1000" % ("done" if r == 3 else "paused", r), flush=True)
""")


def test_a_frozen_contender_is_stopped_and_the_campaign_says_it_lost_it(tmp_path):
    script = tmp_path / "python"
    script.write_text(HANGING_RUN.format(python=sys.executable, frozen="jax", log=str(tmp_path / "log")))
    script.chmod(0o755)
    tic = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "benchmarks", "campaign", "--no-report", "--results",
                          str(tmp_path / "runs"), f"--python=pytorch={script}", f"--python=jax={script}",
                          "--preset", "smoke", "--contender-timeout", "2"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - tic < 30  # neither the timeout nor the stop waits long
    assert "jax: fell silent for 2 s (a hang; --contender-timeout 2): stopped" in out.stdout
    assert "round 3/3: pytorch 1,000" in out.stdout  # the others go on
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith(
        "error: 2 contender run(s) left no record: jax (--preset smoke); pytorch (--preset smoke)")
    told = (tmp_path / "log").read_text()
    assert "jax @rnnbench stop reason=the_campaign_driver_after_2_s_without_a_word" in told


@pytest.mark.parametrize("python, message", [
    ("/nope/bin/python", "--python pytorch=/nope/bin/python: no such executable; give that backend's venv Python"),
    ("/bin/false", "/bin/false exited with code 1 and said nothing: is it a Python with rnnbench's pytorch"),
])
def test_a_wrong_interpreter_is_named(tmp_path, python, message):
    out = subprocess.run([sys.executable, "-m", "benchmarks", "campaign", "--no-report", "--results",
                          str(tmp_path / "runs"), f"--python=pytorch={python}", "--preset", "smoke"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode in (1, 2) and "Traceback" not in out.stderr
    assert message in out.stdout + out.stderr


def test_a_bad_contender_timeout_is_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "benchmarks", "campaign", "--contender-timeout", "0"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr == "error: --contender-timeout 0 must be a positive number of seconds\n"


def test_the_memory_estimate_refuses_what_cannot_fit():
    from common.memory import check_fits, estimate_bytes
    from common.specs import load_preset

    spec, _ = load_preset("quick-lstm")
    assert estimate_bytes(spec, 28) < 100 * 2 ** 20  # the quick preset: well under 100 MiB
    huge = spec.with_overrides(["num_hiddens=200000"])
    with pytest.raises(SpecError, match=r"needs at least [\d,.]+ GiB .* lower num_hiddens"):
        check_fits(huge, 28, available=24 * 2 ** 30)
    check_fits(spec, 28, available=24 * 2 ** 30)  # no error




def test_a_preset_file_is_loaded_by_path_and_recorded_by_its_own_name(tmp_path):
    from common.specs import load_preset, preset_name

    path = tmp_path / "mine.toml"
    path.write_text((REPO / "benchmarks" / "presets" / "smoke.toml").read_text(encoding="utf-8"), encoding="utf-8")
    spec, _ = load_preset(str(path))
    assert spec == load_preset("smoke")[0] and preset_name(str(path)) == "mine" and preset_name("smoke") == "smoke"
    with pytest.raises(SpecError, match="unknown preset"):
        load_preset("..")


def test_extra_arguments_without_a_preset_apply_to_the_default_suite():
    from benchmarks.campaign.suites import SUITES, plan

    runs = plan("pytorch", ["--threads", "1"])
    assert runs == [entry["args"] + ["--threads", "1"] for entry in SUITES["default"]]
    assert plan("pytorch", ["--preset", "smoke", "--threads", "1"]) == [["--preset", "smoke", "--threads", "1"]]


def test_an_ascii_terminal_gets_escapes_not_a_crash():
    code = "import sys; from benchmarks.cli import main; main(['list']); print('\\u4e2d\\u6587 lyrics')"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert out.returncode == 0 and "\\u4e2d\\u6587 lyrics" in out.stdout, out.stderr
