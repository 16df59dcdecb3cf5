"""The run-rate window: a slot it frees between polls is used then, not at the next poll."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.records import RequestState
from bot.tracker import Tracker

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SCALE = 100.0  # clock seconds per real second


class Window:
    """The store as the submission pass sees it: ten runs submitted, one 50 s ago."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.submitted = [START - timedelta(seconds=50)] + [START] * 9
        self.approved_reads = 0

    def count_submitted_since(self, since: datetime) -> int:
        return len(self.submitted_since(since))

    def submitted_since(self, since: datetime) -> list[datetime]:
        return [t for t in self.submitted if t >= since]

    def count_active(self) -> int:
        return 0

    def request_ids(self, states: list[RequestState]) -> list[str]:
        return []  # no run waits: only the counts matter here

    def in_states(self, states: list[RequestState], **_: Any) -> list[Any]:
        if states == [RequestState.APPROVED]:
            self.approved_reads += 1
        return []


def tracker(window: Window, clock: Any, runs_per_minute: int = 10) -> Tracker:
    return Tracker(
        window,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        poll_seconds=10.0,
        clock=clock,
        runs_per_minute=runs_per_minute,
        time_scale=SCALE,
    )


def scaled_clock() -> Any:
    began = time.monotonic()
    return lambda: START + timedelta(seconds=(time.monotonic() - began) * SCALE)


def test_a_full_window_says_when_it_opens_in_real_seconds() -> None:
    clock = lambda: START  # noqa: E731
    loop = tracker(Window(clock), clock)
    loop._submit_due()
    assert loop._rate_opens_at == START + timedelta(seconds=10)
    assert loop._rate_opens_in() == pytest.approx(10 / SCALE)


def test_the_wait_for_the_next_poll_submits_when_the_window_opens() -> None:
    clock = scaled_clock()
    window = Window(clock)
    loop = tracker(window, clock)
    loop._submit_due()  # full: nothing read beyond the counts
    assert window.approved_reads == 0
    began = time.monotonic()
    loop._rest(0.2)
    assert time.monotonic() - began >= 0.2  # the poll still waits its interval
    assert window.approved_reads == 1  # once, when the oldest run left the window
    assert loop._rate_opens_at is None


def test_no_wait_ends_early_when_the_limit_is_zero() -> None:
    clock = scaled_clock()
    window = Window(clock)
    loop = tracker(window, clock, runs_per_minute=0)
    loop._submit_due()
    assert loop._rate_opens_at is None
    loop._rest(0.05)
    assert window.approved_reads == 0
