"""Defender's API budget shared by replicas through the database: what one replica spends,
the others cannot, and the interactive reserve holds for the fleet."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.shared_budget import StoreLedger
from bot.store import Store
from commands.budget import CallBudget, Priority
from commands.errors import BudgetExhausted
from tests.helpers.clocks import Wall

BACKGROUND = Priority.BACKGROUND
INTERACTIVE = Priority.INTERACTIVE


@pytest.fixture
def replicas(database_url: str) -> Iterator[list[Store]]:
    stores = [Store(database_url) for _ in range(3)]
    yield stores
    for store in stores:
        store.close()


def fleet(stores: list[Store], wall: Wall, minute: int = 5, hour: int = 12) -> list[CallBudget]:
    budgets = []
    for store in stores:
        budget = CallBudget(minute, hour, interactive_reserve_minute=1, interactive_reserve_hour=2)
        budget.share(StoreLedger(store, wall))
        budgets.append(budget)
    return budgets


def test_what_one_replica_spends_the_others_cannot(replicas: list[Store]) -> None:
    wall = Wall()
    a, b, c = fleet(replicas, wall)
    a.acquire(BACKGROUND, max_wait=0)
    a.acquire(BACKGROUND, max_wait=0)
    wall.now += 10
    b.acquire(BACKGROUND, max_wait=0)
    c.acquire(BACKGROUND, max_wait=0)
    # Four of five this minute: background work leaves the last one to a person.
    with pytest.raises(BudgetExhausted) as refused:
        c.acquire(BACKGROUND, max_wait=0)
    assert refused.value.retry_after == pytest.approx(50.0)  # when a's first call leaves
    b.acquire(INTERACTIVE, max_wait=0)
    with pytest.raises(BudgetExhausted):
        a.acquire(INTERACTIVE, max_wait=0)
    snapshot = c.snapshot()
    assert (snapshot.minute.used, snapshot.hour.used) == (5, 5)


def test_the_hour_holds_across_replicas_and_old_calls_leave(replicas: list[Store]) -> None:
    wall = Wall()
    budgets = fleet(replicas, wall)
    for _minute in range(2):
        for budget in budgets[:2]:
            for _ in range(2):
                budget.acquire(BACKGROUND, max_wait=0)
        wall.now += 61
    budgets[2].acquire(BACKGROUND, max_wait=0)
    budgets[2].acquire(BACKGROUND, max_wait=0)
    # 10 of 12 this hour, 2 kept for people: background waits for the hour to move on.
    with pytest.raises(BudgetExhausted) as refused:
        budgets[0].acquire(BACKGROUND, max_wait=0)
    assert refused.value.retry_after == pytest.approx(3600.0 - 122)  # the first calls leave
    assert budgets[1].stretched_interval(10.0) >= 3600.0 - 122
    wall.now += 3600 - 122
    budgets[1].acquire(BACKGROUND, max_wait=0)
    assert budgets[0].snapshot().hour.used == 7  # the first minute's 4 calls have left


def test_replicas_spending_at_once_never_exceed_the_minute(database_url: str) -> None:
    stores = [Store(database_url) for _ in range(4)]
    wall = Wall()
    budgets = fleet(stores, wall, minute=25, hour=1500)
    barrier = threading.Barrier(len(budgets))

    def spend(budget: CallBudget) -> int:
        barrier.wait(10)
        taken = 0
        for _ in range(10):
            try:
                budget.acquire(INTERACTIVE, max_wait=0)
                taken += 1
            except BudgetExhausted:
                pass
        return taken

    try:
        with ThreadPoolExecutor(len(budgets)) as pool:
            taken = sum(pool.map(spend, budgets))
    finally:
        for store in stores:
            store.close()
    assert taken == 25
