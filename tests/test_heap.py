"""backends.heap: freed buffers stay in the process, so re-allocating them costs no page faults."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PROBE = textwrap.dedent("""
    import resource, sys
    sys.path.insert(0, {root!r})

    def faults_per_buffer():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(20):  # three 12 MiB buffers (malloc'd, zeroed), then all freed
            buffers = [bytearray(12 << 20) for _ in range(3)]
            del buffers
        return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20

    faults_per_buffer()
    default = faults_per_buffer()
    from backends.heap import keep_freed_memory
    settings = keep_freed_memory()
    faults_per_buffer()
    print(default, faults_per_buffer(), settings is not None)
""")


def probe(**env: str) -> list[str]:
    """Faults per round before and after `keep_freed_memory`, and whether it applied."""
    clean = {k: v for k, v in os.environ.items() if k != "RNNBENCH_HEAP"}
    code = PROBE.format(root=str(Path(__file__).resolve().parents[1]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**clean, **env})
    return out.stdout.split()


def test_keeping_freed_memory_removes_the_page_faults_of_reallocation():
    default, kept, applied = probe()
    if applied != "True":
        pytest.skip("not glibc: the heap setting does not apply")
    assert float(default) > 1000  # 36 MiB of 4 KiB pages, faulted in again every time
    assert float(kept) < 50


def test_settings_are_recorded_once_applied():
    """In a fresh process: nothing recorded before, glibc's two thresholds after, once."""
    code = ("import json, sys; sys.path.insert(0, {root!r}); from backends import heap\n"
            "print(json.dumps([heap.heap_settings(), heap.keep_freed_memory(), heap.heap_settings(),"
            " heap.keep_freed_memory()]))").format(root=str(Path(__file__).resolve().parents[1]))
    clean = {k: v for k, v in os.environ.items() if k != "RNNBENCH_HEAP"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=clean)
    before, applied, recorded, again = json.loads(out.stdout)
    if applied is None:
        pytest.skip("not glibc: the heap setting does not apply")
    assert before is None
    assert applied == recorded == again == {"mmap_threshold": 32 << 20, "trim_threshold": 1 << 30}


def test_the_environment_can_keep_glibcs_defaults():
    default, kept, applied = probe(RNNBENCH_HEAP="default")
    assert applied == "False"
    assert float(kept) > 1000
