"""What a result was measured on: machine, OS, Python, numpy, git commit, and the
machine fingerprint that tells two cloud VMs apart when their hostnames and CPU labels
are the same (campaigns from different fingerprints are never pooled or compared).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import platform
import subprocess
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_state(repo: Path = REPO) -> dict:
    """{"commit": sha or None, "dirty": whether tracked files differ from it}."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": out.stdout.strip(), "dirty": bool(dirty)}


def git_commit(repo: Path = REPO) -> str | None:
    """The commit, with `-dirty` appended when tracked files were changed."""
    state = git_state(repo)
    if state["commit"] is None:
        return None
    return state["commit"] + ("-dirty" if state["dirty"] else "")


# Instruction-set flags that change what a matmul or an RNN kernel can do.
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve", "sve2")


def _cpu_facts() -> dict:
    """CPU identity from py-cpuinfo (model, family/model/stepping, ISA flags, caches)."""
    try:
        import cpuinfo

        info = cpuinfo.get_cpu_info()
    except Exception:  # noqa: BLE001 - a fingerprint without details still tells this machine apart less well
        return {"brand": cpu_model(), "arch": platform.machine()}
    flags = set(info.get("flags") or [])
    return {
        "brand": info.get("brand_raw") or cpu_model(), "arch": info.get("arch_string_raw") or platform.machine(),
        "vendor": info.get("vendor_id_raw"), "family": info.get("family"), "model": info.get("model"),
        "stepping": info.get("stepping"), "isa": sorted(flags.intersection(ISA_FLAGS)),
        "l2_cache": info.get("l2_cache_size"), "l3_cache": info.get("l3_cache_size"),
    }


def _memory_gib() -> int | None:
    """Installed memory, rounded to GiB (psutil; the same figure from sysconf without it,
    so every venv fingerprints the machine alike)."""
    try:
        import psutil

        total = psutil.virtual_memory().total
    except ImportError:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return None
    return round(total / 2**30)


@functools.lru_cache(maxsize=None)
def _fingerprint() -> dict:
    facts = {**_cpu_facts(), "cores": os.cpu_count(), "memory_gib": _memory_gib(), "os_machine": platform.machine()}
    digest = hashlib.sha1(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:10]
    return {"id": digest, **facts, "hostname": platform.node()}


def machine_fingerprint() -> dict:
    """What tells machines apart: CPU identity, ISA, caches, cores, memory; `id` hashes
    them. The hostname is only a label (cloud VMs share it), and nothing measured is in
    the id: the campaign's matmul peak is compared separately, since it drifts. Worked
    out once per process (py-cpuinfo takes about a second), so the harness can do it
    before training and a record is written quickly after a signal."""
    return copy.deepcopy(_fingerprint())


def machine_environment() -> dict:
    """Framework-free facts; backends add their own under `framework`."""
    return {
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "hostname": platform.node(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "git_commit": git_commit(),
        "git": git_state(),
        "fingerprint": machine_fingerprint(),
    }
