"""Batch requests, pure parts: the device field, the batch message and its summary, the
digest one approval is bound to."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.batch_store import BatchRecord, BatchStore, batch_digest
from bot.device_list import MAX_DEVICES, DeviceListError, is_batch, parse_devices
from bot.ids import Action
from bot.records import CANCELLABLE, RequestRecord, RequestState
from bot.store import Store, Transition
from bot.views.batch import batch_message, batch_summary, member_reply
from tests.helpers.defender import build_scenario, running_harness
from tests.test_views import ALL_RECORDS, NOW, check_message, make_record, mrkdwn_texts

# --- the device field --------------------------------------------------------------------


def test_names_ids_and_tags_are_split_on_commas_semicolons_and_spaces_once_each() -> None:
    named = parse_devices(" ws-1,ws-2 ws-3;\nWS-1. tag:Finance, tag:finance ")
    assert named.devices == ("ws-1", "ws-2", "ws-3")
    assert named.tags == ("Finance",)


def test_one_device_is_not_a_batch_and_several_or_a_tag_are() -> None:
    assert not is_batch("ws-1.contoso.com")
    assert not is_batch("  ws-1  ")
    assert is_batch("ws-1,ws-2")
    assert is_batch("tag:Finance")


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("", "Give the devices"),
        (",,  ;", "Give the devices"),
        ("tag:", "needs a tag name"),
        (",".join(f"ws-{i}" for i in range(MAX_DEVICES + 1)), "at most 20 devices; this names 21"),
        ("ws-1," + "x" * 300, "at most 255 characters"),
    ],
)
def test_a_field_that_names_no_batch_says_why(text: str, said: str) -> None:
    with pytest.raises(DeviceListError, match=said):
        parse_devices(text)


_ENTRY = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=40)


@given(st.lists(_ENTRY, max_size=30), st.sampled_from([",", " ", ";", ", ", "\n"]))
def test_fuzz_the_device_field_parses_or_says_why(entries: list[str], separator: str) -> None:
    text = separator.join(entries)
    try:
        named = parse_devices(text)
    except DeviceListError as exc:
        assert str(exc).strip()
        return
    shown = [*named.devices, *(f"tag:{t}" for t in named.tags)]
    assert len(shown) > 0 and len(named.devices) <= MAX_DEVICES
    keys = [s.lower().rstrip(".") for s in shown]
    assert len(keys) == len(set(keys))  # duplicates removed
    for entry in shown:  # every entry is a word the analyst typed, whole
        assert entry and entry.lower() in text.lower() and not any(c in entry for c in ", ;\n\t")


# --- the digest --------------------------------------------------------------------------


def test_the_batch_digest_covers_every_member_in_any_order() -> None:
    digests = ["a" * 64, "b" * 64, "c" * 64]
    assert batch_digest(digests) == batch_digest(reversed(digests))
    assert batch_digest(digests) != batch_digest(digests[:2])
    assert batch_digest(digests) != batch_digest([*digests[:2], "d" * 64])


# --- the views ---------------------------------------------------------------------------


def _members(state: RequestState, count: int) -> list[RequestRecord]:
    return [
        make_record(
            state,
            id=f"lr-{i:08d}",
            machine_name=f"srv-{i:03d}.contoso.com",
            machine={"name": f"srv-{i:03d}.contoso.com", "health_status": "Active"},
            batch_id="lb-00000001",
        )
        for i in range(count)
    ]


def _buttons(blocks: list[dict[str, object]]) -> list[dict[str, object]]:
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]  # type: ignore[attr-defined]


@pytest.mark.parametrize("state", list(RequestState))
def test_the_batch_message_is_valid_for_twenty_devices_in_every_state(
    state: RequestState,
) -> None:
    members = _members(state, MAX_DEVICES)
    message = batch_message("lb-00000001", "f" * 64, members, NOW)
    check_message(message)
    assert len(json.dumps(message.blocks)) < 12_000
    text = "\n".join(mrkdwn_texts(message.blocks))
    for member in members:
        assert member.machine_name in text
    actions = {e["action_id"] for e in _buttons(message.blocks)}
    if state is RequestState.AWAITING_APPROVAL:
        assert actions == {Action.BATCH_APPROVE, Action.BATCH_REJECT, Action.BATCH_WITHDRAW}
        [approve] = [e for e in _buttons(message.blocks) if e["action_id"] == Action.BATCH_APPROVE]
        assert approve["value"] == "lb-00000001:" + "f" * 24
    elif state in CANCELLABLE:  # a submission in flight too: the lifecycle cancels it
        assert actions == {Action.BATCH_CANCEL}
    else:
        assert actions == set()


def test_a_batch_with_devices_at_different_stages_says_how_far_it_got() -> None:
    members = [*_members(RequestState.FINISHED, 2), *_members(RequestState.IN_PROGRESS, 1)]
    message = batch_message("lb-00000001", "f" * 64, members, NOW)
    assert "running, 2 of 3 ended" in message.text


def test_the_summary_is_a_table_of_device_status_duration_and_results() -> None:
    members = _members(RequestState.FINISHED, 3)
    members[1] = members[1].with_changes(action_status="Failed")
    members[2] = members[2].with_changes(
        state=RequestState.REJECTED, action_status=None, started_at=None, finished_at=None
    )
    summary = batch_summary(members, {members[0].id: 2})
    check_message(summary)
    assert summary.text.startswith("Batch finished: 1 of 3 devices succeeded.")
    lines = summary.text.splitlines()
    assert lines[1].split() == ["Device", "Final", "status", "Duration", "Results"]
    assert lines[2].split() == ["srv-000.contoso.com", "Succeeded", "4", "min", "12", "s", "2"]
    assert lines[3].split()[:2] == ["srv-001.contoso.com", "Failed"]
    assert lines[4].split() == ["srv-002.contoso.com", "rejected", "-", "0"]


@pytest.mark.parametrize("record", ALL_RECORDS[:3])
def test_a_member_reply_is_named_for_its_device(record: RequestRecord) -> None:
    said = member_reply(
        record,
        "Submitted to Defender.",
        [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}],
    )
    assert said.text == f"[{record.machine_name}] Submitted to Defender."
    assert record.machine_name in said.blocks[0]["elements"][0]["text"]
    assert len(said.blocks) == 2


def test_twenty_long_names_fit_the_summary() -> None:
    members = [
        m.with_changes(machine={"name": "x" * 255}, finished_at=m.finished_at + timedelta(hours=30))
        for m in _members(RequestState.FINISHED, MAX_DEVICES)
    ]
    check_message(batch_summary(members, {}))


# --- one decision for every member, or none ---------------------------------------------


def _stored(tmp_path: Path) -> tuple[BatchStore, list[RequestRecord]]:
    store = BatchStore(Store(f"sqlite:///{tmp_path / 'db.sqlite3'}"))
    members = [
        m.with_changes(expires_at=NOW + timedelta(minutes=30), digest=f"{i}" * 64)
        for i, m in enumerate(_members(RequestState.AWAITING_APPROVAL, 3))
    ]
    batch = BatchRecord("lb-00000001", NOW, "UREQ1", "CSOC1", batch_digest(["0"]))
    store.create(batch, [(m, Transition()) for m in members], Transition(), NOW)
    return store, members


def _approve(record: RequestRecord, complete: bool) -> Transition:
    return Transition({"state": RequestState.APPROVED} if complete else {})


def test_an_approval_approves_every_member_in_one_transaction(tmp_path: Path) -> None:
    batches, members = _stored(tmp_path)
    outcome, after = batches.approve_all(
        "lb-00000001", "UAPPR2", NOW, _approve, lambda _: Transition()
    )
    assert outcome == "approved"
    assert [m.state for m in after] == [RequestState.APPROVED] * 3
    assert all(batches.store.approval_digests(m.id) == {"UAPPR2": m.digest} for m in members)
    batches.store.close()


def test_when_one_member_has_moved_on_no_member_is_approved(tmp_path: Path) -> None:
    batches, members = _stored(tmp_path)
    batches.store.transition(members[1].id, Transition({"state": RequestState.EXPIRED}), NOW)
    outcome, after = batches.approve_all(
        "lb-00000001", "UAPPR2", NOW, _approve, lambda _: Transition()
    )
    assert outcome == "closed"
    assert [m.state for m in after].count(RequestState.APPROVED) == 0
    assert all(batches.store.approval_digests(m.id) == {} for m in members)
    rejected = batches.transition_all(
        "lb-00000001",
        lambda r: Transition({"state": RequestState.REJECTED}),
        Transition(),
        NOW,
        expect=RequestState.AWAITING_APPROVAL,
    )
    assert rejected is None
    assert [m.state for m in batches.members("lb-00000001")].count(RequestState.REJECTED) == 0
    batches.store.close()


# --- Defender: machines by tag -------------------------------------------------------------


def test_machines_by_tag_are_found_exactly_and_regardless_of_case() -> None:
    scenario = build_scenario()
    machines = [
        m.model_copy(update={"machine_tags": ["Finance", "VIP"]})
        if m.computer_dns_name.startswith("srv-00")
        else m.model_copy(update={"machine_tags": ["Finance-old"]})
        for m in scenario.machines
    ]
    with (
        running_harness(scenario.model_copy(update={"machines": machines})) as defender,
        defender.client() as client,
    ):
        found = client.machines_by_tag("finance")
        assert sorted(m.name for m in found) == [f"srv-00{i}.contoso.com" for i in range(10)]
        assert client.machines_by_tag("nobody") == []
        call = next(r for r in defender.api_requests("GET") if "findbytag" in r.path)
        assert call.query == {"tag": "finance", "useStartsWithFilter": "false"}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(list(RequestState)), st.text(min_size=1, max_size=300)),
        min_size=1,
        max_size=MAX_DEVICES,
    )
)
def test_fuzz_batch_views_stay_within_slack_limits(members: list[tuple[RequestState, str]]) -> None:
    records = [
        make_record(state, id=f"lr-{i:08d}", machine={"name": name, "active_action_id": "a"})
        for i, (state, name) in enumerate(members)
    ]
    message = batch_message("lb-00000001", "f" * 64, records, NOW)
    check_message(message)
    assert len(json.dumps(message.blocks)) < 12_000
    check_message(batch_summary(records, {}))
    check_message(member_reply(records[0], "x", None))


def test_the_batch_message_reads_every_devices_preflight_as_one() -> None:
    """What all devices share is said once; what is wrong on one device is named; the
    devices whose own checks passed are counted."""
    shared = [
        {"level": "ok", "text": "ok.ps1 is in the library (sha256 ec0e9274)."},
        {"level": "ok", "text": "Commands in a valid order."},
    ]
    members = _members(RequestState.AWAITING_APPROVAL, 3)
    for i, member in enumerate(members):
        own = {"level": "ok", "text": f"Last seen {i + 1} min ago."}
        if i == 1:
            own = {"level": "warn", "text": "Last seen 3 days ago: the run may wait (R&D <lab>)."}
        member.machine["preflight"] = [*shared, own]
    message = batch_message("lb-00000001", "f" * 64, members, NOW)
    check_message(message)
    text = "\n".join(mrkdwn_texts(message.blocks))
    assert text.count("ok.ps1 is in the library") == 1
    assert "⚠️ srv-001.contoso.com: Last seen 3 days ago" in text
    assert "(R&amp;D &lt;lab&gt;)" in text  # escaped once, as every mrkdwn text
    assert "Device checks passed on 2 devices." in text
    assert "Last seen 1 min ago" not in text
