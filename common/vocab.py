"""Vocabulary: token <-> integer id, built the way d2l builds it.

Default order (`order="frequency"`, d2l 0.17): `<unk>` is id 0, the reserved tokens
follow, then the tokens by falling frequency, ties in first-seen order (Counter +
stable sort). `order="sorted"` is d2l 2.0's: the same set of tokens, `<unk>` and the
reserved ones included, sorted as strings (so for characters ' ' comes before
'<unk>'). Tokens seen fewer than `min_freq` times are left out and map to `<unk>`.
"""

from __future__ import annotations

import collections
from typing import Iterable, Sequence

UNK = "<unk>"
ORDERS = ("frequency", "sorted")


def _flatten(tokens: Sequence) -> list:
    if len(tokens) and isinstance(tokens[0], (list, tuple)):
        return [token for line in tokens for token in line]
    return list(tokens)


class Vocab:
    """Token <-> id mapping. `vocab[token]` or `vocab[list]`; unknown tokens -> `unk`."""

    def __init__(
        self,
        tokens: Sequence = (),
        min_freq: int = 0,
        reserved_tokens: Iterable[str] = (),
        order: str = "frequency",
        unk: bool = True,
    ) -> None:
        if order not in ORDERS:
            raise ValueError(f"order={order!r}; choose one of {ORDERS}")
        counter = collections.Counter(_flatten(tokens))
        # sorted() is stable and Counter keeps first-seen order: ties stay first-seen.
        self.token_freqs: list[tuple[str, int]] = sorted(counter.items(), key=lambda item: item[1], reverse=True)
        kept = [token for token, freq in self.token_freqs if freq >= min_freq]
        first = [UNK] if unk else []  # unk=False: no `<unk>` (d2l-zh's `list(set(chars))`)
        if order == "sorted":
            idx_to_token = sorted(set([*first, *reserved_tokens, *kept]))
        else:
            idx_to_token = list(dict.fromkeys([*first, *reserved_tokens, *kept]))
        self.idx_to_token: list[str] = idx_to_token
        self.token_to_idx: dict[str, int] = {t: i for i, t in enumerate(idx_to_token)}
        self.unk: int | None = self.token_to_idx.get(UNK) if unk else None

    def __len__(self) -> int:
        return len(self.idx_to_token)

    def __getitem__(self, tokens):
        if isinstance(tokens, (list, tuple)):
            return [self.token_to_idx.get(token, self.unk) for token in tokens]
        return self.token_to_idx.get(tokens, self.unk)

    def to_tokens(self, indices):
        """Token(s) for an id or a sequence of ids (numpy integers accepted)."""
        if isinstance(indices, (list, tuple, range)) or getattr(indices, "ndim", 0) > 0:
            return [self.idx_to_token[int(i)] for i in indices]
        return self.idx_to_token[int(indices)]

    def __repr__(self) -> str:
        head = ", ".join(repr(t) for t in self.idx_to_token[:8])
        return f"Vocab({len(self)} tokens: {head}{', ...' if len(self) > 8 else ''})"
