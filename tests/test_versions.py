"""Framework versions as contenders: `--versions` read in one place, each mistake one
line; each version's venv named and constrained; a venv labelled with a version must
hold it; the contender's name carries the version into the report's sentence."""

import argparse
import stat

import numpy as np
import pytest

from benchmarks.campaign.driver import contenders_from
from benchmarks.campaign.versions import constraints_for, contender_key, cuda_packages, parse_versions, requirements
from common.errors import SpecError


def test_versions_are_read_per_framework():
    assert parse_versions("jax=0.10.1,0.10.2 torch=2.13.0") == {"jax": ["0.10.1", "0.10.2"], "pytorch": ["2.13.0"]}
    assert parse_versions("mxnet=1.9.1;jax=0.9.2") == {"mxnet": ["1.9.1"], "jax": ["0.9.2"]}
    assert requirements("jax", "0.10.1") == ["jax==0.10.1", "jaxlib==0.10.1"]
    assert contender_key("jax", "0.10.1") == "jax 0.10.1" and contender_key("jax", "") == "jax"


@pytest.mark.parametrize("text, says", [
    ("tensorflow=2.16", "'tensorflow', which is not a framework here"),
    ("jax=0.10.1,0.10.1", "names jax 0.10.1 twice"),
    ("jax=0.10.1 jax=0.10.1", "names jax 0.10.1 twice"),
    ("jax", "is not FRAMEWORK=V1,V2"),
    ("jax=latest", "'latest' is not a version"),
])
def test_bad_versions_are_one_line_each(text, says):
    with pytest.raises(SpecError, match=says) as caught:
        parse_versions(text)
    assert "\n" not in str(caught.value)


def test_a_versions_venv_keeps_every_pin_but_its_frameworks():
    pins = "flax==0.12.8\njax==0.10.2\njaxlib==0.10.2\nnumpy==2.4.6\ntorch==2.13.0\n"
    assert constraints_for("jax", pins) == "flax==0.12.8\nnumpy==2.4.6\ntorch==2.13.0\n"
    assert constraints_for("pytorch", pins) == "flax==0.12.8\njax==0.10.2\njaxlib==0.10.2\nnumpy==2.4.6\n"


def test_cuda_packages_in_a_dry_run_are_named():
    report = {"install": [{"metadata": {"name": "torch"}}, {"metadata": {"name": "nvidia-cublas-cu12"}},
                          {"metadata": {"name": "triton"}}, {"metadata": {"name": "numpy"}}]}
    assert cuda_packages(report) == ["nvidia-cublas-cu12", "triton"]
    assert cuda_packages({"install": [{"metadata": {"name": "torch"}}]}) == []


def fake_python(tmp_path, name: str, version: str) -> str:
    """An executable that answers the version query as a venv holding `version` would."""
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\necho {version}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def options(pythons: list[str]) -> argparse.Namespace:
    return argparse.Namespace(python=pythons, modes="tuned", checkout=[], workers=None)


def test_each_version_is_a_contender_named_for_it(tmp_path):
    old, new = fake_python(tmp_path, "old", "0.10.1"), fake_python(tmp_path, "new", "0.10.2")
    contenders = contenders_from(options([f"jax 0.10.1={old}", f"jax 0.10.2={new}"]))
    assert [c.label for c in contenders] == ["jax 0.10.1/tuned", "jax 0.10.2/tuned"]
    assert len({c.framework for c in contenders}) == 2  # each version measures its own matmul peak


def test_a_venv_that_does_not_hold_its_version_is_refused(tmp_path):
    wrong = fake_python(tmp_path, "wrong", "0.10.2")
    with pytest.raises(SpecError, match=r"that Python has jax 0.10.2, not 0.9.2; give the venv of that version"):
        contenders_from(options([f"jax 0.9.2={wrong}"]))
    with pytest.raises(SpecError, match="names jax 0.10.2 twice"):
        contenders_from(options([f"jax 0.10.2={wrong}", f"jax 0.10.2={wrong}"]))


def test_the_reports_sentence_names_the_version():
    pd = pytest.importorskip("pandas")
    from benchmarks.report.display import contender_name

    row = pd.Series({"contender": "jax 0.10.1/tuned", "backend": "jax", "mode": "wavefront"})
    assert contender_name(row) == "JAX 0.10.1 `wavefront`"
    assert contender_name(pd.Series({"contender": "pytorch/tuned@before", "backend": "pytorch",
                                     "mode": "eager"})) == "PyTorch `eager`@before"


def _version_records(tmp_path, old_rates, new_rates):
    from tests.fake_records import record, write

    old = record("jax", "c-versions", old_rates, track="tuned")
    new = record("jax", "c-versions", new_rates, track="tuned")
    for r, version in ((old, "0.10.1"), (new, "0.10.2")):
        r["campaign"]["contender"] = f"jax {version}/tuned"
        r["run_id"] += "-" + version
    return write(tmp_path / "runs", old, new)


@pytest.mark.parametrize("slower, says", [(0.88, "jax 0.10.1 over jax 0.10.2: wavefront 0.88×"), (1.0, "tie")])
def test_the_report_pairs_each_older_version_with_the_newest(tmp_path, slower, says):
    pytest.importorskip("pandas")
    pytest.importorskip("scipy")
    from benchmarks.cli import main

    rng = np.random.default_rng(3)
    base = 20000 * np.exp(rng.normal(0, 0.01, 20))
    folder = _version_records(tmp_path, list(base * slower * np.exp(rng.normal(0, 0.005, 20))), list(base))
    assert main(["report", "--results", str(folder), "--out", str(tmp_path / "out")]) == 0
    line = next(x for x in (tmp_path / "out" / "REPORT.md").read_text().splitlines() if x.startswith("versions,"))
    assert says in line and line.endswith("slower" if slower < 1 else "tie"), line


FAKE_PIP = r"""#!/bin/sh
# a stand-in for `python -m pip install --dry-run ...`, answering by the version asked for
case "$*" in
  *jax==9.9.9*) echo "ERROR: No matching distribution found for jax==9.9.9" >&2; exit 1 ;;
  *jax==0.9.2*--report*|*--report*jax==0.9.2*) echo "ERROR: ResolutionImpossible: see the docs" >&2; exit 1 ;;
  *jax==0.9.2*) echo "    flax 0.12.8 depends on jax>=0.10.0"; exit 1 ;;
  *torch==2.12.0*) echo '{"install": [{"metadata": {"name": "torch"}}, {"metadata": {"name": "nvidia-cudnn-cu12"}}]}' ;;
  *) echo '{"install": [{"metadata": {"name": "jax"}}]}' ;;
esac
"""


@pytest.mark.parametrize("backend, version, says", [
    ("jax", "0.9.2", "pip cannot install it beside the project's other pins (flax 0.12.8 depends on jax>=0.10.0)"),
    ("pytorch", "2.12.0", "it would pull 1 CUDA packages (nvidia-cudnn-cu12, ...) of several GB"),
    ("jax", "0.10.1", ""),
])
def test_pips_dry_run_decides_what_a_version_is(tmp_path, backend, version, says):
    from benchmarks.campaign.versions import version_problem

    pip = fake_python(tmp_path, "pip", "x")
    (tmp_path / "pip").write_text(FAKE_PIP)
    install = [pip, "-m", "pip", "install", "-q", "-c", "pins.txt", *requirements(backend, version)]
    assert version_problem(install, backend, version).startswith(says) if says else \
        version_problem(install, backend, version) == ""


def test_a_version_the_index_lacks_is_an_error_naming_the_fix(tmp_path):
    from benchmarks.campaign.versions import version_problem

    pip = fake_python(tmp_path, "pip", "x")
    (tmp_path / "pip").write_text(FAKE_PIP)
    with pytest.raises(SpecError, match=r"^jax 9.9.9 is not on the package index \(ERROR: No matching distribution "
                                        r"found for jax==9.9.9\); name a version that exists$"):
        version_problem([pip, "-m", "pip", "install", "-q", "-c", "pins.txt", *requirements("jax", "9.9.9")],
                        "jax", "9.9.9")
