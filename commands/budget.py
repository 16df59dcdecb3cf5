"""Pacing for Defender's non-run endpoints: 100 calls per minute and 1,500 per hour.

Defender counts these limits per application and tenant, and answers 429 once they are
spent, which is exactly when an analyst is waiting. So every call to a non-run endpoint
takes one call from both sliding windows *before* it is sent. Background work (polls,
result links, reconciliation) may only use what lies beyond a reserve, so an interactive
lookup always finds room. A caller with no room waits exactly until enough of the oldest
calls leave the window, or gives up with ``BudgetExhausted`` and its ``retry_after``.

How Defender's own windows slide is undocumented: pacing keeps us under the limits, and the
client still honours a 429's ``Retry-After`` should Defender count differently.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from commands.errors import BudgetExhausted

__all__ = [
    "BudgetSnapshot",
    "CallBudget",
    "CallLedger",
    "MemoryLedger",
    "Priority",
    "WindowUsage",
    "paced_interval",
    "wait_for_room",
]

logger = logging.getLogger(__name__)

MINUTE = 60.0
HOUR = 3600.0


class Priority(enum.Enum):
    """Who waits on the call: a person (INTERACTIVE) or the bot's own loops (BACKGROUND)."""

    INTERACTIVE = "interactive"
    BACKGROUND = "background"


def wait_for_room(times: Sequence[float], allowed: int, now: float, seconds: float) -> float:
    """Seconds until fewer than ``allowed`` of ``times`` (oldest first, all still in the
    ``seconds``-long window at ``now``) remain in it: 0 when one more call fits now."""
    excess = len(times) - allowed
    if excess < 0:
        return 0.0
    return max(0.0, times[excess] + seconds - now)


def paced_interval(leaving_in: Sequence[float], allowed: int, calls_per_poll: int) -> float:
    """The shortest interval between polls of ``calls_per_poll`` calls (the first one an
    interval from now) that never needs more than ``allowed`` calls in the window.

    ``leaving_in``: the seconds until each call now in the window leaves it, soonest first,
    then the window's length (when the first poll's own calls begin to leave). Until the
    entry at position ``i``, ``i`` calls have left, so ``allowed - used + i`` calls fit:
    ``m`` polls. Poll ``m + 1`` must not come sooner, so the interval is at least
    ``leaving_in[i] / (m + 1)``.
    """
    used = len(leaving_in) - 1
    interval = 0.0
    for i, when in enumerate(leaving_in):
        polls = max(0, allowed - used + i) // calls_per_poll
        interval = max(interval, when / (polls + 1))
    return interval


@dataclass(frozen=True)
class WindowUsage:
    """One window's calls: how many were made, and how many more fit."""

    seconds: float
    limit: int
    reserve: int  # kept for interactive calls
    used: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    @property
    def background_remaining(self) -> int:
        return max(0, self.limit - self.reserve - self.used)


@dataclass(frozen=True)
class BudgetSnapshot:
    """Both windows at one instant, for logs and metrics."""

    minute: WindowUsage
    hour: WindowUsage

    def __str__(self) -> str:
        return (
            f"{self.minute.used}/{self.minute.limit} calls this minute,"
            f" {self.hour.used}/{self.hour.limit} this hour"
        )


class CallLedger(Protocol):
    """Where call times are kept: in this process, or in a database the fleet shares."""

    def now(self) -> float:
        """The ledger's clock, in seconds."""
        ...

    def take(self, now: float, windows: Sequence[tuple[float, int]]) -> float:
        """Atomically: when each ``(seconds, allowed)`` window holds fewer than ``allowed``
        calls, record one at ``now`` and return 0; else record nothing and return the
        seconds until one more call fits."""
        ...

    def recent(self, now: float, seconds: float) -> list[float]:
        """The times of the calls in the last ``seconds``, oldest first."""
        ...


class MemoryLedger:
    """Call times in this process: exact for one process (memory bounded by the limits)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._clock()

    def take(self, now: float, windows: Sequence[tuple[float, int]]) -> float:
        with self._lock:
            self._prune(now, max(seconds for seconds, _ in windows))
            wait = max(
                wait_for_room(self._within(now, seconds), allowed, now, seconds)
                for seconds, allowed in windows
            )
            if wait <= 0.0:
                self._times.append(now)
            return wait

    def recent(self, now: float, seconds: float) -> list[float]:
        with self._lock:
            return self._within(now, seconds)

    def _within(self, now: float, seconds: float) -> list[float]:
        return [t for t in self._times if t + seconds > now]

    def _prune(self, now: float, seconds: float) -> None:
        while self._times and self._times[0] + seconds <= now:
            self._times.popleft()


@dataclass(frozen=True)
class _Window:
    """One of Defender's windows: its length, its limit and the interactive reserve."""

    limit: int
    reserve: int
    seconds: float

    def check(self) -> None:
        if self.limit < 1 or not 0 <= self.reserve < self.limit:
            raise ValueError(
                f"a {self.seconds:g} s window needs 1 <= limit and 0 <= reserve < limit"
            )

    def allowed(self, priority: Priority) -> int:
        return self.limit - (self.reserve if priority is Priority.BACKGROUND else 0)

    def pace(self, times: Sequence[float], now: float, calls_per_poll: int) -> float:
        leaving = [t + self.seconds - now for t in times]
        leaving.append(self.seconds)
        return paced_interval(leaving, self.allowed(Priority.BACKGROUND), calls_per_poll)

    def usage(self, times: Sequence[float]) -> WindowUsage:
        return WindowUsage(self.seconds, self.limit, self.reserve, len(times))


class CallBudget:
    """Sliding-window accounting of calls to Defender's non-run endpoints; thread-safe.

    The call times live in a ``CallLedger``: this process's memory by default, or, once
    ``share`` is called, a ledger every replica of the bot writes to.
    """

    def __init__(
        self,
        per_minute: int = 100,
        per_hour: int = 1500,
        *,
        interactive_reserve_minute: int = 20,
        interactive_reserve_hour: int = 200,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._minute = _Window(per_minute, interactive_reserve_minute, MINUTE)
        self._hour = _Window(per_hour, interactive_reserve_hour, HOUR)
        self._minute.check()
        self._hour.check()
        self._ledger: CallLedger = MemoryLedger(clock)

    def share(self, ledger: CallLedger) -> None:
        """Keep the call times in ``ledger`` from now on (calls made so far stay uncounted
        there: call this before the first call)."""
        self._ledger = ledger

    def acquire(
        self,
        priority: Priority,
        *,
        max_wait: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Take one call from both windows, waiting (through ``sleep``) at most ``max_wait``
        seconds in all for room; else raise ``BudgetExhausted`` without waiting in vain."""
        waited = 0.0
        windows = [(w.seconds, w.allowed(priority)) for w in (self._minute, self._hour)]
        while True:
            ledger = self._ledger
            wait = ledger.take(ledger.now(), windows)
            if wait <= 0.0:
                return
            if waited + wait > max_wait:
                raise BudgetExhausted(wait, f"{priority.value} calls: {self.snapshot()}")
            logger.debug("waiting %.2f s for Defender's API budget (%s)", wait, self.snapshot())
            sleep(wait)
            waited += wait  # counted as asked, so a clock that sleep does not move still ends

    def stretched_interval(self, base_seconds: float, calls_per_poll: int = 1) -> float:
        """The poll interval (never below ``base_seconds``) at which polls of
        ``calls_per_poll`` calls stay within what the windows leave background work."""
        if calls_per_poll <= 0:
            return base_seconds
        now, minute, hour = self._times()
        paced = max(
            self._minute.pace(minute, now, calls_per_poll),
            self._hour.pace(hour, now, calls_per_poll),
        )
        return max(base_seconds, paced)

    def snapshot(self) -> BudgetSnapshot:
        """Calls used and remaining in each window, now."""
        _, minute, hour = self._times()
        return BudgetSnapshot(self._minute.usage(minute), self._hour.usage(hour))

    def _times(self) -> tuple[float, list[float], list[float]]:
        ledger = self._ledger
        now = ledger.now()
        hour = ledger.recent(now, HOUR)
        return now, [t for t in hour if t + MINUTE > now], hour
