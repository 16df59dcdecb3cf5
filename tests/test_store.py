"""The store on each database it supports: SQLite and PostgreSQL give the same answers.

Every test takes ``database_url`` and so runs twice: on a SQLite file and on a fresh
database in the session's PostgreSQL cluster (see ``tests/helpers/postgres.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.records import RequestRecord, RequestState
from bot.store import Store, Transition, requests
from commands.models import CommandSequence, GetFile, RunScript

NOW = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)
MACHINE = {"id": "a" * 40, "computerDnsName": "ws-001.contoso.com", "tags": ["soc", "ü"]}


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = Store(database_url)
    yield opened
    opened.close()


def record(request_id: str, created_at: datetime = NOW, **changes: Any) -> RequestRecord:
    base = RequestRecord(
        id=request_id,
        created_at=created_at,
        updated_at=created_at,
        requester="U0REQ0001",
        channel="C0SOC0001",
        machine_id="a" * 40,
        machine_name="ws-001.contoso.com",
        machine=MACHINE,
        commands=CommandSequence.of(
            RunScript(script_name="collect.ps1", args="-Case IR-1"),
            GetFile(path="C:\\Temp\\a b.zip"),
        ),
        justification="Beaconing to 198.51.100.23 — collect evidence 🔎",
        ticket="IR-2026-0142",
        state=RequestState.AWAITING_APPROVAL,
        expires_at=created_at + timedelta(hours=1),
    )
    return base.with_changes(**changes)


def create(store: Store, request_id: str, created_at: datetime = NOW, **changes: Any) -> None:
    store.create(
        record(request_id, created_at, **changes),
        Transition().event("requested", "U0REQ0001").send("post_request"),
        created_at,
    )


def test_a_created_request_reads_back_as_it_was_written_with_utc_times(store: Store) -> None:
    create(store, "lr-aaaaaaaa")

    got = store.get("lr-aaaaaaaa")

    assert got is not None
    expected = record("lr-aaaaaaaa")
    for name in ("id", "requester", "machine", "commands", "justification", "ticket", "state"):
        assert getattr(got, name) == getattr(expected, name), name
    for name in ("created_at", "updated_at", "expires_at"):
        value = getattr(got, name)
        # The same instant, in UTC whatever the server's time zone: views format it as is.
        assert value == getattr(expected, name) and value.tzinfo is UTC, name
    assert [s.status for s in got.command_states] == ["Created", "Created"]
    assert got.decided_at is None and got.action_id is None
    assert store.get("lr-missing0") is None


def test_a_transition_applies_only_from_an_expected_state(store: Store) -> None:
    create(store, "lr-aaaaaaaa")
    later = NOW + timedelta(minutes=1)

    refused = store.transition(
        "lr-aaaaaaaa",
        Transition({"state": RequestState.PENDING}).event("nope").send("reply", text="x"),
        later,
        expect=[RequestState.APPROVED],
    )
    approved = store.transition(
        "lr-aaaaaaaa",
        Transition(
            {"state": RequestState.APPROVED, "decided_by": "U0APP0001", "decided_at": later},
            commands={2: ("Failed", "file not found")},
        ).event("approved", "U0APP0001", at=later),
        later,
        expect=[RequestState.AWAITING_APPROVAL],
    )

    assert refused is None
    assert approved is not None and approved.state is RequestState.APPROVED
    assert approved.decided_at == later and approved.updated_at == later
    assert approved.command_states[1].status == "Failed"
    assert approved.command_states[1].errors == "file not found"
    kinds = [e["kind"] for e in store.events_of("lr-aaaaaaaa")]
    assert kinds == ["requested", "approved"]  # nothing from the refused change
    # The approval's one item: the requester's DM (bot.notify), nothing from the refusal.
    assert [i.kind for i in store.due_outbox(later)] == ["post_request", "notify"]


def race(deciders: list[Callable[[], RequestRecord | None]]) -> list[RequestRecord | None]:
    """Run the deciders at once, each on its own thread; what each returned (or raised)."""
    barrier = threading.Barrier(len(deciders))

    def run(decider: Callable[[], RequestRecord | None]) -> RequestRecord | None:
        barrier.wait(timeout=30)
        return decider()

    with ThreadPoolExecutor(len(deciders)) as pool:
        futures = [pool.submit(run, d) for d in deciders]
        return [f.result(timeout=60) for f in futures]


def test_two_deciders_at_once_make_exactly_one_decision(store: Store) -> None:
    later = NOW + timedelta(minutes=5)
    for round_ in range(10):
        request_id = f"lr-race{round_:04d}"
        create(store, request_id)

        def decide(user: str, state: RequestState, rid: str = request_id) -> RequestRecord | None:
            return store.transition(
                rid,
                Transition({"state": state, "decided_by": user, "decided_at": later})
                .event(str(state), user)
                .send("reply", text=f"{state} by {user}"),
                later,
                expect=[RequestState.AWAITING_APPROVAL],
                where=requests.c.expires_at > later,
            )

        results = race(
            [
                lambda: decide("U0APP0001", RequestState.APPROVED),
                lambda: decide("U0APP0002", RequestState.REJECTED),
                lambda: decide("U0APP0001", RequestState.APPROVED),  # Slack's retry
            ]
        )

        winners = [r for r in results if r is not None]
        assert len(winners) == 1, results
        stored = store.get(request_id)
        assert stored is not None and stored.state is winners[0].state
        assert stored.decided_by == winners[0].decided_by
        decisions = [e for e in store.events_of(request_id) if e["kind"] != "requested"]
        assert [(e["kind"], e["actor"]) for e in decisions] == [
            (str(stored.state), stored.decided_by)
        ]
        replies = [i for i in store.due_outbox(later) if i.request_id == request_id]
        assert [i.kind for i in replies] == ["post_request", "reply", "notify"]  # told once


def test_an_expired_request_cannot_be_decided(store: Store) -> None:
    create(store, "lr-aaaaaaaa")
    late = NOW + timedelta(hours=1)  # expires_at exactly: no longer decidable

    decided = store.transition(
        "lr-aaaaaaaa",
        Transition({"state": RequestState.APPROVED}),
        late,
        expect=[RequestState.AWAITING_APPROVAL],
        where=requests.c.expires_at > late,
    )

    assert decided is None
    assert [r.id for r in store.in_states([RequestState.AWAITING_APPROVAL], expired_by=late)] == [
        "lr-aaaaaaaa"
    ]
    assert store.in_states([RequestState.AWAITING_APPROVAL], expired_by=late - timedelta(1)) == []


def test_in_states_lists_oldest_first_and_ties_by_id(store: Store) -> None:
    create(store, "lr-cccccccc", NOW)
    create(store, "lr-bbbbbbbb", NOW + timedelta(seconds=2))
    create(store, "lr-aaaaaaaa", NOW + timedelta(seconds=2))
    create(store, "lr-dddddddd", NOW + timedelta(microseconds=1))
    create(store, "lr-eeeeeeee", NOW, state=RequestState.APPROVED)

    waiting = store.in_states([RequestState.AWAITING_APPROVAL])
    both = store.in_states([RequestState.APPROVED, RequestState.AWAITING_APPROVAL])

    assert [r.id for r in waiting] == ["lr-cccccccc", "lr-dddddddd", "lr-aaaaaaaa", "lr-bbbbbbbb"]
    assert [r.id for r in both][:2] == ["lr-cccccccc", "lr-eeeeeeee"]
    assert store.in_states([RequestState.FINISHED]) == []


def test_outbox_due_done_and_retry_keep_each_requests_order(store: Store) -> None:
    for request_id in ("lr-aaaaaaaa", "lr-bbbbbbbb"):
        store.create(
            record(request_id),
            Transition().send("post_request").send("reply", text="1").send("reply", text="2"),
            NOW,
        )
    due = store.due_outbox(NOW)
    assert [(i.request_id, i.payload.get("text")) for i in due] == [
        ("lr-aaaaaaaa", None),
        ("lr-aaaaaaaa", "1"),
        ("lr-aaaaaaaa", "2"),
        ("lr-bbbbbbbb", None),
        ("lr-bbbbbbbb", "1"),
        ("lr-bbbbbbbb", "2"),
    ]

    store.outbox_done(due[0].id, NOW)
    store.outbox_retry(due[1].id, NOW + timedelta(seconds=30), "ratelimited")
    store.outbox_done(due[3].id, NOW, error="channel_not_found")

    now_due = store.due_outbox(NOW + timedelta(seconds=1))
    assert [(i.request_id, i.payload.get("text")) for i in now_due] == [
        ("lr-bbbbbbbb", "1"),
        ("lr-bbbbbbbb", "2"),
    ]
    retried = store.due_outbox(NOW + timedelta(seconds=30))
    assert [(i.request_id, i.payload.get("text"), i.attempts) for i in retried][:2] == [
        ("lr-aaaaaaaa", "1", 1),
        ("lr-aaaaaaaa", "2", 0),
    ]
    assert retried[0].not_before == NOW + timedelta(seconds=30)
    assert retried[0].not_before.tzinfo is UTC
    assert store.next_outbox_time() == NOW
    for item in retried:
        store.outbox_done(item.id, NOW)
    assert store.next_outbox_time() is None
    assert store.due_outbox(NOW + timedelta(days=1)) == []


def test_concurrent_transitions_keep_each_threads_replies_in_order(store: Store) -> None:
    """Ids come from a sequence on PostgreSQL, drawn before commit: a reply must still
    never overtake an earlier one of its own request."""
    ids = [f"lr-conc{n:04d}" for n in range(4)]
    for request_id in ids:
        create(store, request_id)

    def replies(request_id: str) -> Callable[[], RequestRecord | None]:
        def run() -> RequestRecord | None:
            for n in range(15):
                store.transition(
                    request_id, Transition().send("reply", text=str(n)), NOW, expect=None
                )
            return None

        return run

    race([replies(i) for i in ids])

    due = store.due_outbox(NOW, limit=1000)
    for request_id in ids:
        texts = [i.payload.get("text") for i in due if i.request_id == request_id]
        assert texts == [None, *(str(n) for n in range(15))], request_id


def test_events_keep_their_order_and_json_detail(store: Store) -> None:
    create(store, "lr-aaaaaaaa")
    at = NOW + timedelta(seconds=3)
    store.transition(
        "lr-aaaaaaaa",
        Transition()
        .event("command", None, position=1, status="Completed", when=at)
        .event("note", "U0APP0001", text="naïve ✓", nested={"a": [1, 2.5, None, True]}),
        at,
    )

    events = store.events_of("lr-aaaaaaaa")

    assert [e["kind"] for e in events] == ["requested", "command", "note"]
    assert events[1]["detail"] == {"position": 1, "status": "Completed", "when": str(at)}
    assert events[2]["detail"] == {"text": "naïve ✓", "nested": {"a": [1, 2.5, None, True]}}
    assert events[2]["actor"] == "U0APP0001" and events[1]["actor"] is None
    assert events[0]["id"] < events[1]["id"] < events[2]["id"]


def test_active_runs_and_submissions_in_the_run_rate_window(store: Store) -> None:
    states = [
        RequestState.AWAITING_APPROVAL,
        RequestState.APPROVED,
        RequestState.SUBMITTING,
        RequestState.PENDING,
        RequestState.IN_PROGRESS,
        RequestState.FINISHED,
        RequestState.UNKNOWN,
    ]
    for n, state in enumerate(states):
        submitted = NOW + timedelta(seconds=10 * n) if n >= 2 else None
        create(store, f"lr-act{n:05d}", state=state, submitted_at=submitted)

    assert store.count_active() == 3  # submitting, pending, in progress
    since = NOW + timedelta(seconds=30)
    assert store.submitted_since(since) == [
        NOW + timedelta(seconds=30),
        NOW + timedelta(seconds=40),
        NOW + timedelta(seconds=50),
        NOW + timedelta(seconds=60),
    ]
    assert all(t.tzinfo is UTC for t in store.submitted_since(NOW))
    assert store.count_submitted_since(since) == 4
    assert store.count_submitted_since(NOW + timedelta(hours=1)) == 0


def test_the_message_ts_and_a_reopened_store_see_the_same_data(database_url: str) -> None:
    first = Store(database_url)
    create(first, "lr-aaaaaaaa")
    first.set_message_ts("lr-aaaaaaaa", "1764302400.000100")
    first.close()

    again = Store(database_url)  # at the head revision already: nothing is migrated
    got = again.get("lr-aaaaaaaa")
    again.close()

    assert got is not None and got.message_ts == "1764302400.000100"


def test_a_nul_in_text_is_stored_as_a_replacement_character(store: Store) -> None:
    """PostgreSQL's text refuses NUL; the store writes U+FFFD on both databases, not an error
    that would fail every later write of the request."""
    create(store, "lr-aaaaaaaa", justification="before\x00after")
    store.transition(
        "lr-aaaaaaaa",
        Transition({"note": "a\x00b"}, commands={1: ("Failed", "bad\x00error")}).send(
            "reply", text="json keeps \x00"
        ),
        NOW,
    )
    [post, reply] = store.due_outbox(NOW)
    store.outbox_retry(post.id, NOW, "slack said \x00")

    got = store.get("lr-aaaaaaaa")

    assert got is not None
    assert got.justification == "before\ufffdafter" and got.note == "a\ufffdb"
    assert got.command_states[0].errors == "bad\ufffderror"
    assert reply.payload == {"text": "json keeps \x00"}


def test_a_plain_postgresql_url_uses_psycopg(postgres_url: str) -> None:
    store = Store(postgres_url.replace("postgresql+psycopg://", "postgresql://"))
    create(store, "lr-aaaaaaaa")
    assert store.engine.dialect.driver == "psycopg"
    assert store.get("lr-aaaaaaaa") is not None
    store.close()
