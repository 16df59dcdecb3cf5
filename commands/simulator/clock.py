"""Simulated time: a manual clock for tests, a scaled one for demos.

Clock time is POSIX seconds (a float). ``scale`` is how many simulated seconds pass per
real second; the server divides simulated waits by it to fill ``Retry-After``.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["DEFAULT_START", "Clock", "ManualClock", "ScaledClock", "iso"]

# A Monday morning: fixed so that timestamps in tests are reproducible.
DEFAULT_START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class Clock(Protocol):
    """What the simulator needs from a clock."""

    @property
    def scale(self) -> float: ...

    def now(self) -> float: ...


def _timestamp(start: datetime | float | None, default: float) -> float:
    if start is None:
        return default
    if isinstance(start, datetime):
        return start.timestamp()
    return float(start)


class ManualClock:
    """Time moves only when a test calls ``advance``."""

    def __init__(self, start: datetime | float | None = None, *, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError("scale must be positive")
        self._now = _timestamp(start, DEFAULT_START.timestamp())
        self._scale = scale
        self._lock = threading.Lock()

    @property
    def scale(self) -> float:
        return self._scale

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` simulated seconds."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        with self._lock:
            self._now += seconds


class ScaledClock:
    """Real time sped up ``scale`` times, starting from now (or from ``start``)."""

    def __init__(self, scale: float = 1.0, start: datetime | float | None = None) -> None:
        if scale <= 0:
            raise ValueError("scale must be positive")
        self._scale = scale
        self._origin = _timestamp(start, time.time())
        self._real_origin = time.monotonic()

    @property
    def scale(self) -> float:
        return self._scale

    def now(self) -> float:
        return self._origin + (time.monotonic() - self._real_origin) * self._scale


def iso(timestamp: float) -> str:
    """Defender's timestamp format: seven fractional digits and a ``Z``."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
