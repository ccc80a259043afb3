"""Campaigns: round schedule, rotation, the driver's pipe protocol (with stand-in
processes, no framework), the records' campaign labels, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchmarks.campaign import driver as camp
from benchmarks.pipe import Gate, epoch_rounds
from common.environment import git_commit, git_state
from common.errors import SpecError

FAKE_RUN = textwrap.dedent("""\
    #!{python}
    # Stands in for `python -m benchmarks run --gate`: speaks the pipe protocol and logs
    # each `go` it gets, so the test can see the order the driver chose.
    import sys
    args = sys.argv[1:]
    label = args[args.index("--contender") + 1]
    rounds = int(args[args.index("--rounds") + 1])
    log = open({log!r}, "a")
    if {fail!r} and label.startswith({fail!r}):
        print("error: this contender cannot start", file=sys.stderr)
        sys.exit(2)
    print("some framework chatter")
    print("@rnnbench ready rounds=%d" % rounds, flush=True)
    for r in range(1, rounds + 1):
        line = sys.stdin.readline()
        if not line.startswith("@rnnbench go"):
            sys.exit(130)
        n = int(line.split("round=")[1]) if "round=" in line else r  # the campaign's number for this round
        log.write("%s %d%s\\n" % (label, n, "" if "--no-peak" in args or r > 1 else " peak")); log.flush()
        word = "done" if r == rounds else "paused"
        if word == "done":  # its record, as a real run writes it before it exits
            sys.path.insert(0, {repo!r})
            from tests.fake_records import record
            from common.records import append_record
            rec = record(args[args.index("--backend") + 1], args[args.index("--campaign") + 1],
                         [1000.0 + k for k in range(1, rounds + 1)])
            rec["run_id"] = args[args.index("--run-id") + 1]
            append_record(args[args.index("--results") + 1] + "/fake.jsonl", rec)
        print("@rnnbench %s round=%d tok_s=%d" % (word, n, 1000 + n), flush=True)
""")


def test_epoch_rounds_split_the_epochs_after_the_warm_up():
    assert epoch_rounds(30, 7) == [0] + [1] * 5 + [2] * 4 + [3] * 4 + [4] * 4 + [5] * 4 + [6] * 4 + [7] * 4
    assert epoch_rounds(3, 7) == [0, 1, 2]  # cut down to the epochs there are
    assert epoch_rounds(1, 1) == [0]
    with pytest.raises(SpecError, match="at least 1"):
        epoch_rounds(30, 0)


def test_processes_of_one_contender_take_turns_at_its_rounds():
    assert epoch_rounds(11, 10, 1, 2) == [0, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19]
    assert epoch_rounds(11, 10, 2, 2) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    assert epoch_rounds(7, 3, 3, 3) == [0, 3, 3, 6, 6, 9, 9]
    with pytest.raises(SpecError, match="give K/N with 1 <= K <= N"):
        epoch_rounds(11, 10, 3, 2)


def test_processes_start_counterbalanced_so_every_contender_sits_at_the_same_mean_place():
    import argparse

    a, b, c = (camp.Contender(name, "python") for name in ("pytorch", "mxnet", "jax"))
    data_parallel = camp.Contender("jax", "python", workers=2)  # its workers are its processes: one
    order = camp.start_order([a, b, c, data_parallel], argparse.Namespace(processes=2))
    assert [(x.label, k) for x, k, _ in order] == [("pytorch", 1), ("mxnet", 1), ("jax", 1), ("jax x2", 1),
                                                    ("jax", 2), ("mxnet", 2), ("pytorch", 2)]
    places = {x.label: [i for i, (y, _, n) in enumerate(order) if y == x and n == 2] for x in (a, b, c)}
    assert len({sum(p) for p in places.values()}) == 1
    firsts = {camp.start_order([a, b, c], argparse.Namespace(processes=2), f"campaign-{i}")[0][0] for i in range(20)}
    assert firsts == {a, b, c}  # with a seed, no contender is always the one started first


def test_a_second_process_trains_its_own_rounds_and_no_other():
    """Process 2 of 2 says it is ready, trains round 2 when told, reports it as round 2,
    and refuses a `go` for a round that is not its turn (a driver's mistake, said)."""
    import io

    said = io.StringIO()
    gate = Gate(epoch_rounds(4, 3, 2, 2), out=said, inp=io.StringIO("@rnnbench go round=2\n@rnnbench go round=5\n"))
    assert gate.rounds == 3
    rows = [{"tokens": 100, "seconds": 1.0}, {"tokens": 100, "seconds": 0.5}]
    gate.before_epoch(0, [])
    gate.before_epoch(1, rows[:1])
    assert gate.current == 2 and "@rnnbench ready rounds=3" in said.getvalue()
    with pytest.raises(SpecError, match="asked for round 5; this process trains round 4 next"):
        gate.before_epoch(2, rows)
    assert "@rnnbench paused round=2 tok_s=200.0" in said.getvalue()


def test_an_extra_round_takes_the_number_the_driver_gives():
    """A contender that sat rounds 3-6 out trains round 7 as round 7: rounds pair by number."""
    import io

    said = io.StringIO()
    gate = Gate([0, 1, 2], out=said, inp=io.StringIO("@rnnbench go round=1\n@rnnbench go round=2\n"
                                                      "@rnnbench go round=7\n@rnnbench go\n@rnnbench stop\n"),
                extendable=True)
    rows = [{"tokens": 100, "seconds": 1.0, "round": r} for r in (0, 1, 2)]
    for index in range(3):
        gate.before_epoch(index, rows[:index])
    assert gate.more(rows) and gate.current == 7
    assert gate.more(rows + [{"tokens": 100, "seconds": 0.5, "round": 7}]) and gate.current == 8  # no number: next
    assert not gate.more(rows)
    assert "@rnnbench paused round=7 tok_s=200.0" in said.getvalue() and "numbered=1" in said.getvalue()


def test_each_round_draws_its_own_order_and_no_contender_always_follows_the_same_one():
    items = list("abcdefghi")
    orders = [camp.shuffled(items, r, "campaign-x") for r in range(1, 41)]
    assert all(sorted(o) == items for o in orders)
    assert orders == [camp.shuffled(items, r, "campaign-x") for r in range(1, 41)]  # reproducible
    assert orders[0] != camp.shuffled(items, 1, "campaign-y")
    before_a = {o[o.index("a") - 1] for o in orders if o.index("a") > 0}
    assert len(before_a) >= 6  # a rotation would give one neighbour, always the same
    assert len({o[0] for o in orders}) == len(items)  # everyone goes first some time


def fake_python(tmp_path: Path, fail: str = "") -> tuple[str, Path]:
    log = tmp_path / "order.log"
    script = tmp_path / "fake-python"
    script.write_text(FAKE_RUN.format(python=sys.executable, log=str(log), fail=fail, repo=str(camp.REPO)))
    script.chmod(0o755)
    return str(script), log


def drive(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks", "campaign", "--no-report",
                           "--results", str(tmp_path / "runs"), *args],
                          capture_output=True, text=True, timeout=60, cwd=Path(camp.REPO))


def test_driver_alternates_contenders_round_by_round_in_the_order_it_says(tmp_path):
    python, log = fake_python(tmp_path)
    out = drive(tmp_path, f"--python=pytorch={python}", f"--python=mxnet={python}", f"--python=jax={python}",
                "--rounds", "6", "--preset", "smoke")
    assert out.returncode == 0, out.stderr
    ran = [line.split()[:2] for line in log.read_text().splitlines()]
    rounds = [[who for who, r in ran if r == str(k)] for k in range(1, 7)]
    assert [x for r in rounds for x in r] == [who for who, _ in ran]  # a round ends before the next begins
    assert all(sorted(r) == ["jax", "mxnet", "pytorch"] for r in rounds) and len({tuple(r) for r in rounds}) > 1
    said = [line.split(": ", 1)[1] for line in out.stdout.splitlines() if "] round " in line]
    assert said == [" · ".join(f"{who} 1,00{k}" for who in r) + " tok/s" for k, r in enumerate(rounds, 1)]


def test_a_contender_that_cannot_start_is_named_and_the_rest_run(tmp_path):
    python, log = fake_python(tmp_path, fail="mxnet")
    out = drive(tmp_path, f"--python=pytorch={python}", f"--python=mxnet={python}", "--rounds", "2",
                "--preset", "smoke")
    assert out.returncode == 1, out.stderr  # the campaign ran, but not every contender left a record
    assert "mxnet: did not start: error: this contender cannot start" in out.stdout
    assert "error: 1 contender run(s) left no record: mxnet (--preset smoke)" in out.stderr
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["pytorch", "pytorch"]


def test_modes_become_contenders(tmp_path):
    python, log = fake_python(tmp_path)
    out = drive(tmp_path, f"--python=jax={python}", "--modes", "wavefront,scan", "--rounds", "2", "--preset", "smoke")
    assert out.returncode == 0, out.stderr
    ran = log.read_text().splitlines()
    assert sorted(x.removesuffix(" peak") for x in ran) == ["jax/scan 1", "jax/scan 2", "jax/wavefront 1",
                                                            "jax/wavefront 2"]
    assert [x for x in ran if x.endswith(" peak")] in (["jax/scan 1 peak"], ["jax/wavefront 1 peak"])  # one
    # matmul peak per framework, taken by whichever process starts first


def test_default_suite_runs_every_backend_in_each_track(tmp_path):
    """Contenders are backend x track (`run --mode TRACK`): out-of-box and tuned in every
    backend, the book's loop where the book has one; interleaved in one campaign."""
    python, log = fake_python(tmp_path)
    pythons = [f"--python={b}={python}" for b in ("pytorch", "mxnet", "jax")]
    out = drive(tmp_path, *pythons, "--rounds", "2", "--suite", "default")
    assert out.returncode == 0, out.stderr
    ran = [line.split()[0] for line in log.read_text().splitlines()]
    per_preset = ["pytorch/tuned", "pytorch/out-of-box", "pytorch/book", "mxnet/tuned", "mxnet/out-of-box",
                  "mxnet/book", "jax/tuned", "jax/out-of-box", "pytorch/tuned~twin"]  # the A/A twin: the first's
    assert sorted(ran) == sorted(per_preset * 4)  # quick-lstm and quick-gru, two processes each (a round each)
    said = [line for line in out.stdout.splitlines() if "] round " in line]
    assert len(said) == 4 and all(line.count(" · ") == 8 and "pytorch/tuned~twin 1,00" in line for line in said)


@pytest.mark.parametrize("args, message", [
    (["--rounds", "0"], "--rounds=0 must be at least 1"),
    (["--python", "torch=/usr/bin/python3"], "--python names unknown backend 'torch'"),
    (["--python", "pytorch"], "is not BACKEND=PATH"),
    (["--modes", "a,,b"], "has an empty name"),
    (["--modes", ""], "has an empty name"),
    (["--backend", "torch"], "--backend 'torch' is not a backend"),
    (["--suite", "nope"], "unknown suite 'nope'"),
    (["--checkout", "old=/tmp"], "is not an rnnbench checkout with campaigns"),
])
def test_bad_campaign_arguments_get_one_line(tmp_path, args, message):
    out = drive(tmp_path, *args)
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and message in out.stderr and out.stderr.count("\n") == 1
    assert not (tmp_path / "runs").exists()  # nothing ran, nothing written


def test_git_state_labels_a_dirty_tree(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)
    git("init", "-q")
    (tmp_path / "f.txt").write_text("one")
    git("add", "f.txt")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "one")
    clean = git_state(tmp_path)
    assert clean["dirty"] is False and len(clean["commit"]) == 40
    (tmp_path / "f.txt").write_text("two")
    assert git_state(tmp_path) == {"commit": clean["commit"], "dirty": True}
    assert git_commit(tmp_path) == clean["commit"] + "-dirty"


def test_a_real_run_carries_its_campaign(tmp_path, data_dir):
    pytest.importorskip("torch")
    out = subprocess.run([sys.executable, "-m", "benchmarks", "run", "--backend", "pytorch", "--preset", "smoke",
                          "--no-peak", "--quiet", "--rounds", "2", "--campaign", "c-test", "--results", str(tmp_path),
                          "--data-dir", str(data_dir)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    [line] = [x for f in tmp_path.glob("*.jsonl") for x in f.read_text().splitlines()]
    record = json.loads(line)
    assert record["campaign"] == {"id": "c-test", "rounds": 2, "gated": False, "contender": "pytorch"}
    assert [e["round"] for e in record["epochs"]] == [0, 1, 2]
    env = record["env"]
    assert set(env["git"]) == {"commit", "dirty"} and env["fingerprint"]["cores"] >= 1
    assert len(env["fingerprint"]["id"]) == 10


SLOW_RUN = textwrap.dedent("""\
    #!{python}
    # A run whose first round never ends by itself: it waits until the driver closes the pipe.
    import sys
    print("@rnnbench ready rounds=3", flush=True)
    sys.stdin.readline()  # the first `go`
    open({log!r}, "a").write("training\\n")
    told = sys.stdin.readline()  # the driver's `stop` and why, then EOF
    if sys.stdin.readline() == "":
        open({log!r}, "a").write(told.strip() + "\\npipe closed\\n")
        sys.exit(130)
""")


def test_ctrl_c_stops_the_driver_and_closes_every_pipe(tmp_path):
    """SIGINT to the driver alone: it exits 130 and closes the pipes, so each waiting
    child sees the driver gone (a real run then records itself as interrupted)."""
    import signal
    import time

    log, slow = tmp_path / "order.log", tmp_path / "slow-python"
    slow.write_text(SLOW_RUN.format(python=sys.executable, log=str(log)))
    slow.chmod(0o755)
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks", "campaign", "--no-report", "--results",
                             str(tmp_path / "runs"), f"--python=pytorch={slow}", "--preset", "smoke"],
                            cwd=Path(camp.REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(100):
        if log.exists():
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted: the records written so far are kept" in out
    assert log.read_text().split("\n")[:3] == ["training", "@rnnbench stop reason=SIGINT_to_the_campaign",
                                                "pipe closed"]


def test_a_cpu_index_is_refused():
    from backends.base import parse_device
    from common.errors import DeviceUnavailable

    assert parse_device("cpu:0").index == 0 and parse_device("gpu:1").index == 1
    with pytest.raises(DeviceUnavailable, match="the CPU is one device"):
        parse_device("cpu:3")


def test_a_campaign_run_needs_a_timed_epoch(capsys):
    from benchmarks.cli import main

    assert main(["run", "--backend", "pytorch", "--preset", "smoke", "--epochs", "1", "--gate"]) == 2
    assert "needs at least 2 epochs" in capsys.readouterr().err
