"""A CPU burner in random bursts (`campaign --noise F`): one core kept busy a share F
of the time, the way a browser tab, an editor's indexer or a build takes a core now and
then on a user's machine. It shows what a busy machine costs a campaign: which rounds
are flagged as disturbed, how far the verdict moves, how much precision is lost.

Run as its own process (`python -m benchmarks.campaign.noise F`), so it competes with the
contenders as any other program would; it stops when its parent (the campaign driver)
goes away, or on SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BURST_S = (0.2, 1.5)  # each burst's length is drawn uniformly from this range


def burn(duty: float, seed: int | None = None, parent: int | None = None) -> None:
    """Alternate busy bursts and idle gaps so that the busy share is `duty`, until the
    parent process is gone."""
    rng = random.Random(seed)
    while parent is None or os.getppid() == parent:
        busy = rng.uniform(*BURST_S)
        end = time.perf_counter() + busy
        while time.perf_counter() < end:
            pass
        time.sleep(busy * (1 - duty) / duty)


@contextlib.contextmanager
def burner(duty: float) -> Iterator[subprocess.Popen | None]:
    """The burner running for the duration of the block (nothing when duty is 0)."""
    if not duty:
        yield None
        return
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.campaign.noise", str(duty), str(os.getpid())], cwd=REPO,
                            stdin=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    burn(float(sys.argv[1]), parent=int(sys.argv[2]) if len(sys.argv) > 2 else None)
