"""Sessions: `nox -s bench` (all backends, then the report), `nox -s tests` and
`nox -s microbench` (pytest-benchmark step timings per backend).

Each framework gets its own virtualenv with pinned versions (constraints/), because
MXNet 1.9.1 needs numpy 1.23 while current JAX needs numpy >= 1.26; the report (pandas,
matplotlib) has its own too, so nothing upgrades numpy under MXNet.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nox

sys.path.insert(0, str(Path(__file__).parent))
from benchmarks.suites import PlanError, plan  # noqa: E402

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
PYTHON = "3.11"
BACKENDS = ("pytorch", "mxnet", "jax")
PACKAGES = {
    "core": ["numpy"],
    "pytorch": ["numpy", "torch"],
    "mxnet": ["numpy", "mxnet"],
    "jax": ["numpy", "jax", "jaxlib", "flax", "optax"],
    "report": ["numpy", "pandas", "matplotlib", "tabulate"],
}
TEST_TOOLS = ["pytest", "pytest-benchmark"]
BENCH_TOOLS = ["tqdm"]


def constraints(env: str) -> str:
    return f"constraints/{'mxnet' if env == 'mxnet' else 'main'}.txt"


def install(session: nox.Session, env: str, *extra: str) -> None:
    session.install("-c", constraints(env), *PACKAGES[env], *extra)


def data_env() -> dict[str, str]:
    """RNNBENCH_DATA passes through; ../shared/data beside the checkout is the fallback."""
    shared = Path(__file__).resolve().parent.parent / "shared" / "data"
    if "RNNBENCH_DATA" not in os.environ and shared.is_dir():
        return {"RNNBENCH_DATA": str(shared)}
    return {}


@nox.session(python=PYTHON)
@nox.parametrize("env", list(PACKAGES))
def tests(session: nox.Session, env: str) -> None:
    """pytest in one venv per framework (tests of absent frameworks skip)."""
    install(session, env, *TEST_TOOLS, *(BENCH_TOOLS if env in BACKENDS else []))
    session.run("python", "-m", "pytest", *session.posargs, env=data_env())


def bench_backend(session: nox.Session, backend: str) -> None:
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
    for args in runs:
        session.run("python", "-m", "benchmarks", "run", "--backend", backend, *args, env=data_env())


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
    """Tables and plots from every record under results/runs (its own venv: pandas)."""
    install(session, "report")
    session.run("python", "-m", "benchmarks", "report", *session.posargs)


@nox.session(python=False)
def bench(session: nox.Session) -> None:
    """Every backend, one after another with the same threads, then the report."""
    for backend in BACKENDS:
        session.notify(f"bench-{backend}", session.posargs)
    session.notify("report", [])  # the suite arguments are not the report's


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("-c", constraints("core"), "ruff")
    session.run("ruff", "check", ".")
