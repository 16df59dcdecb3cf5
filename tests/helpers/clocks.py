"""A wall clock that moves only when a test moves it (epoch seconds, as leases count)."""

from __future__ import annotations


class Wall:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
