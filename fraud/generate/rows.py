"""Transactions under construction: integer-coded columns, before ids and text exist.

Legitimate spending and every fraud scenario produce `Rows`; the core concatenates them,
sorts by time and only then turns indices into ids and timestamps into text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

__all__ = ["CART_MATCH", "CART_MISMATCH", "CART_NONE", "Rows"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

# What the shopping cart of a web purchase looks like.
CART_MATCH, CART_NONE, CART_MISMATCH = 0, 1, 2


@dataclass(slots=True)
class Rows:
    """Equal-length columns; indices point into the `Population` (device -1 = none)."""

    ts_us: I64
    user: I64
    terminal: I64
    amount: F64
    device: I64
    lat: F64
    lon: F64
    channel: I64
    game: I64
    scenario: I64
    cart: I64

    def __len__(self) -> int:
        return len(self.ts_us)

    def take(self, index: npt.NDArray[np.int64] | npt.NDArray[np.bool_]) -> Rows:
        return Rows(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @classmethod
    def concat(cls, parts: Sequence[Rows]) -> Rows:
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts])
                      for f in fields(cls)})

    @classmethod
    def empty(cls) -> Rows:
        none = np.zeros(0, dtype=np.int64)
        nothing = np.zeros(0, dtype=np.float64)
        return cls(ts_us=none, user=none, terminal=none, amount=nothing, device=none,
                   lat=nothing, lon=nothing.copy(), channel=none, game=none, scenario=none,
                   cart=none)
