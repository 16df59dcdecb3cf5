"""CallBudget with a fake clock: windows, the interactive reserve, exact waits, stretching."""

from __future__ import annotations

import contextlib
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commands.budget import CallBudget, Priority, paced_interval, wait_for_room
from commands.errors import BudgetExhausted, DefenderError

BACKGROUND = Priority.BACKGROUND
INTERACTIVE = Priority.INTERACTIVE


class FakeClock:
    """Time moves only when a test (or the budget's sleep) says so; sleeps are recorded."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def budget(clock: FakeClock, minute: int = 5, hour: int = 100, **reserves: int) -> CallBudget:
    reserves.setdefault("interactive_reserve_minute", 0)
    reserves.setdefault("interactive_reserve_hour", 0)
    return CallBudget(minute, hour, clock=clock, **reserves)


def spend(b: CallBudget, clock: FakeClock, count: int, priority: Priority = BACKGROUND) -> None:
    for _ in range(count):
        b.acquire(priority, max_wait=0, sleep=clock.sleep)


# --- pure arithmetic ---------------------------------------------------------------------------


def test_wait_for_room_is_when_the_call_that_must_leave_leaves() -> None:
    assert wait_for_room([], 1, now=5.0, seconds=60) == 0.0
    assert wait_for_room([0.0, 10.0], 3, now=30.0, seconds=60) == 0.0
    assert wait_for_room([0.0, 10.0, 20.0], 3, now=30.0, seconds=60) == 30.0
    assert wait_for_room([0.0, 10.0, 20.0], 2, now=30.0, seconds=60) == 40.0


def test_paced_interval_spreads_the_room_until_calls_leave() -> None:
    # Nothing in the window: the window's own length over what fits in it.
    assert paced_interval([3600.0], allowed=1300, calls_per_poll=1) == 3600 / 1301
    # No room: wait for the oldest call to leave; then one poll per call that leaves.
    assert paced_interval([40.0, 50.0, 60.0], allowed=2, calls_per_poll=1) == 40.0
    # Room for 3 calls, so one poll of 2, before the call in the window leaves in 54 s.
    assert paced_interval([54.0, 60.0], allowed=4, calls_per_poll=2) == 27.0
    # A whole window holds 2 polls of 2: spread over it.
    assert paced_interval([5.0, 60.0], allowed=4, calls_per_poll=2) == 20.0


# --- windows -----------------------------------------------------------------------------------


def test_the_minute_fills_and_the_exhausted_call_says_when() -> None:
    clock = FakeClock()
    b = budget(clock, minute=5)
    spend(b, clock, 5)
    clock.now = 12.0
    with pytest.raises(BudgetExhausted) as caught:
        b.acquire(BACKGROUND, max_wait=47.9, sleep=clock.sleep)
    assert isinstance(caught.value, DefenderError)
    assert caught.value.retry_after == 48.0  # the calls made at 0 leave at 60
    assert "background calls: 5/5 calls this minute" in str(caught.value)
    assert clock.sleeps == []  # no wait in vain


def test_a_call_waits_exactly_until_the_oldest_leaves() -> None:
    clock = FakeClock()
    b = budget(clock, minute=3)
    for at in (0.0, 10.0, 20.0):
        clock.now = at
        spend(b, clock, 1)
    clock.now = 30.0
    b.acquire(BACKGROUND, max_wait=30, sleep=clock.sleep)
    assert clock.sleeps == [30.0]
    snapshot = b.snapshot()
    assert (snapshot.minute.used, snapshot.hour.used) == (3, 4)


def test_the_hour_limits_when_the_minutes_do_not() -> None:
    clock = FakeClock()
    b = budget(clock, minute=10, hour=12)
    spend(b, clock, 10)
    clock.now = 60.0
    spend(b, clock, 2)
    with pytest.raises(BudgetExhausted) as caught:
        b.acquire(BACKGROUND, max_wait=3000, sleep=clock.sleep)
    assert caught.value.retry_after == 3540.0
    b.acquire(BACKGROUND, max_wait=3540, sleep=clock.sleep)
    assert (clock.sleeps, clock.now) == ([3540.0], 3600.0)


def test_waits_add_up_to_max_wait_even_if_sleep_does_not_move_the_clock() -> None:
    clock = FakeClock()
    b = budget(clock, minute=1)
    spend(b, clock, 1)
    asked: list[float] = []
    with pytest.raises(BudgetExhausted):
        b.acquire(BACKGROUND, max_wait=150, sleep=asked.append)
    assert asked == [60.0, 60.0]


# --- the interactive reserve -------------------------------------------------------------------


def test_background_leaves_the_reserve_to_interactive_calls() -> None:
    clock = FakeClock()
    b = budget(clock, minute=5, interactive_reserve_minute=2)
    spend(b, clock, 3, BACKGROUND)
    with pytest.raises(BudgetExhausted) as caught:
        b.acquire(BACKGROUND, max_wait=0, sleep=clock.sleep)
    assert caught.value.retry_after == 60.0
    spend(b, clock, 2, INTERACTIVE)
    with pytest.raises(BudgetExhausted):
        b.acquire(INTERACTIVE, max_wait=0, sleep=clock.sleep)
    assert clock.sleeps == []


def test_background_waits_until_the_reserve_would_stay_free() -> None:
    clock = FakeClock()
    b = budget(clock, minute=5, interactive_reserve_minute=2)
    spend(b, clock, 3, BACKGROUND)  # at 0
    clock.now = 30.0
    spend(b, clock, 2, INTERACTIVE)
    clock.now = 40.0
    b.acquire(BACKGROUND, max_wait=60, sleep=clock.sleep)  # the calls made at 0 leave at 60
    # Then 3 calls are in the window (2 of them interactive): the next waits for 90.
    b.acquire(BACKGROUND, max_wait=60, sleep=clock.sleep)
    assert clock.sleeps == [20.0, 30.0]


def test_the_hour_reserve_too() -> None:
    clock = FakeClock()
    b = budget(clock, minute=50, hour=20, interactive_reserve_hour=5)
    spend(b, clock, 15, BACKGROUND)
    with pytest.raises(BudgetExhausted) as caught:
        b.acquire(BACKGROUND, max_wait=0, sleep=clock.sleep)
    assert caught.value.retry_after == 3600.0
    spend(b, clock, 5, INTERACTIVE)
    snapshot = b.snapshot()
    assert (snapshot.hour.used, snapshot.hour.remaining, snapshot.hour.background_remaining) == (
        20,
        0,
        0,
    )


@pytest.mark.parametrize(
    ("minute", "hour", "reserve_minute", "reserve_hour"),
    [(0, 10, 0, 0), (5, 10, 5, 0), (5, 10, 0, 10), (5, 10, -1, 0)],
)
def test_limits_that_leave_background_nothing_are_refused(
    minute: int, hour: int, reserve_minute: int, reserve_hour: int
) -> None:
    with pytest.raises(ValueError, match="reserve < limit"):
        CallBudget(
            minute,
            hour,
            interactive_reserve_minute=reserve_minute,
            interactive_reserve_hour=reserve_hour,
        )


# --- stretching the poll interval --------------------------------------------------------------


def test_stretch_is_the_base_while_the_hour_has_room() -> None:
    clock = FakeClock()
    b = CallBudget(clock=clock)
    assert b.stretched_interval(10.0) == 10.0
    assert b.stretched_interval(10.0, calls_per_poll=0) == 10.0
    # Polling every second for an hour would need 3,600 calls: background has 1,300.
    assert b.stretched_interval(1.0) == 3600 / 1301


def test_stretch_when_the_hour_runs_short() -> None:
    clock = FakeClock()
    b = CallBudget(2000, 1500, interactive_reserve_minute=0, clock=clock)
    spend(b, clock, 1290)  # at 0; background may make 1,300 an hour
    clock.now = 600.0
    # Room for 10 more polls before those calls leave at 3,600: 3,000 s over 11 intervals.
    assert b.stretched_interval(10.0) == 3000 / 11
    assert b.stretched_interval(10.0, calls_per_poll=2) == 3000 / 6
    assert b.stretched_interval(400.0) == 400.0
    spend(b, clock, 10)
    assert b.stretched_interval(10.0) == 3000.0  # none left: until the oldest leaves


def test_interactive_calls_stretch_background_polling() -> None:
    clock = FakeClock()
    b = CallBudget(2000, 1500, interactive_reserve_minute=0, clock=clock)
    before = b.stretched_interval(5.0)
    spend(b, clock, 1200, INTERACTIVE)
    assert before == 5.0
    assert b.stretched_interval(5.0) == 3600 / 101


@settings(max_examples=60, deadline=None)
@given(
    burst=st.lists(st.integers(0, 3599), max_size=35),
    base=st.sampled_from([0.5, 2.0, 30.0]),
    calls_per_poll=st.integers(1, 3),
)
def test_polling_at_the_stretched_interval_never_waits(
    burst: list[int], base: float, calls_per_poll: int
) -> None:
    clock = FakeClock()
    b = CallBudget(10, 40, interactive_reserve_minute=3, interactive_reserve_hour=5, clock=clock)
    for at in sorted(burst):  # earlier background traffic, as much as the limits let through
        clock.now = float(at)
        with contextlib.suppress(BudgetExhausted):
            b.acquire(BACKGROUND, max_wait=0, sleep=clock.sleep)
    clock.now = 3600.0
    for _ in range(40):
        clock.now += b.stretched_interval(base, calls_per_poll)
        spend(b, clock, calls_per_poll)  # max_wait=0: any wait would raise
    assert clock.sleeps == []


# --- snapshot and threads ----------------------------------------------------------------------


def test_snapshot_for_logs() -> None:
    clock = FakeClock()
    b = CallBudget(clock=clock)
    spend(b, clock, 30)
    clock.now = 61.0
    spend(b, clock, 4, INTERACTIVE)
    snapshot = b.snapshot()
    assert (snapshot.minute.used, snapshot.minute.remaining) == (4, 96)
    assert (snapshot.minute.background_remaining, snapshot.hour.background_remaining) == (76, 1266)
    assert str(snapshot) == "4/100 calls this minute, 34/1500 this hour"


def test_threads_never_overspend() -> None:
    clock = FakeClock()
    b = budget(clock, minute=50, hour=1000)
    taken: list[int] = []
    refused: list[int] = []
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(20):
            try:
                b.acquire(BACKGROUND, max_wait=0)
            except BudgetExhausted:
                refused.append(1)
            else:
                taken.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert (len(taken), len(refused)) == (50, 110)
    assert b.snapshot().minute.used == 50
