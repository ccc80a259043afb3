"""A busy machine, planted (issue 23): stand-in contenders speak the pipe protocol with
a disturbance in chosen rounds, and the real campaign driver and report run over them.
The disturbed rounds are flagged and replaced, the robust verdict and ratio do not
move, the old estimator's interval widens; precision stops at its target or at the
budget; the twin is never ranked; bad settings get one line. The same with real
backends and a CPU burner: `nox -s bench -- --noise 0.3`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pandas")
pytest.importorskip("scipy")

from benchmarks.campaign import driver as camp  # noqa: E402
from benchmarks.campaign.noise import burn  # noqa: E402
from benchmarks.report import build_report  # noqa: E402
from tests.test_robust_verdict import old_paired_ratio  # noqa: E402

STAND_IN = textwrap.dedent("""\
    #!{python}
    # Stands in for `python -m benchmarks run --gate --extendable`: rates from a fixed
    # table (the same drift for everyone in a round), 0.4x with 40% foreign CPU in the
    # planted rounds; on `stop` (or EOF) it writes its record as the harness would.
    import json, sys
    sys.path.insert(0, {repo!r})
    from tests.fake_records import record
    from common.records import append_record
    args = sys.argv[1:]
    label = args[args.index("--contender") + 1]
    planned = int(args[args.index("--rounds") + 1])
    backend = args[args.index("--backend") + 1]
    results = args[args.index("--results") + 1]
    campaign = args[args.index("--campaign") + 1]
    spec = json.loads({spec!r})
    base = spec["scale"][label.split("/")[0].split("~")[0]]
    process = args[args.index("--process") + 1] if "--process" in args else "1/1"
    base *= spec["process"].get(label, {{}}).get(process.split("/")[0], 1.0)  # a process-long offset
    planted = set(spec["planted"].get(label, []))
    rates, loads, r = {{}}, [], 0
    print("@rnnbench ready rounds=%d extendable=1 numbered=1" % planned, flush=True)
    while (line := sys.stdin.readline()).startswith("@rnnbench go"):
        r = int(line.split("round=")[1]) if "round=" in line else r + 1
        drift = spec["drift"][(r - 1) % len(spec["drift"])] * spec["jitter"][label][(r - 1) % 50]
        rate = base * drift * (0.4 if r in planted else 1.0)
        foreign = 0.4 if r in planted else 0.005
        rates[r] = rate
        loads.append(dict(round=r, foreign=foreign, steal=0.0, efficiency=0.97))
        print("@rnnbench paused round=%d tok_s=%.1f foreign=%.4f steal=0 efficiency=0.97" % (r, rate, foreign),
              flush=True)
    rec = record(backend, campaign, rates, mode="eager" if backend == "pytorch" else None)
    rec["run_id"] = args[args.index("--run-id") + 1]
    rec["campaign"].update(contender=label, load=loads)
    if "--campaign-settings" in args:
        rec["campaign"]["settings"] = json.loads(args[args.index("--campaign-settings") + 1])
    if "--twin-of" in args:
        rec["campaign"]["twin_of"] = args[args.index("--twin-of") + 1]
    if "--process" in args:
        rec["campaign"]["process"] = process
    append_record(results + "/%s.jsonl" % backend, rec)
""")
DRIFT = list(np.random.default_rng(24).uniform(0.85, 1.15, 50))


def stand_in(tmp_path: Path, planted: dict[str, list[int]], scale: dict[str, float], spread: float = 0.01,
             spreads: dict[str, float] | None = None, process: dict[str, dict[str, float]] | None = None) -> str:
    """A stand-in contender's Python; `spreads` the round-to-round jitter of some labels;
    `process` a factor on the rates of some labels' process K (by "K")."""
    rng = np.random.default_rng(25)
    labels = [f"{b}{t}" for b in scale for t in ("", "~twin")]
    spreads = {label: (spreads or {}).get(label, spread) for label in labels}
    spec = {"scale": scale, "planted": planted, "drift": DRIFT, "process": process or {},
            "jitter": {label: list(rng.uniform(1 - spreads[label], 1 + spreads[label], 50)) for label in labels}}
    script = tmp_path / "stand-in-python"
    script.write_text(STAND_IN.format(python=sys.executable, repo=str(camp.REPO), spec=json.dumps(spec)))
    script.chmod(0o755)
    return str(script)


def drive(tmp_path: Path, python: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "benchmarks", "campaign", f"--python=pytorch={python}", f"--python=jax={python}",
           "--results", str(tmp_path / "runs"), "--no-report", "--preset", "smoke", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=camp.REPO)


def rows_of(tmp_path: Path) -> tuple[dict, dict]:
    build_report(tmp_path / "runs", tmp_path / "out")
    data = json.loads((tmp_path / "out" / "summary.json").read_text())
    return data, {r["contender"]: r for r in data["rows"]}


def test_planted_disturbance_is_flagged_replaced_and_moves_neither_verdict_nor_ratio(tmp_path):
    scale = {"pytorch": 50_000.0, "jax": 45_000.0}
    quiet = stand_in(tmp_path, {}, scale)
    out = drive(tmp_path / "quiet", quiet, "--rounds", "10", "--no-twin")
    assert out.returncode == 0, out.stderr
    _, calm = rows_of(tmp_path / "quiet")
    busy = stand_in(tmp_path, {"jax": [3, 8]}, scale)
    out = drive(tmp_path / "busy", busy, "--rounds", "10", "--no-twin")
    assert out.returncode == 0, out.stderr
    assert "up to 2 disturbed round(s) per contender so far: 2 replacement round(s)" in out.stdout
    assert "budget extended by" in out.stdout  # the disturbed slices' time given back
    assert "round 12/10 (extra)" in out.stdout and "round 13/10" not in out.stdout
    data, hit = rows_of(tmp_path / "busy")
    assert hit["jax"]["disturbed_rounds"] == 2 and hit["jax"]["rounds"] == 12
    assert list(data["disturbed_rounds"].values()) == [{"disturbed": 2, "rounds": 12}]
    assert hit["jax"]["verdict"] == hit["jax"]["verdict_all"] == calm["jax"]["verdict"] == "slower"
    assert abs(hit["jax"]["ratio_to_fastest"] / calm["jax"]["ratio_to_fastest"] - 1) < 0.01
    robust = np.subtract(*hit["jax"]["ratio_ci"][::-1])  # the disturbed slices left out
    assert robust < 2 * np.subtract(*calm["jax"]["ratio_ci"][::-1])
    kept = np.subtract(*hit["jax"]["ratio_all_ci"][::-1])  # kept in: the sign test barely moves
    assert kept < 2 * np.subtract(*calm["jax"]["ratio_all_ci"][::-1])
    records = [json.loads(line) for line in (tmp_path / "busy" / "runs" / "jax.jsonl").read_text().splitlines()]
    pace = [json.loads(line) for line in (tmp_path / "busy" / "runs" / "pytorch.jsonl").read_text().splitlines()]
    jax_rates = [e["tok_s"] for e in records[0]["epochs"][1:]]
    torch_rates = [e["tok_s"] for e in pace[0]["epochs"][1:]]
    old = old_paired_ratio(jax_rates, torch_rates)
    assert old[2] - old[1] > 3 * robust  # the old t interval widens; the robust one does not


def test_the_twin_runs_as_its_own_process_and_is_never_ranked(tmp_path):
    python = stand_in(tmp_path, {}, {"pytorch": 50_000.0, "jax": 45_000.0})
    out = drive(tmp_path, python, "--rounds", "8", "--twin", "pytorch", "--no-retry-disturbed")
    assert out.returncode == 0, out.stderr
    assert "pytorch~twin" in out.stdout
    data, rows = rows_of(tmp_path)
    assert rows["pytorch~twin"]["verdict"] == "twin (A/A)" and rows["pytorch"]["verdict"] == "fastest"
    assert data["calibration"][0]["verdict"] == "tie" and data["calibration"][0]["contains_1"]
    assert "A/A twin (pytorch run again as processes of its own)" in (tmp_path / "out" / "REPORT.md").read_text()


def test_two_processes_per_contender_take_turns_and_their_spread_reaches_the_twin_interval(tmp_path):
    """A twin whose one process runs 4% fast (as two processes of the same code can) is
    called `faster` from one process, whose rounds cannot see it; with two processes
    per contender, taking turns, the interval spans the two, and the twin ties."""
    offsets = {"pytorch~twin": {"1": 1.04, "2": 0.99}}
    python = stand_in(tmp_path, {}, {"pytorch": 50_000.0, "jax": 45_000.0}, spread=0.005, process=offsets)
    one = drive(tmp_path / "one", python, "--rounds", "20", "--twin", "pytorch", "--processes", "1")
    assert one.returncode == 0, one.stderr
    data, _ = rows_of(tmp_path / "one")
    assert data["calibration"][0]["verdict"] == "faster" and not data["calibration"][0]["contains_1"]
    two = drive(tmp_path / "two", python, "--rounds", "20", "--twin", "pytorch", "--processes", "2")
    assert two.returncode == 0, two.stderr
    assert "round 20/20" in two.stdout and "round 21" not in two.stdout
    data, rows = rows_of(tmp_path / "two")
    assert data["calibration"][0]["verdict"] == "tie" and data["calibration"][0]["contains_1"]
    assert rows["jax"]["rounds"] == rows["pytorch~twin"]["rounds"] == 20 and rows["jax"]["verdict"] == "slower"
    assert "one of its 2 processes" in (tmp_path / "two" / "out" / "REPORT.md").read_text()
    records = [json.loads(line) for line in (tmp_path / "two" / "runs" / "jax.jsonl").read_text().splitlines()]
    turns = {r["campaign"]["process"]: [e["round"] for e in r["epochs"][1:]] for r in records}
    assert turns == {"1/2": list(range(1, 20, 2)), "2/2": list(range(2, 21, 2))}


def test_precision_adds_rounds_until_reached(tmp_path):
    python = stand_in(tmp_path, {}, {"pytorch": 50_000.0, "jax": 45_000.0}, spread=0.03)
    out = drive(tmp_path, python, "--rounds", "6", "--no-twin", "--precision", "0.02", "--budget", "5")
    assert out.returncode == 0, out.stderr
    assert "after 6 rounds (target ±2%): 5 more rounds" in out.stdout
    assert ": done" in out.stdout
    data, rows = rows_of(tmp_path)
    assert rows["jax"]["rounds"] > 6
    assert data["precision"]["target"] == 0.02 and data["precision"]["reached"] <= 0.02


def test_precision_rounds_go_only_to_the_intervals_still_too_wide(tmp_path):
    python = stand_in(tmp_path, {}, {"pytorch": 50_000.0, "jax": 45_000.0},
                      spreads={"pytorch": 0.004, "pytorch~twin": 0.004, "jax": 0.03})
    out = drive(tmp_path, python, "--rounds", "6", "--twin", "pytorch", "--precision", "0.02", "--budget", "5")
    assert out.returncode == 0, out.stderr
    assert "after 6 rounds (target ±2%): 5 more rounds for jax, pytorch" in out.stdout
    data, rows = rows_of(tmp_path)
    assert rows["pytorch~twin"]["rounds"] == 6 < rows["jax"]["rounds"] == rows["pytorch"]["rounds"]
    record = json.loads((tmp_path / "runs" / "jax.jsonl").read_text().splitlines()[0])
    assert [e["round"] for e in record["epochs"]] == list(range(rows["jax"]["rounds"] + 1))
    assert data["precision"]["reached"] <= 0.02 and rows["jax"]["verdict"] == "slower"


def test_no_replacement_rounds_where_the_intervals_are_narrow_enough(tmp_path):
    """With --precision, a disturbed round is replaced only for intervals still too wide."""
    python = stand_in(tmp_path, {"jax": [3, 8]}, {"pytorch": 50_000.0, "jax": 45_000.0})
    out = drive(tmp_path, python, "--rounds", "10", "--no-twin", "--precision", "0.05", "--budget", "5")
    assert out.returncode == 0, out.stderr
    assert "replacement round" not in out.stdout and "precision ±" in out.stdout and ": done" in out.stdout
    data, rows = rows_of(tmp_path)
    assert rows["jax"]["rounds"] == 10 and rows["jax"]["disturbed_rounds"] == 2 and rows["jax"]["verdict"] == "slower"


def test_precision_stops_at_the_budget(tmp_path):
    python = stand_in(tmp_path, {}, {"pytorch": 50_000.0, "jax": 45_000.0}, spread=0.2)
    out = drive(tmp_path, python, "--rounds", "6", "--no-twin", "--precision", "0.001", "--budget", "0.0000001")
    assert out.returncode == 0, out.stderr
    assert "budget spent, stopping" in out.stdout
    data, rows = rows_of(tmp_path)
    assert rows["jax"]["rounds"] == 6 and data["precision"]["reached"] > 0.001


@pytest.mark.parametrize("args, message", [
    (["--precision", "0"], "--precision 0 must be a fraction in (0, 1)"),
    (["--precision", "1.5"], "--precision 1.5 must be a fraction in (0, 1)"),
    (["--budget", "-1"], "--budget -1 must be a positive number of minutes"),
    (["--twin", "nobody"], "--twin 'nobody' names no contender of this campaign"),
    (["--noise", "1"], "--noise 1 must be in [0, 1)"),
    (["--noise", "-0.1"], "--noise -0.1 must be in [0, 1)"),
    (["--processes", "0"], "--processes 0 must be 1 to 8"),
])
def test_bad_verdict_settings_get_one_line(tmp_path, args, message):
    out = drive(tmp_path, sys.executable, *args)
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and message in out.stderr and out.stderr.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_the_burner_keeps_its_duty_and_stops_with_its_parent():
    import os
    import time

    import psutil

    proc = subprocess.Popen([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(camp.REPO)!r}); "
                             "from benchmarks.campaign.noise import burner; import time\n"
                             "with burner(0.5) as b:\n    print(b.pid, flush=True); time.sleep(4)"],
                            stdout=subprocess.PIPE, text=True)
    pid = int(proc.stdout.readline())
    child = psutil.Process(pid)
    start = sum(child.cpu_times()[:2])
    time.sleep(3)
    share = (sum(child.cpu_times()[:2]) - start) / 3
    proc.wait(timeout=10)
    assert 0.15 < share < 0.85  # half a core on average, in random bursts
    time.sleep(0.5)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert callable(burn) and os.getpid()


def test_a_disturbed_slice_gives_its_time_back_up_to_one_more_budget():
    """A busy minute costs time, not precision: each disturbed slice's wall time extends
    the deadline, until the extensions add up to one more --budget."""
    import argparse

    from benchmarks.campaign.driver import credit

    opts = argparse.Namespace(budget_s=10.0, extended_s=0.0)
    assert [credit(opts, 4.0) for _ in range(4)] == [4.0, 4.0, 2.0, 0.0]
    assert opts.extended_s == 10.0
