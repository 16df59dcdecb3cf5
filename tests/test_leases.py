"""The worker lease, on SQLite and PostgreSQL: one holder at a time, renewed by it, taken
over when it expires or its holder's process is gone, and given up at a clean stop."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.leases import WORKER, Grant, Leadership, Lease, Replica, provably_dead
from bot.store import Store
from tests.helpers.clocks import Wall
from tests.helpers.waiting import wait_until


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    yield store
    store.close()


def replica(name: str, host_key: str | None = None) -> Replica:
    here = Replica.this_process()
    return Replica(holder=f"{name}:{os.getpid()}:x", host_key=host_key or here.host_key)


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(10)
    return child.pid


def test_one_holder_at_a_time_until_its_lease_expires(store: Store) -> None:
    wall = Wall()
    a = Lease(store, WORKER, replica("host-a"), 10, wall)
    b = Lease(store, WORKER, replica("host-b"), 10, wall)
    assert a.hold().held and a.valid()
    assert not b.hold().held and not b.valid()
    wall.now += 9
    assert a.hold().held  # renewed: good for 10 s from now
    wall.now += 9
    assert not b.hold().held
    wall.now += 2  # a renewed 11 s ago: its lease ran out a second ago
    grant = b.hold()
    assert grant.held and grant.previous == f"host-a:{os.getpid()}:x"
    assert grant.previous_until == wall.now - 1 and not grant.previous_dead
    assert not a.valid() and not a.hold().held


def test_a_clean_stop_hands_the_lease_over_at_once(store: Store) -> None:
    wall = Wall()
    a = Lease(store, WORKER, replica("host-a"), 10, wall)
    b = Lease(store, WORKER, replica("host-b"), 10, wall)
    a.hold()
    a.release()
    assert not a.valid()
    assert b.hold().held


def test_a_holder_whose_process_is_gone_is_replaced_before_its_lease_expires(
    store: Store,
) -> None:
    here = Replica.this_process()
    gone = Replica(holder=f"host-a:{dead_pid()}:x", host_key=here.host_key)
    assert provably_dead(gone.holder, gone.host_key, here)
    Lease(store, WORKER, gone, 60).hold()
    grant = Lease(store, WORKER, here, 60).hold()
    assert grant.held and grant.previous == gone.holder and grant.previous_dead


def test_a_holder_on_another_host_is_never_presumed_dead(store: Store) -> None:
    here = Replica.this_process()
    elsewhere = Replica(holder=f"host-a:{dead_pid()}:x", host_key="another-kernel/pid:[1]")
    assert not provably_dead(elsewhere.holder, elsewhere.host_key, here)
    Lease(store, WORKER, elsewhere, 60).hold()
    assert not Lease(store, WORKER, here, 60).hold().held
    # Nor is a live process, nor one of this very process's other runtimes.
    assert not provably_dead(f"h:{os.getppid()}:x", here.host_key, here)
    assert not provably_dead(f"h:{os.getpid()}:y", here.host_key, here)
    assert not provably_dead("garbled", here.host_key, here)


def test_replicas_racing_for_a_free_lease_make_one_holder(database_url: str) -> None:
    stores = [Store(database_url) for _ in range(6)]
    barrier = threading.Barrier(len(stores))

    def contend(index: int) -> bool:
        lease = Lease(stores[index], WORKER, replica(f"host-{index}"), 30)
        barrier.wait(10)
        return lease.hold().held

    try:
        with ThreadPoolExecutor(len(stores)) as pool:
            results = list(pool.map(contend, range(len(stores))))
    finally:
        for store in stores:
            store.close()
    assert results.count(True) == 1


def test_leadership_moves_to_the_standby_when_the_leader_stops(store: Store) -> None:
    events: list[str] = []

    def leadership(name: str) -> Leadership:
        lease = Lease(store, WORKER, replica(name), ttl_seconds=0.6)
        return Leadership(
            lease,
            lambda grant: events.append(f"{name} leads"),
            lambda: events.append(f"{name} stops"),
        )

    first, second = leadership("host-a"), leadership("host-b")
    first.start()
    second.start()
    try:
        assert first.leading and not second.leading
        assert events == ["host-a leads"]
        first.stop()
        wait_until(lambda: second.leading, "the standby to take over", timeout=5)
        assert events == ["host-a leads", "host-a stops", "host-b leads"]
    finally:
        first.stop()
        second.stop()


def test_a_leader_that_cannot_renew_stops_its_work(store: Store) -> None:
    wall = Wall()
    lost: list[bool] = []
    lease = Lease(store, WORKER, replica("host-a"), 10, wall)
    leader = Leadership(lease, lambda grant: None, lambda: lost.append(True))
    leader.step()
    assert leader.leading
    wall.now += 11
    assert Lease(store, WORKER, replica("host-b"), 10, wall).hold().held
    leader.step()  # the lease is someone else's now
    assert not leader.leading and lost == [True]


def test_grant_defaults_say_nothing_was_taken() -> None:
    assert Grant(held=False).previous is None
