"""Sessions: `nox -s bench` (one campaign over every backend, then the report),
`nox -s tests`, `nox -s compare -- BASE NEW` and `nox -s microbench`.

`bench` builds each backend's venv (`bench-<backend> -- --prepare`, which writes the
venv's Python into .nox/rnnbench-pythons/), then the `campaign` session drives one
process per backend from the report's venv, round by round (benchmarks/campaign/driver.py).

Each framework gets its own virtualenv with pinned versions (constraints/), because
MXNet 1.9.1 needs numpy 1.23 while current JAX needs numpy >= 1.26; the report (pandas,
matplotlib) has its own too, so nothing upgrades numpy under MXNet.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nox

sys.path.insert(0, str(Path(__file__).parent))
from benchmarks.campaign.suites import BACKEND_NAMES, PlanError, plan  # noqa: E402
from benchmarks.campaign.versions import (  # noqa: E402
    FRAMEWORK_PACKAGES,
    constraints_for,
    contender_key,
    parse_versions,
    requirements,
    split_key,
    venv_name,
    version_problem,
)
from common.errors import SpecError  # noqa: E402

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
PYTHON = "3.11"
BACKENDS = BACKEND_NAMES
PACKAGES = {
    "core": ["numpy"],
    "pytorch": ["numpy", "torch"],
    "mxnet": ["numpy", "mxnet"],
    "jax": ["numpy", "jax", "jaxlib", "flax", "optax"],
    "report": ["numpy", "pandas", "matplotlib", "tabulate", "scipy", "markdown-it-py"],
}
ENV_TOOLS = ["py-cpuinfo", "psutil"]  # the machine fingerprint, the same in every venv
TEST_TOOLS = ["pytest", "pytest-benchmark"]
BENCH_TOOLS = ["tqdm"]
REGISTRY = Path(__file__).resolve().parent / ".nox" / "rnnbench-pythons"  # backend -> its venv's Python
INTERRUPT_S = 30  # Ctrl-C: time for every run to write its `interrupted` record before nox sends SIGTERM


def constraints(env: str) -> str:
    return f"constraints/{'mxnet' if env == 'mxnet' else 'main'}.txt"


def install(session: nox.Session, env: str, *extra: str) -> None:
    session.install("-c", constraints(env), *PACKAGES[env], *ENV_TOOLS, *extra)


def venv_python(session: nox.Session) -> str:
    return str(Path(session.virtualenv.location) / "bin" / "python")


def data_env() -> dict[str, str]:
    """RNNBENCH_DATA passes through; ../shared/data beside the checkout is the fallback."""
    shared = Path(__file__).resolve().parent.parent / "shared" / "data"
    if "RNNBENCH_DATA" not in os.environ and shared.is_dir():
        return {"RNNBENCH_DATA": str(shared)}
    return {}


@nox.session(python=PYTHON)
@nox.parametrize("env", list(PACKAGES))
def tests(session: nox.Session, env: str) -> None:
    """pytest in one venv per framework; RNNBENCH_TEST_BACKENDS names the framework the
    venv must have, so a broken install fails instead of skipping its tests. In the
    report's venv RNNBENCH_TEST_REPORT=1 makes the first-screen check (headless Chromium,
    installed by .ci/run) fail rather than skip when the browser is missing."""
    install(session, env, *TEST_TOOLS, *(BENCH_TOOLS if env in BACKENDS else []))
    tested = env if env in BACKENDS else ""
    session.run("python", "-m", "pytest", *session.posargs,
                env={**data_env(), "RNNBENCH_TEST_BACKENDS": tested, "RNNBENCH_TEST_REPORT": str(int(env == "report"))})


def bench_backend(session: nox.Session, backend: str) -> None:
    """`--prepare` (from `bench`): build the venv and register its Python. Otherwise a
    campaign of this backend alone, records only (the report has its own venv)."""
    prepare = session.posargs[:1] == ["--prepare"]
    if not prepare:
        try:
            runs = plan(backend, session.posargs)
        except PlanError as exc:
            session.error(str(exc))
        if not runs:
            session.skip(f"nothing to run for {backend} with these arguments")
    try:
        install(session, backend, *BENCH_TOOLS)
    except nox.command.CommandFailed:
        session.skip(f"{backend}: its virtualenv could not be built here (see the pip output above)")
    if prepare:
        REGISTRY.mkdir(parents=True, exist_ok=True)
        (REGISTRY / backend).write_text(venv_python(session))
        return
    session.run("python", "-m", "benchmarks", "campaign", f"--python={backend}={venv_python(session)}",
                "--no-report", *session.posargs, env=data_env(), interrupt_timeout=INTERRUPT_S)


@nox.session(name="bench-pytorch", python=PYTHON)
def bench_pytorch(session: nox.Session) -> None:
    bench_backend(session, "pytorch")


@nox.session(name="bench-mxnet", python=PYTHON)
def bench_mxnet(session: nox.Session) -> None:
    bench_backend(session, "mxnet")


@nox.session(name="bench-jax", python=PYTHON)
def bench_jax(session: nox.Session) -> None:
    bench_backend(session, "jax")


@nox.session(python=PYTHON)
@nox.parametrize("backend", list(BACKENDS), ids=list(BACKENDS))
def microbench(session: nox.Session, backend: str) -> None:
    """Micro-benchmarks (pytest-benchmark) of one backend: results/microbench/<backend>.json.

    benchmarks/micro times one training step, one pass of the recurrent layers alone and
    one generation step per cell and mode, in the backend's own venv; `tests` never
    collects it. The report reads the JSON."""
    try:
        install(session, backend, *TEST_TOOLS)
    except nox.command.CommandFailed:
        session.skip(f"{backend}: its virtualenv could not be built here (see the pip output above)")
    out = Path(__file__).resolve().parent / "results" / "microbench"
    out.mkdir(parents=True, exist_ok=True)
    session.run("python", "-m", "pytest", "benchmarks/micro", "--micro-backend", backend,
                f"--benchmark-json={out / f'{backend}.json'}", *session.posargs, env=data_env())


@nox.session(python=PYTHON)
def report(session: nox.Session) -> None:
    """Tables and plots from every record under results/runs, campaign by campaign (its own venv: pandas, scipy)."""
    install(session, "report")
    session.run("python", "-m", "benchmarks", "report", *session.posargs)


@nox.session(python=False)
def bench(session: nox.Session) -> None:
    """One campaign: every backend's venv, then the backends interleaved round by round
    with the same threads, then REPORT.md (this campaign first) and summary.json.
    `--versions jax=V1,V2` makes each version of a framework a contender of its own,
    each in a venv of its own (benchmarks/campaign/versions.py)."""
    try:
        versions, posargs = take_versions(session.posargs)
    except SpecError as exc:
        session.error(str(exc))
    wanted = BACKENDS
    try:
        if "--backend" in posargs:
            wanted = [b for b in BACKENDS if plan(b, posargs)]
        else:
            plan(BACKENDS[0], posargs)
    except PlanError as exc:
        session.error(str(exc))
    unplanned = sorted(set(versions) - set(wanted))
    if unplanned:
        session.error(f"--versions names {', '.join(unplanned)}, which this campaign does not run: "
                      "drop it from --versions or from --backend")
    shutil.rmtree(REGISTRY, ignore_errors=True)
    REGISTRY.mkdir(parents=True)
    for backend, listed in versions.items():
        for version in listed:
            prepare_version(session, backend, version)
    for backend in wanted:
        session.notify(f"bench-{backend}", ["--prepare"])
    session.notify("campaign", posargs)


def take_versions(posargs: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """`--versions TEXT` out of the arguments: ({backend: [versions]}, the rest)."""
    args = list(posargs)
    if "--versions" not in args:
        return {}, args
    i = args.index("--versions")
    if i + 1 >= len(args):
        raise SpecError("--versions needs FRAMEWORK=V1,V2, e.g. --versions jax=0.10.1,0.10.2")
    return parse_versions(args[i + 1]), args[:i] + args[i + 2:]


def pinned(backend: str) -> str:
    """The version constraints/ pins for this framework (its plain bench venv's)."""
    package = FRAMEWORK_PACKAGES[backend][0]
    for line in Path(constraints(backend)).read_text().splitlines():
        if line.startswith(f"{package}=="):
            return line.split("==", 1)[1].strip()
    return ""


def prepare_version(session: nox.Session, backend: str, version: str) -> None:
    """Register a venv holding `version` of the framework: the plain venv for the pinned
    version, else .nox/bench-<backend>-<version>, built with the project's other pins. A
    version the index does not have is an error; one that would pull CUDA packages, or
    whose dependencies conflict, is skipped with one line saying why."""
    key = contender_key(backend, version)
    if version == pinned(backend):
        (REGISTRY / key).write_text("@plain")  # the plain venv, registered by bench-<backend> --prepare
        return
    venv = Path(".nox") / venv_name(backend, version)
    python = venv / "bin" / "python"
    if not python.exists():
        session.run(sys.executable, "-m", "venv", str(venv), external=True, silent=True)
    pins = venv / "constraints.txt"
    pins.write_text(constraints_for(backend, Path(constraints(backend)).read_text()))
    packages = [p for p in PACKAGES[backend] if p not in FRAMEWORK_PACKAGES[backend]]
    install = [str(python), "-m", "pip", "install", "-q", "-c", str(pins), *requirements(backend, version),
               *packages, *ENV_TOOLS, *BENCH_TOOLS]
    try:
        why = version_problem(install, backend, version)
    except SpecError as exc:
        shutil.rmtree(venv, ignore_errors=True)
        session.error(str(exc))
    if why:
        shutil.rmtree(venv, ignore_errors=True)
        session.warn(f"{key}: skipped: {why}")
        return
    session.run(*install, external=True)
    (REGISTRY / key).write_text(str(python.absolute()))  # not resolve(): the venv's python is a link



@nox.session(python=PYTHON)
def campaign(session: nox.Session) -> None:
    """Run by `nox -s bench`: the campaign driver over the registered venvs, then the report."""
    install(session, "report")
    pythons = registered_pythons()
    if not pythons:
        session.error("no backend venv could be built (see the pip output above); nothing to run")
    session.run("python", "-m", "benchmarks", "campaign", *pythons, *session.posargs, env=data_env(),
                interrupt_timeout=INTERRUPT_S)


def registered_pythons() -> list[str]:
    """--python arguments for every registered venv: a backend's versions when
    `--versions` named it (`jax 0.10.1=PATH`), else its plain venv."""
    entries = {path.name: path.read_text().strip() for path in REGISTRY.glob("*")} if REGISTRY.is_dir() else {}
    out = []
    for backend in BACKENDS:
        versions = [k for k in entries if split_key(k)[0] == backend and split_key(k)[1]]
        for key in sorted(versions) or ([backend] if backend in entries else []):
            python = entries.get(backend, "") if entries[key] == "@plain" else entries[key]
            if python:
                out.append(f"--python={key}={python}")
    return out


@nox.session(python=PYTHON)
def compare(session: nox.Session) -> None:
    """Two campaigns side by side (`nox -s compare -- BASE NEW`; see `python -m benchmarks compare -h`)."""
    install(session, "report")
    session.run("python", "-m", "benchmarks", "compare", *session.posargs)


@nox.session(python=PYTHON)
def history(session: nox.Session) -> None:
    """Every campaign's tokens/sec over time, per machine, steps marked (`python -m benchmarks history -h`)."""
    install(session, "report")
    session.run("python", "-m", "benchmarks", "history", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("-c", constraints("core"), "ruff")
    session.run("ruff", "check", ".")
