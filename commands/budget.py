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

from commands.errors import BudgetExhausted

__all__ = [
    "BudgetSnapshot",
    "CallBudget",
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


class _Window:
    """The times of the calls made in the last ``seconds`` (at most ``limit`` of them)."""

    def __init__(self, limit: int, reserve: int, seconds: float) -> None:
        if limit < 1 or not 0 <= reserve < limit:
            raise ValueError(f"a {seconds:g} s window needs 1 <= limit and 0 <= reserve < limit")
        self.limit = limit
        self.reserve = reserve
        self.seconds = seconds
        self.times: deque[float] = deque()

    def prune(self, now: float) -> None:
        while self.times and self.times[0] + self.seconds <= now:
            self.times.popleft()

    def allowed(self, priority: Priority) -> int:
        return self.limit - (self.reserve if priority is Priority.BACKGROUND else 0)

    def wait(self, priority: Priority, now: float) -> float:
        return wait_for_room(self.times, self.allowed(priority), now, self.seconds)

    def pace(self, now: float, calls_per_poll: int) -> float:
        leaving = [t + self.seconds - now for t in self.times]
        leaving.append(self.seconds)
        return paced_interval(leaving, self.allowed(Priority.BACKGROUND), calls_per_poll)

    def usage(self) -> WindowUsage:
        return WindowUsage(self.seconds, self.limit, self.reserve, len(self.times))


class CallBudget:
    """Sliding-window accounting of calls to Defender's non-run endpoints; thread-safe.

    Memory is bounded: a window never holds more call times than its limit.
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
        self._clock = clock
        self._lock = threading.Lock()

    def _now(self) -> float:
        """The clock, with both windows pruned to it; call with the lock held."""
        now = self._clock()
        self._minute.prune(now)
        self._hour.prune(now)
        return now

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
        while True:
            with self._lock:
                now = self._now()
                wait = max(self._minute.wait(priority, now), self._hour.wait(priority, now))
                if wait <= 0.0:
                    self._minute.times.append(now)
                    self._hour.times.append(now)
                    return
                usage = self._usage()
            if waited + wait > max_wait:
                raise BudgetExhausted(wait, f"{priority.value} calls: {usage}")
            logger.debug("waiting %.2f s for Defender's API budget (%s)", wait, usage)
            sleep(wait)
            waited += wait  # counted as asked, so a clock that sleep does not move still ends

    def stretched_interval(self, base_seconds: float, calls_per_poll: int = 1) -> float:
        """The poll interval (never below ``base_seconds``) at which polls of
        ``calls_per_poll`` calls stay within what the windows leave background work."""
        if calls_per_poll <= 0:
            return base_seconds
        with self._lock:
            now = self._now()
            paced = max(
                self._minute.pace(now, calls_per_poll), self._hour.pace(now, calls_per_poll)
            )
        return max(base_seconds, paced)

    def snapshot(self) -> BudgetSnapshot:
        """Calls used and remaining in each window, now."""
        with self._lock:
            self._now()
            return self._usage()

    def _usage(self) -> BudgetSnapshot:
        return BudgetSnapshot(self._minute.usage(), self._hour.usage())
