"""Bad inputs through the real command line (issue 16): each one ends with the exit
code and the first stderr line a user should see, never a traceback; and what is
recorded survives concurrent appends, SIGTERM, and nox's Ctrl-C-then-SIGTERM.

The table runs `benchmarks.cli.main` in-process (fast; cases that stop before any
framework is imported run in every venv). Signals need a real process: those tests
start `python -m benchmarks run` with a one-line hook that touches a file after each
epoch, so the signal always lands mid-training, however slow the framework's import.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.cli import main
from common.records import SCHEMA, append_record, iter_records

REPO = Path(__file__).resolve().parents[1]
FRAMEWORK = {"pytorch": "torch", "mxnet": "mxnet", "jax": "flax"}  # backend -> module importorskip needs
OTHER_MODE = {"pytorch": "nn", "mxnet": "imperative", "jax": "scan"}  # a non-default mode of each
SMOKE = ["--preset", "smoke", "--no-peak", "--threads", "1", "--quiet"]


def cli(argv: list[str], capsys) -> tuple[int, list[str], str]:
    """(exit code, stderr lines, stdout) of `python -m benchmarks ARGV`, in-process."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped the CLI: the user sees a traceback")
    out = capsys.readouterr()
    return code, out.err.strip().splitlines(), out.out


def write_preset(folder: Path, name: str, text: str | bytes) -> None:
    path = folder / f"{name}.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


@pytest.fixture
def presets(tmp_path, monkeypatch) -> Path:
    """A preset folder holding `smoke` and one malformed preset per kind of mistake."""
    folder = tmp_path / "presets"
    folder.mkdir()
    smoke = (REPO / "benchmarks" / "presets" / "smoke.toml").read_text(encoding="utf-8")
    write_preset(folder, "smoke", smoke)
    write_preset(folder, "book-number", "book = 5\n" + smoke)
    write_preset(folder, "string-layers", smoke.replace("num_layers = 2", 'num_layers = "two"'))
    write_preset(folder, "model-number", 'description = "x"\nmodel = 5\n')
    write_preset(folder, "latin1", smoke.encode().replace(b"tiny", "tiny caf\u00e9".encode("latin-1")))
    write_preset(folder, "not-toml", "[model\ncell = lstm\n")
    write_preset(folder, "nan-lr", smoke.replace("lr = 1.0", "lr = nan"))
    write_preset(folder, "bad-target", smoke + '\n[book]\ntarget_ppl = "low"\n')
    write_preset(folder, "bad-results", smoke + '\n[book]\nresults = [1, 2]\n')
    monkeypatch.setattr("common.specs.PRESET_DIR", folder)
    return folder


def run_args(*extra: str, backend: str = "pytorch") -> list[str]:
    return ["run", "--backend", backend, *SMOKE, *extra]


# (id, argv builder (tmp_path, data_dir) -> argv, exit code, text the first stderr line holds, text it must not)
CASES = [
    ("lr-nan", lambda t, d: run_args("--set", "lr=nan"), 2, "error: lr=nan must be a finite number > 0", None),
    ("lr-inf", lambda t, d: run_args("--set", "train.lr=inf"), 2, "error: lr=inf must be a finite number > 0", None),
    ("clip-minus-inf", lambda t, d: run_args("--set", "clip=-inf"), 2,
     'clip (0 or "none" disables clipping)=-inf must be a finite', None),
    ("max-tokens-2", lambda t, d: run_args("--set", "max_tokens=2", "--data-dir", str(d), "--results", str(t)),
     2, "error: num_steps=10 is too long for the corpus of 2 tokens", "<= 0"),
    ("max-tokens-2-advice", lambda t, d: run_args("--set", "max_tokens=2", "--data-dir", str(d), "--results", str(t)),
     2, "use max_tokens >= 91", None),
    ("max-tokens-30", lambda t, d: run_args("--set", "max_tokens=30", "--data-dir", str(d), "--results", str(t)),
     2, "use batch_size <= 1 or num_steps <= 3 or max_tokens >= 91", None),
    ("unknown-preset", lambda t, d: ["run", "--backend", "pytorch", "--preset", "nope"], 2,
     "error: unknown preset 'nope'; available:", None),
    ("epochs-0", lambda t, d: run_args("--epochs", "0"), 2, "error: epochs=0 must be", None),
    ("threads-0", lambda t, d: run_args("--threads", "0"), 2, "error: --threads=0 must be at least 1", None),
    ("threads-above-cores", lambda t, d: run_args("--threads", str((os.cpu_count() or 1) + 1), "--set", "lr=nan"),
     2, f"warning: --threads={(os.cpu_count() or 1) + 1} is more than the {os.cpu_count() or 1} cores here", None),
    ("unknown-cell", lambda t, d: run_args("--set", "cell=transformer"), 2,
     "error: cell='transformer' is not allowed", None),
    ("unknown-field", lambda t, d: run_args("--set", "colour=red"), 2, "error: unknown field 'colour'", None),
    ("override-without-value", lambda t, d: run_args("--set", "lr"), 2, "must look like field=value", None),
    ("unknown-backend", lambda t, d: ["run", "--backend", "tensorflow"], 2, "usage:", None),
    ("results-is-a-file", lambda t, d: run_args("--results", str(t / "file"), "--data-dir", str(d)),
     2, "is a file, not a folder: give --results a folder you can write to", None),
    ("results-under-a-file", lambda t, d: run_args("--results", str(t / "file" / "runs"), "--data-dir", str(d)),
     2, "error: cannot create results folder", None),
    ("results-file-is-a-folder", lambda t, d: run_args("--results", str(t / "runs"), "--data-dir", str(d)),
     2, "is a folder: move it away", None),
    ("tag-with-markup", lambda t, d: run_args("--tag", "<img src=x onerror=alert(1)>\n# h"), 2,
     "error: --tag '<img src=x onerror=alert(1)>\\n# h': use 1-120 letters", None),
    ("campaign-with-backticks", lambda t, d: run_args("--campaign", "`rm -rf`"), 2, "error: --campaign '`rm -rf`'",
     None),
    ("preset-outside-the-folder", lambda t, d: ["run", "--backend", "pytorch", "--preset", "../../x/evil"], 2,
     "error: preset file ../../x/evil not found: a preset is a name from `list` or the path of an existing", None),
    ("data-dir-is-a-file", lambda t, d: run_args("--data-dir", str(t / "file"), "--results", str(t / "out")), 2,
     "which is a file, not a folder: give the folder that holds timemachine.txt", "not found"),
    ("data-file-is-a-folder", lambda t, d: run_args("--data-dir", str(t), "--results", str(t / "out")), 2,
     "timemachine.txt is a folder: put the data set's file there", "not found"),
    ("hiddens-200000", lambda t, d: run_args("--set", "num_hiddens=200000", "--data-dir", str(d), "--results",
                                             str(t / "out")),
     2, "error: this spec needs at least", "Unable to allocate"),
    ("missing-data", lambda t, d: run_args("--data-dir", str(t / "no-data"), "--results", str(t / "out")),
     2, "error: timemachine.txt not found in", None),
]


@pytest.mark.parametrize("name,argv,code,first,never", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(name, argv, code, first, never, tmp_path, data_dir, capsys):
    from benchmarks.run.harness import RunRequest, results_file

    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "timemachine.txt").mkdir()  # the data set's name, but a folder
    results_file(RunRequest("pytorch", None, results_dir=tmp_path / "runs")).mkdir(parents=True)
    got, err, _ = cli(argv(tmp_path, data_dir), capsys)
    assert got == code, err
    assert err and first in err[0], err
    assert never is None or never not in err[0]
    assert not any("Traceback" in line for line in err)
    assert len([line for line in err if line.startswith("error:")]) <= 1
    assert not [p for p in tmp_path.rglob("*.jsonl") if p.is_file()]  # nothing recorded


def test_unwritable_results_folder_fails_before_training(tmp_path, data_dir, capsys):
    if os.geteuid() == 0:
        pytest.skip("root writes to read-only folders anyway")
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    code, err, _ = cli(run_args("--results", str(folder), "--data-dir", str(data_dir)), capsys)
    assert code == 2 and err[0].startswith("error: cannot write records to"), err


def test_results_folder_refusing_files_fails_before_training(tmp_path, data_dir, capsys, monkeypatch):
    """The same check where root ignores permissions: the folder refuses a new file."""
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("benchmarks.run.harness.tempfile.mkstemp", refuse)
    monkeypatch.setattr("benchmarks.run.harness.load_corpus", lambda *a: pytest.fail("data read before the check"))
    code, err, _ = cli(run_args("--results", str(tmp_path), "--data-dir", str(data_dir)), capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: cannot write records to") and "(Permission denied)" in err[0]


@pytest.mark.parametrize("preset,message", [
    ("book-number", "book-number.toml: [book] must be a table"),
    ("string-layers", "string-layers.toml: num_layers='two' must be a whole number"),
    ("model-number", "model-number.toml: [model] must be a table of fields, not 5"),
    ("latin1", "latin1.toml is not UTF-8 text"),
    ("not-toml", "not-toml.toml is not valid TOML"),
    ("nan-lr", "nan-lr.toml: lr=nan must be a finite number > 0"),
    ("bad-target", "bad-target.toml: [book] target_ppl='low' must be a number"),
    ("bad-results", "bad-results.toml: [book] results must be a list of tables"),
])
def test_malformed_preset_is_one_line_naming_the_file(preset, message, presets, capsys):
    code, err, _ = cli(["run", "--backend", "pytorch", "--preset", preset], capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: preset file ") and message in err[0], err


def test_a_malformed_preset_does_not_break_list(presets, capsys):
    code, err, out = cli(["list"], capsys)
    assert code == 0, err
    assert "smoke" in out and "book-number" not in out
    warned = [line for line in err if line.startswith("warning: preset file")]
    assert len(warned) == 8 and any("book-number.toml" in line for line in warned), err
    assert not any("Traceback" in line for line in err)


def test_ctrl_c_while_building_the_model_is_one_line(tmp_path, data_dir, capsys, monkeypatch):
    """KeyboardInterrupt before training (here: in the model build) is one line, no
    traceback, and nothing is recorded since no epoch ran."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("benchmarks.run.harness.load_backend", lambda name, threads: object())
    monkeypatch.setattr("benchmarks.run.harness.build_model", interrupted)
    code, err, _ = cli(run_args("--results", str(tmp_path), "--data-dir", str(data_dir)), capsys)
    assert code != 0 and len(err) == 1, err
    assert err[0].startswith("error: interrupted by") and "nothing was recorded" in err[0]
    assert not list(tmp_path.glob("*.jsonl"))


# ---- needs a framework ----------------------------------------------------------------


@pytest.fixture(params=list(FRAMEWORK))
def backend(request):
    pytest.importorskip(FRAMEWORK[request.param])
    return request.param


def test_unknown_mode_is_the_same_line_in_run_and_parity(backend, tmp_path, data_dir, capsys):
    common = ["--backend", backend, "--preset", "smoke", "--threads", "1", "--mode", "bogus",
              "--data-dir", str(data_dir)]
    run_code, run_err, _ = cli(["run", *common, "--no-peak", "--results", str(tmp_path)], capsys)
    parity_code, parity_err, _ = cli(["parity", *common], capsys)
    assert run_code == parity_code == 2
    assert run_err == parity_err and len(parity_err) == 1, (run_err, parity_err)
    assert parity_err[0].startswith(f"error: {backend} has no mode 'bogus'; choose one of:")


def test_parity_builds_the_mode_asked_for(backend, data_dir, capsys):
    mode = OTHER_MODE[backend]
    code, err, out = cli(["parity", "--backend", backend, "--preset", "smoke", "--threads", "1",
                          "--mode", mode, "--data-dir", str(data_dir)], capsys)
    assert code == 0, err
    assert out.startswith(f"{backend} ({mode} mode):") and "PASS" in out, out


HOOK = """
import os, sys, time
from pathlib import Path
from benchmarks.run import harness, progress
from benchmarks.cli import main

flag, argv = Path(sys.argv[1]), sys.argv[2:]
def update(self, row):
    flag.write_text(str(row["epoch"]))  # an epoch is done: training is under way
progress.Progress.update = update
write_record, slow = harness.write_record, float(os.environ.get("SLOW_RECORD_S", 0))
def slow_write_record(*args, **kwargs):  # a slow machine probe: signals land mid-write
    time.sleep(slow)
    return write_record(*args, **kwargs)
harness.write_record = slow_write_record
sys.exit(main(argv))
"""


def start_run(backend: str, tmp_path: Path, data_dir: Path,
              slow_record_s: float = 0.0) -> tuple[subprocess.Popen, Path]:
    """A real `run` process with far more epochs than the test waits for; returns it
    once its first epoch is done. Writing its record starts `slow_record_s` late."""
    flag = tmp_path / "epoch"
    argv = ["run", "--backend", backend, *SMOKE, "--epochs", "100000",
            "--results", str(tmp_path / "runs"), "--data-dir", str(data_dir)]
    env = {**os.environ, "SLOW_RECORD_S": str(slow_record_s)}
    proc = subprocess.Popen([sys.executable, "-c", HOOK, str(flag), *argv], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not flag.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the run never finished an epoch: {proc.communicate()[1]}")
        time.sleep(0.05)
    return proc, tmp_path / "runs"


def without_finalizer_noise(err: str) -> str:
    """stderr less Python's "Exception ignored in ..." reports: a signal that lands while
    MXNet builds or frees an array makes its finalizer fail, which Python prints and
    ignores; the run itself still stops cleanly and writes its record."""
    report = r"Exception ignored in: [^\n]*\n(?:Traceback \(most recent call last\):\n)?(?:[ \t][^\n]*\n)*[^\n]*\n?"
    return re.sub(report, "", err)


def the_record(folder: Path) -> dict:
    [path] = folder.glob("*.jsonl")
    lines = path.read_text().splitlines()
    assert all(json.loads(line) for line in lines)
    [record] = list(iter_records(path))
    return record


def test_sigterm_writes_an_interrupted_record(backend, tmp_path, data_dir):
    proc, runs = start_run(backend, tmp_path, data_dir)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in without_finalizer_noise(err)
    record = the_record(runs)
    assert record["status"] == "interrupted" and "SIGTERM" in record["error"]
    assert record["summary"]["epochs_done"] >= 1


def test_nox_ctrl_c_then_sigterm_keeps_the_record(backend, tmp_path, data_dir):
    """nox passes Ctrl-C on as SIGINT and sends SIGTERM 0.3 s later: the second signal
    must not cut the record short. Writing the record is held back 1 s here, so the
    SIGTERM surely lands while it is being written."""
    proc, runs = start_run(backend, tmp_path, data_dir, slow_record_s=1.0)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (130, -signal.SIGTERM), err  # -15: killed during interpreter exit, record written
    assert "Traceback" not in without_finalizer_noise(err)
    record = the_record(runs)
    assert record["status"] == "interrupted" and "Ctrl-C" in record["error"]
    assert record["summary"]["epochs_done"] >= 1


# ---- concurrent appends ---------------------------------------------------------------


def _append_many(path: str, writer: int, count: int) -> None:
    base = {k: None for k in ("timestamp", "backend", "mode", "device", "preset", "spec", "epochs", "env")}
    for i in range(count):
        padding = "x" * (1000 * (i % 7))  # lines of different lengths, some beyond a pipe buffer
        append_record(Path(path), {**base, "schema": SCHEMA, "run_id": f"{writer}-{i}", "status": "ok",
                                   "summary": {"pad": padding}, "samples": {}})


def test_concurrent_appends_keep_every_record(tmp_path):
    """Several processes appending to one file at once: every record is kept, whole."""
    path = tmp_path / "runs" / "shared.jsonl"
    writers, count = 6, 40
    ctx = multiprocessing.get_context("spawn" if sys.platform == "darwin" else "fork")
    procs = [ctx.Process(target=_append_many, args=(str(path), w, count)) for w in range(writers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = path.read_text().splitlines()
    assert len(lines) == writers * count
    ids = {json.loads(line)["run_id"] for line in lines}
    assert ids == {f"{w}-{i}" for w in range(writers) for i in range(count)}


def test_a_gated_run_whose_driver_dies_records_interrupted_and_exits(backend, tmp_path, data_dir):
    """The campaign driver killed (SIGKILL: its pipe ends close without a word): the run
    records `interrupted`, naming the driver, and ends instead of training on as an orphan."""
    argv = [sys.executable, "-m", "benchmarks", "run", "--backend", backend, *SMOKE, "--epochs", "1001",
            "--rounds", "1000", "--gate", "--campaign", "c-orphan", "--contender", backend,
            "--results", str(tmp_path / "runs"), "--data-dir", str(data_dir)]
    proc = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    for line in proc.stdout:  # the warm-up epoch, then the run waits for its first `go`
        if line.startswith("@rnnbench ready"):
            break
    proc.stdin.write("@rnnbench go round=1\n")
    proc.stdin.flush()
    for line in proc.stdout:
        if line.startswith("@rnnbench paused"):
            break
    proc.stdin.close()  # what the driver's death does to the run's pipes
    proc.stdout.close()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the run trained on as an orphan after its driver was gone")
    assert proc.returncode == 130, proc.stderr.read()
    record = the_record(tmp_path / "runs")
    assert record["status"] == "interrupted", record["error"]
    assert "the campaign driver going away" in record["error"], record["error"]
