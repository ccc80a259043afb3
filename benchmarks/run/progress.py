"""Progress for long runs: a tqdm bar on a terminal, nothing when output is piped."""

from __future__ import annotations

import sys


class Progress:
    """Shows epoch, perplexity and tokens/sec; silent when stderr is not a terminal."""

    def __init__(self, total: int, label: str, enabled: bool | None = None):
        enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self.bar = tqdm(total=total, desc=label, unit="epoch", dynamic_ncols=True, file=sys.stderr)

    def update(self, row: dict) -> None:
        if self.bar is None:
            return
        post = {"ppl": f"{row['train_ppl']:.3f}", "tok/s": f"{row['tok_s']:,.0f}"}
        if "val_ppl" in row:
            post["val"] = f"{row['val_ppl']:.3f}"
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
