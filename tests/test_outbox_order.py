"""The outbox delivers each thread in order, and one thread's wait holds up no other."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.records import RequestRecord, RequestState
from bot.store import Store, Transition
from commands.models import CommandSequence, GetFile

NOW = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)


def request(store: Store, request_id: str) -> None:
    record = RequestRecord(
        id=request_id,
        created_at=NOW,
        updated_at=NOW,
        requester="U0REQ0001",
        channel="C0SOC0001",
        machine_id="a" * 40,
        machine_name="ws-001",
        machine={},
        commands=CommandSequence.of(GetFile(path="/var/log/x")),
        justification="why",
        ticket=None,
        state=RequestState.AWAITING_APPROVAL,
        expires_at=NOW + timedelta(hours=1),
    )
    store.create(record, Transition().send("post_request").send("reply", text="1"), NOW)


def test_a_waiting_dm_holds_up_no_thread_and_dms_stay_in_order(database_url: str) -> None:
    """Slack refusing DMs for a while must not stall the run's thread replies."""
    store = Store(database_url)
    request(store, "lr-aaaaaaaa")
    later = Transition().send("notify", state="approved").send("reply", text="2")
    assert store.transition("lr-aaaaaaaa", later.send("notify", state="finished"), NOW)
    dm = next(i for i in store.due_outbox(NOW) if i.kind == "notify")
    store.outbox_retry(dm.id, NOW + timedelta(seconds=30), "Slack refused DMs")

    due = [(i.kind, i.payload) for i in store.due_outbox(NOW)]

    assert [kind for kind, _ in due] == ["post_request", "reply", "reply"]
    after = [i.payload.get("state") for i in store.due_outbox(NOW + timedelta(seconds=31))]
    assert [s for s in after if s] == ["approved", "finished"]


def test_a_waiting_item_holds_up_its_own_thread_only(database_url: str) -> None:
    store = Store(database_url)
    request(store, "lr-aaaaaaaa")
    request(store, "lr-bbbbbbbb")
    first_a = store.due_outbox(NOW)[0]
    store.outbox_retry(first_a.id, NOW + timedelta(seconds=30), "result download waits")

    due = store.due_outbox(NOW)

    assert [(i.request_id, i.kind) for i in due] == [
        ("lr-bbbbbbbb", "post_request"),
        ("lr-bbbbbbbb", "reply"),
    ]
    later = store.due_outbox(NOW + timedelta(seconds=31))
    assert [(i.request_id, i.kind) for i in later][:2] == [
        ("lr-aaaaaaaa", "post_request"),
        ("lr-aaaaaaaa", "reply"),
    ]
    store.close()
