"""Framework versions as contenders (`nox -s bench -- --versions jax=0.10.1,0.10.2`).

Each version gets a venv of its own and runs as its own contender of one campaign, so an
upgrade is an A/B with paired rounds on the same machine. This module is the part that
needs no framework and no pip: reading `--versions`, naming a version's contender and
venv, and writing the constraints a version's venv is built with (the project's pins,
less the framework's own). The noxfile builds the venvs; the campaign driver reads
`--python "jax 0.10.1=PATH"`.
"""

from __future__ import annotations

import json
import re
import subprocess

from common.errors import SpecError

# backend -> the packages that are its framework, pinned together to one version
FRAMEWORK_PACKAGES = {"pytorch": ("torch",), "mxnet": ("mxnet",), "jax": ("jax", "jaxlib")}
# what a user may call a framework in --versions
ALIASES = {"pytorch": "pytorch", "torch": "pytorch", "mxnet": "mxnet", "jax": "jax"}
VERSION = re.compile(r"^[0-9][0-9A-Za-z.+!-]*$")


def parse_versions(text: str) -> dict[str, list[str]]:
    """`jax=0.10.1,0.10.2 torch=2.13.0` (one or more `NAME=V1,V2` items, separated by
    spaces or semicolons) -> {backend: [versions]}. Each mistake is one line naming the fix."""
    out: dict[str, list[str]] = {}
    for item in re.split(r"[;\s]+", text.strip()):
        name, sep, listed = item.partition("=")
        if not sep or not name or not listed:
            raise SpecError(f"--versions {item!r} is not FRAMEWORK=V1,V2 (e.g. --versions jax=0.10.1,0.10.2)")
        backend = ALIASES.get(name.lower())
        if backend is None:
            raise SpecError(f"--versions names {name!r}, which is not a framework here; choose from "
                            f"{', '.join(sorted(ALIASES))}")
        versions = [v.strip() for v in listed.split(",")]
        bad = [v for v in versions if not VERSION.match(v)]
        if bad:
            raise SpecError(f"--versions {name}={listed}: {bad[0]!r} is not a version (e.g. 0.10.1)")
        seen = out.setdefault(backend, [])
        for v in versions:
            if v in seen:
                raise SpecError(f"--versions names {name} {v} twice: list each version once")
            seen.append(v)
    return out


def contender_key(backend: str, version: str) -> str:
    """The `--python` key (and the contender's first word) of one version: `jax 0.10.1`."""
    return f"{backend} {version}" if version else backend


def split_key(key: str) -> tuple[str, str]:
    """`jax 0.10.1` -> ("jax", "0.10.1"); `jax` -> ("jax", "")."""
    backend, _, version = key.strip().partition(" ")
    return backend, version.strip()


def venv_name(backend: str, version: str) -> str:
    return f"bench-{backend}-{version}"


def requirements(backend: str, version: str) -> list[str]:
    """The framework's packages pinned to `version` (jax and jaxlib move together)."""
    return [f"{package}=={version}" for package in FRAMEWORK_PACKAGES[backend]]


def constraints_for(backend: str, pins: str) -> str:
    """The project's constraints file text less the lines pinning this framework's own
    packages, so that another version of it can be installed beside the rest."""
    own = set(FRAMEWORK_PACKAGES[backend])
    kept = [line for line in pins.splitlines()
            if re.split(r"[=<>!~\[ ;]", line.strip(), maxsplit=1)[0].lower() not in own]
    return "\n".join(kept) + "\n"


def cuda_packages(report: dict) -> list[str]:
    """From `pip install --dry-run --report`: the CUDA packages an install would pull
    (a torch wheel other than the CPU one here brings several GB of them)."""
    names = [item.get("metadata", {}).get("name", "") for item in report.get("install", [])]
    return sorted(n for n in names if n.lower().startswith(("nvidia-", "cuda-")) or n.lower() == "triton")


def version_problem(install: list[str], backend: str, version: str) -> str:
    """Why this install cannot be a contender here, from pip's dry run ("" when it can);
    a version the package index does not have is a SpecError."""
    dry = subprocess.run([*install[:5], "--dry-run", "--report", "-", *install[5:]], capture_output=True,
                         text=True)
    if dry.returncode != 0:
        if "No matching distribution" in dry.stderr or "from versions:" in dry.stderr:
            raise SpecError(f"{backend} {version} is not on the package index "
                            f"({dry.stderr.strip().splitlines()[-1][:200]}); name a version that exists")
        said = subprocess.run([*install[:4], "--dry-run", *install[5:]], capture_output=True, text=True)
        cause = [line.strip() for line in (said.stdout + said.stderr).splitlines() if " depends on " in line]
        return ("pip cannot install it beside the project's other pins ("
                + (cause[-1] if cause else dry.stderr.strip().splitlines()[-1])[:200] + ")")
    try:
        cuda = cuda_packages(json.loads(dry.stdout))
    except ValueError:
        cuda = []
    if cuda:
        return (f"it would pull {len(cuda)} CUDA packages ({', '.join(cuda[:3])}, ...) of several GB: on this "
                "index only the pinned version is a CPU wheel")
    return ""
