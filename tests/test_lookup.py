"""The status and Home lookups on each database: whose requests, what runs, what waits for
whom (the approval policy's answer), what ran on a device."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.lookup import Lookup
from bot.policy import Policy
from bot.records import RequestState
from bot.store import Store, Transition
from tests.test_status_views import record

NOW = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
APPROVER, LEAD, OTHER = "U0APP0001", "U0LEAD001", "U0OTH0001"


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = Store(database_url)
    yield opened
    opened.close()


def lookup(store: Store, groups: dict[str, frozenset[str]] | None = None) -> Lookup:
    policy = Policy.simple((), (APPROVER, "S0LEADS01"))
    known = groups or {"S0LEADS01": frozenset({LEAD})}
    return Lookup(store, policy, lambda group: known.get(group, frozenset()), lambda: NOW)


def add(store: Store, number: int, minutes: int = 0, **changes: Any) -> str:
    created = NOW - timedelta(minutes=100 - minutes)
    made = record(number, created_at=created, updated_at=created, **changes)
    store.create(made, Transition().event("requested", made.requester), created)
    return made.id


def ids(records: list[Any]) -> list[str]:
    return [r.id for r in records]


def test_the_requesters_own_newest_first_and_bounded(store: Store) -> None:
    first, second = add(store, 1, minutes=1), add(store, 2, minutes=2)
    add(store, 3, minutes=3, requester=OTHER)
    assert ids(lookup(store).of_requester("U0REQ0001")) == [second, first]
    assert ids(lookup(store).of_requester("U0REQ0001", limit=1)) == [second]


def test_running_means_approved_and_not_ended(store: Store) -> None:
    add(store, 1)
    running = [
        add(store, n, minutes=n, state=state)
        for n, state in enumerate(
            [RequestState.APPROVED, RequestState.PENDING, RequestState.IN_PROGRESS], start=2
        )
    ]
    add(store, 9, state=RequestState.FINISHED, action_status="Succeeded")
    assert ids(lookup(store).running()) == list(reversed(running))


def test_awaiting_is_what_the_policy_lets_this_user_approve(store: Store) -> None:
    waiting = add(store, 1)
    theirs = add(store, 2, requester=APPROVER)  # never theirs to approve; the lead's to
    add(store, 3, expires_at=NOW - timedelta(minutes=1))  # past its deadline
    add(store, 4, state=RequestState.REJECTED)
    found = lookup(store)
    assert ids(found.awaiting(APPROVER)) == [waiting]
    assert ids(found.awaiting(LEAD)) == [theirs, waiting]  # through the user group
    assert found.awaiting(OTHER) == []  # no approver


def test_a_device_by_id_host_name_or_short_name_in_any_case(store: Store) -> None:
    mine = add(store, 1)
    add(store, 2, machine_id="b" * 40, machine_name="ws-0010.contoso.com")
    found = lookup(store)
    for device in ("a" * 40, "A" * 40, "WS-001.contoso.com", "ws-001"):
        assert ids(found.on_device(device)) == [mine], device
    assert found.on_device("ws-00") == [] and found.on_device("  ") == []
    assert found.on_device("ws-001%") == []  # a LIKE wildcard is a character here


def test_a_request_by_id_in_either_case(store: Store) -> None:
    made = add(store, 1)
    assert lookup(store).request(made.upper()) is not None
    assert lookup(store).request("lr-zzzzzzzz") is None
