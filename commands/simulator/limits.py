"""Sliding-window call budgets (clock time) and the ``Retry-After`` they imply."""

from __future__ import annotations

from collections import deque

__all__ = ["SlidingWindow", "format_retry_after"]


class SlidingWindow:
    """At most ``limit`` calls in any ``seconds``-long window; only admitted calls count."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self._calls: deque[float] = deque()

    def wait(self, now: float) -> float:
        """Clock seconds until one more call fits; 0 when it fits now."""
        while self._calls and self._calls[0] <= now - self.seconds:
            self._calls.popleft()
        excess = len(self._calls) - self.limit
        if excess < 0:
            return 0.0
        return self._calls[excess] + self.seconds - now

    def add(self, now: float) -> None:
        self._calls.append(now)


def format_retry_after(clock_seconds: float, scale: float) -> str:
    """Real seconds for a ``Retry-After`` header: fractional when needed, never zero."""
    real = max(clock_seconds / scale, 0.001)
    text = f"{real:.3f}".rstrip("0").rstrip(".")
    return text
