"""The pure parts of the status commands, the App Home and the DMs: thread links, the
views within Slack's limits, which changes are told to the requester, and parsing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from slack_sdk.models.views import View

import bot.views as views
from bot.lifecycle import new_request_id
from bot.links import thread_url
from bot.listeners.status import SUBCOMMANDS, parse_subcommand
from bot.lookup import REQUEST_ID, looks_like_request_id
from bot.notify import notice
from bot.records import RequestRecord, RequestState
from bot.views.home import MAX_HOME_BLOCKS
from commands.models import CommandSequence, GetFile

NOW = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
WORKSPACE = "https://soc.slack.com/"


def record(number: int = 1, **changes: Any) -> RequestRecord:
    base = RequestRecord(
        id=f"lr-{number:08d}",
        created_at=NOW,
        updated_at=NOW,
        requester="U0REQ0001",
        channel="C0SOC0001",
        machine_id="a" * 40,
        machine_name="ws-001.contoso.com",
        machine={"name": "ws-001.contoso.com"},
        commands=CommandSequence.of(GetFile(path="C:\\Temp\\a.txt")),
        justification="Beaconing",
        ticket=None,
        state=RequestState.AWAITING_APPROVAL,
        expires_at=NOW + timedelta(hours=1),
        message_ts=f"1700000000.{number:06d}",
    )
    return base.with_changes(**changes)


# --- links -------------------------------------------------------------------------------------


def test_thread_url_is_slacks_archive_form() -> None:
    url = thread_url(WORKSPACE, "C0SOC0001", "1700000000.000400")
    assert url == "https://soc.slack.com/archives/C0SOC0001/p1700000000000400"


def test_thread_url_needs_every_part() -> None:
    assert thread_url(None, "C0SOC0001", "1700000000.000400") is None
    assert thread_url(WORKSPACE, "C0SOC0001", None) is None
    assert thread_url(WORKSPACE, "not a channel", "1700000000.000400") is None
    assert thread_url(WORKSPACE, "C0SOC0001", "1700000000") is None


@given(st.text(max_size=40), st.text(max_size=40))
def test_thread_url_never_carries_what_is_not_an_id(channel: str, ts: str) -> None:
    url = thread_url(WORKSPACE, channel, ts)
    if url is not None:
        assert url.startswith("https://soc.slack.com/archives/C" if channel[0] == "C" else "https")
        assert all(c.isalnum() or c in ":/._" for c in url)


# --- parsing -----------------------------------------------------------------------------------


def test_subcommands_are_recognised_and_anything_else_opens_the_form() -> None:
    assert parse_subcommand("status") == ("status", [])
    assert parse_subcommand("  CANCEL   lr-abcdefgh ") == ("cancel", ["lr-abcdefgh"])
    assert parse_subcommand("history ws-001") == ("history", ["ws-001"])
    assert parse_subcommand("stop lr-abcdefgh") == ("stop", ["lr-abcdefgh"])
    assert parse_subcommand("ws-001 getfile C:\\x") is None
    assert parse_subcommand("") is None


@given(st.text(max_size=200))
def test_parse_subcommand_never_fails(text: str) -> None:
    parsed = parse_subcommand(text)
    if parsed is not None:
        name, args = parsed
        assert name == text.split()[0].lower()
        assert args == text.split()[1:]


@given(st.integers(min_value=0, max_value=50))
def test_every_new_request_id_is_read_as_one(_: int) -> None:
    made = new_request_id()
    assert REQUEST_ID.fullmatch(made) and looks_like_request_id(made.upper())


def test_subcommand_names_are_in_the_help() -> None:
    said = views.subcommand_help("/liveresponse")
    assert all(f"/liveresponse {name}" in said for name in SUBCOMMANDS)


# --- which changes are told --------------------------------------------------------------------


def test_ends_and_the_approval_are_told_a_return_to_approved_is_not() -> None:
    approved = [("approved", "U0APP0001", {})]
    assert notice({"state": RequestState.APPROVED}, approved) is RequestState.APPROVED
    assert notice({"state": RequestState.APPROVED}, [("submit_failed", None, {})]) is None
    for state in ("rejected", "expired", "finished", "refused"):
        assert notice({"state": state}, []) is RequestState(state)
    assert notice({"state": RequestState.WITHDRAWN}, []) is None  # they did it themselves
    assert notice({"state": RequestState.PENDING}, []) is None
    assert notice({"cancelled_by": "U1"}, []) is None


# --- views -------------------------------------------------------------------------------------


def test_home_with_full_lists_stays_within_slacks_block_limit() -> None:
    many = [record(i) for i in range(40)]
    view = views.home_view(many, many, many, WORKSPACE, NOW)
    assert len(view["blocks"]) <= MAX_HOME_BLOCKS
    View(**view).to_dict()  # slack_sdk's own checks of a view's limits
    text = json.dumps(view)
    assert "Waiting for your approval (40)" in text
    assert "https://soc.slack.com/archives/C0SOC0001/p1700000000000029" in text


def test_a_batchs_devices_are_one_line_on_the_home_tab_and_in_status() -> None:
    batch = [record(i, batch_id="lb-00000001", message_ts="1700000000.000900") for i in range(20)]
    waiting = [batch[0], record(99), *batch[1:]]
    text = json.dumps(views.home_view(waiting, [], [], WORKSPACE, NOW))
    assert "Waiting for your approval (2)" in text
    assert text.count("lb-00000001") == 1 and "1 command on 20 devices" in text
    assert "lr-00000099" in text and "lr-00000003" not in text
    overview = views.status_overview(waiting, [], WORKSPACE)
    shown = json.dumps(overview.blocks)
    assert shown.count("lb-00000001") == 1 and "lr-00000099" in shown


def test_home_says_when_a_list_is_empty() -> None:
    view = views.home_view([], [], [], WORKSPACE, NOW)
    text = json.dumps(view)
    assert "Nothing waits for your approval." in text and "Nothing is running now." in text


def test_a_line_escapes_what_a_person_typed() -> None:
    sneaky = record(machine={"name": "<!channel> ws"}, machine_name="<!channel> ws")
    line = json.dumps(views.status_overview([sneaky], [], WORKSPACE).blocks)
    assert "<!channel>" not in line and "&lt;!channel&gt;" in line


def test_status_lists_are_bounded_and_say_how_many_more() -> None:
    message = views.status_overview([record(i) for i in range(40)], [], WORKSPACE)
    text = json.dumps(message.blocks, ensure_ascii=False)
    shown = text.count("lr-000000")
    assert 0 < shown <= 12 and f"…and {40 - shown} more" in text
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in message.blocks)


def test_one_request_shows_its_state_and_thread() -> None:
    done = record(state=RequestState.FINISHED, action_status="Failed", decided_by="U0APP0001")
    message = views.request_status(done, WORKSPACE, NOW)
    assert "Request lr-00000001 on ws-001.contoso.com: Failed." in message.text
    assert "p1700000000000001|open the request" in json.dumps(message.blocks)


def test_a_request_not_yet_posted_has_no_link() -> None:
    message = views.request_status(record(message_ts=None), WORKSPACE, NOW)
    assert "(not posted yet)" in json.dumps(message.blocks)


def test_dms_say_what_happened_and_link_the_thread() -> None:
    approved = record(state=RequestState.FINISHED, approvals=("U0APP0001",))
    said = views.requester_dm(approved, RequestState.APPROVED, WORKSPACE)
    assert "was approved by <@U0APP0001>" in said.text
    assert "https://soc.slack.com/archives/C0SOC0001/p1700000000000001" in said.text
    finished = record(state=RequestState.FINISHED, action_status="TimeOut")
    assert "has finished: TimeOut" in views.requester_dm(finished, RequestState.FINISHED, None).text
    refused = record(state=RequestState.REFUSED, note="device offline")
    assert "refused by Defender: device offline" in (
        views.requester_dm(refused, RequestState.REFUSED, WORKSPACE).text
    )
    expired = views.requester_dm(record(), RequestState.EXPIRED, WORKSPACE)
    assert "expired before anyone approved it" in expired.text
