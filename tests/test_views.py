"""Every view, in every state, within Slack's limits and saying the facts in plain words."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block as SlackBlock
from slack_sdk.models.views import View

import bot.views as views
from bot.ids import Action, Block, Callback, row_block
from bot.modal import MAX_ROWS, ModalMetadata, ModalValues
from bot.records import CommandState, RequestRecord, RequestState
from bot.settings import load_bot_settings
from bot.views import (
    Message,
    clip,
    escape,
    help_text,
    human_duration,
    human_size,
    notice_modal,
    output_fits_inline,
    reply_cancelled,
    reply_command,
    reply_decision,
    reply_expired,
    reply_final,
    reply_refused,
    reply_result_error,
    reply_result_too_large,
    reply_runscript_result,
    reply_skipped,
    reply_started,
    reply_submitted,
    reply_waiting,
    request_message,
    request_modal,
    result_file_comment,
    slack_date,
    truncate,
)
from bot.views.common import code_block, code_blocks
from bot.views.thread import DEFAULT_LARGE_RESULT_NOTE, large_result_note
from commands.errors import CommandError, ConfigurationError
from commands.models import MAX_ARGS_LENGTH, CommandSequence, GetFile, PutFile, RunScript
from commands.playbooks import Parameter, Playbook
from commands.syntax import format_command, parse_sequence
from commands.wire import FINAL_STATUSES, RunScriptOutput

NOW = datetime(2025, 3, 1, 3, 12, 0, tzinfo=UTC)
MACHINE_ID = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
HOSTILE = "<!channel> <@U666> <https://evil.example|click> <!here> &amp;"
MESSAGE_BLOCK_CHARS = 12_000  # Slack has refused messages with ~13k characters of blocks

# --- a record in any state ---------------------------------------------------------------


def machine(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "ws-0423.corp.example",
        "id": MACHINE_ID,
        "os_platform": "Windows11",
        "os_version": "23H2",
        "health_status": "Active",
        "last_seen": "2025-03-01T02:58:00+00:00",
        "rbac_group_name": "SOC workstations",
        "machine_tags": ["finance", "vip"],
        "active_action_id": None,
    }
    return base | changes


def sequence() -> CommandSequence:
    return CommandSequence.of(
        PutFile(file_name="collect.ps1"),
        RunScript(script_name="collect.ps1", args="-Days 3"),
        GetFile(path=r"C:\Windows\Temp\collect.zip"),
    )


_DECIDED = {
    RequestState.APPROVED,
    RequestState.SUBMITTING,
    RequestState.UNKNOWN,
    RequestState.PENDING,
    RequestState.IN_PROGRESS,
    RequestState.FINISHED,
    RequestState.REJECTED,
    RequestState.WITHDRAWN,
    RequestState.REFUSED,
}
_SUBMITTED = {RequestState.PENDING, RequestState.IN_PROGRESS, RequestState.FINISHED}


def make_record(state: RequestState, **changes: Any) -> RequestRecord:
    """A plausible record for ``state``; ``changes`` override any field."""
    created = NOW - timedelta(minutes=10)
    fields: dict[str, Any] = {
        "id": "req-7f3a",
        "created_at": created,
        "updated_at": NOW,
        "requester": "UREQ1",
        "channel": "CSOC1",
        "machine_id": MACHINE_ID,
        "machine_name": "ws-0423.corp.example",
        "machine": machine(),
        "commands": sequence(),
        "justification": "Alert 4711: suspicious PowerShell on the finance laptop",
        "ticket": "INC-2025-0042",
        "state": state,
        "expires_at": created + timedelta(minutes=30),
    }
    if state in _DECIDED:
        fields |= {"decided_by": "UAPPR2", "decided_at": created + timedelta(minutes=2)}
    if state is RequestState.WITHDRAWN:
        fields["decided_by"] = "UREQ1"
    if state in _SUBMITTED:
        fields |= {
            "action_id": "act-9c1e",
            "action_status": "Pending",
            "submitted_at": created + timedelta(minutes=3),
        }
    if state is RequestState.IN_PROGRESS:
        fields |= {
            "action_status": "InProgress",
            "started_at": created + timedelta(minutes=4),
            "command_states": (CommandState("Completed"), CommandState("InProgress")),
        }
    if state is RequestState.FINISHED:
        fields |= {
            "action_status": "Succeeded",
            "started_at": created + timedelta(minutes=4),
            "finished_at": created + timedelta(minutes=7, seconds=12),
            "command_states": (CommandState("Completed"),) * 3,
        }
    if state is RequestState.APPROVED:
        fields["note"] = "the device already has a live response action running"
    if state is RequestState.REFUSED:
        fields["note"] = "ActiveRequestAlreadyExists: an action is already running"
    return RequestRecord(**(fields | changes))


def finished(status: str, **changes: Any) -> RequestRecord:
    states = {
        "Succeeded": (CommandState("Completed"),) * 3,
        "Failed": (CommandState("Completed"), CommandState("Failed", "exit code 1: access denied")),
        "TimeOut": (CommandState("Completed"), CommandState("InProgress")),
        "Cancelled": (CommandState("Completed"),),
    }[status]
    extra = {"cancelled_by": "UCANC3"} if status == "Cancelled" else {}
    return make_record(
        RequestState.FINISHED, action_status=status, command_states=states, **extra, **changes
    )


ALL_RECORDS: list[RequestRecord] = [make_record(s) for s in RequestState] + [
    finished(s) for s in sorted(FINAL_STATUSES)
]


def ids(record: RequestRecord) -> str:
    return f"{record.state}-{record.action_status}"


# --- validation helpers --------------------------------------------------------------------


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def mrkdwn_texts(blocks: list[dict[str, Any]]) -> list[str]:
    return [n["text"] for n in walk(blocks) if n.get("type") == "mrkdwn"]


def check_blocks(blocks: list[dict[str, Any]], limit: int) -> None:
    assert 0 < len(blocks) <= limit
    for block in blocks:
        parsed = SlackBlock.parse(block)
        assert parsed is not None, block
        assert parsed.to_dict()["type"] == block["type"]
        assert block["type"] in {"header", "section", "context", "actions", "input"}
    block_ids = [b["block_id"] for b in blocks if "block_id" in b]
    assert len(block_ids) == len(set(block_ids))
    for text in mrkdwn_texts(blocks):
        assert text.strip()
    for node in walk(blocks):
        if node.get("type") == "section":
            assert len(node["text"]["text"]) <= 3000
            assert len(node.get("fields", [])) <= 10
            assert all(len(f["text"]) <= 2000 for f in node.get("fields", []))
        if node.get("type") == "header":
            assert len(node["text"]["text"]) <= 150
        if node.get("type") == "button":
            assert len(node["text"]["text"]) <= 75
            assert len(node.get("value", "")) <= 2000


def check_message(message: Message) -> None:
    assert isinstance(message, Message)
    check_blocks(message.blocks, 50)
    assert message.text.strip()
    assert len(json.dumps(message.blocks, ensure_ascii=False)) <= MESSAGE_BLOCK_CHARS
    actions = [n["action_id"] for n in walk(message.blocks) if "action_id" in n]
    assert len(actions) == len(set(actions))
    assert set(actions) <= {str(a) for a in Action}
    # User text may contain "://"; what must never appear is link markup (assert_inert checks
    # that no user-supplied mention survives; the bot's own <@requester> and dates are fine).
    assert "<http" not in message.text


def assert_inert(message: Message) -> None:
    """No user-supplied mention or link survives as markup, in the text or any mrkdwn."""
    for text in [message.text, *mrkdwn_texts(message.blocks)]:
        for markup in ("<!channel>", "<@U666>", "<https://evil", "<!here>"):
            assert markup not in text


def buttons(message: Message) -> set[str]:
    return {n["action_id"] for n in walk(message.blocks) if n.get("type") == "button"}


def every_reply(record: RequestRecord) -> list[Message]:
    output = RunScriptOutput(exit_code=0, script_output="done\n", script_errors="")
    return [
        reply_submitted(record),
        reply_waiting(record, "the device is offline"),
        reply_started(record),
        reply_command(record, 2, "Completed", None),
        reply_command(record, 2, "Failed", "exit code 1: access denied"),
        reply_skipped(record, [3]),
        reply_final(record, 252),
        reply_cancelled(record, "UCANC3"),
        reply_expired(record),
        reply_refused(record, "ActiveRequestAlreadyExists"),
        reply_decision(record),
        reply_runscript_result(record, 2, output, 1234, "ab" * 32, 2000),
        reply_result_error(record, 3, "the download link expired"),
        reply_result_too_large(record, 3, "big.bin", 5_000_000_000, "cd" * 32, 3 * 10**9, "See."),
        reply_result_too_large(record, 3, "bomb.gz", 4 * 2**30, None, 3 * 10**9, "See."),
        reply_result_too_large(record, 3, "x", None, None, 3 * 10**9, "See."),
    ]


# --- helpers ---------------------------------------------------------------------------------


def test_escape_makes_markup_inert() -> None:
    assert escape("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"


def test_truncate() -> None:
    assert truncate("abc", 3) == "abc"
    assert truncate("abcd", 3) == "ab…"
    assert truncate("abcd", 0) == ""


def test_clip_never_cuts_an_entity() -> None:
    for limit in range(1, 30):
        clipped = clip("a<b>&c" * 5, limit)
        assert len(clipped) <= limit
        assert not re.search(r"&[a-z]{0,3}(?!;)(…|$)", clipped)


def test_code_block_cannot_be_closed_by_its_text() -> None:
    block = code_block("x ``` *bold* ```` y`", 200)
    assert block.startswith("```") and block.endswith("```")
    assert "``" not in block[3:-3]
    assert len(code_block("z" * 5000, 300)) <= 300


@pytest.mark.parametrize(
    ("size", "words"),
    [
        (0, "0 bytes"),
        (1, "1 byte"),
        (999, "999 bytes"),
        (1234, "1.2 kB"),
        (999_999, "1.0 MB"),
        (4_200_000, "4.2 MB"),
        (3 * 10**9, "3.0 GB"),
    ],
)
def test_human_size(size: int, words: str) -> None:
    assert human_size(size) == words


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "0 s"),
        (0.4, "under 1 s"),
        (42, "42 s"),
        (252, "4 min 12 s"),
        (240, "4 min"),
        (3780, "1 h 3 min"),
        (3600, "1 h"),
        (2 * 86400 + 4 * 3600 + 5, "2 d 4 h"),
        (-5, "0 s"),
        (float("nan"), "unknown time"),
    ],
)
def test_human_duration(seconds: float, words: str) -> None:
    assert human_duration(seconds) == words


def test_slack_date_has_a_fallback_in_utc() -> None:
    assert slack_date(NOW) == ("<!date^1740798720^{date_short_pretty} {time}|2025-03-01 03:12 UTC>")
    naive = datetime(2025, 3, 1, 3, 12)  # naive: read as UTC
    assert slack_date(naive, "{time}") == "<!date^1740798720^{time}|2025-03-01 03:12 UTC>"


def test_exports() -> None:
    for name in views.__all__:
        assert hasattr(views, name), name


# --- help ----------------------------------------------------------------------------------


def test_help_explains_syntax_order_limit_and_approval() -> None:
    text = help_text("/liveresponse")
    for words in ("putfile", "runscript", "getfile", "`;`", "double quotes", "device first"):
        assert words in text
    assert "PutFile commands first, then RunScript, then GetFile" in text
    assert "At most 10 commands" in text
    assert "approves" in text
    assert "<" not in text  # placeholders are escaped, never read as links
    example = re.search(r"```/liveresponse (\S+) (.*)```", text)
    assert example is not None
    assert len(parse_sequence(example.group(2))) == 3


# --- the modal -----------------------------------------------------------------------------


def modal_inputs(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}


def test_modal_with_playbooks_offers_them_and_keeps_the_choice() -> None:
    playbooks = [
        Playbook("grab", "Collect a file " + "x" * 100, "getfile C:\\{f}", (Parameter("f"),)),
        Playbook("triage", "", "runscript t.ps1 {d}", (Parameter("d", default="3"),)),
    ]
    values = ModalValues(playbook="triage", playbook_params="d=5")
    view = request_modal(ModalMetadata(channel_id="CSOC1", rows=1), values, playbooks)
    View(**view).to_dict()
    check_blocks(view["blocks"], 100)
    inputs = modal_inputs(view)
    select = inputs[Block.PLAYBOOK]["element"]
    assert [o["value"] for o in select["options"]] == ["grab", "triage"]
    assert all(len(o["text"]["text"]) <= 75 for o in select["options"])
    assert select["initial_option"]["value"] == "triage"
    params = inputs[Block.PLAYBOOK_PARAMS]
    assert params["element"]["initial_value"] == "d=5"
    assert "grab f=<f>; triage [d=3]" in params["hint"]["text"]
    # Without playbooks configured, the form has no playbook fields.
    plain_view = request_modal(ModalMetadata(channel_id="CSOC1", rows=1))
    assert Block.PLAYBOOK not in modal_inputs(plain_view)


@pytest.mark.parametrize("rows", range(1, MAX_ROWS + 1))
def test_modal_is_valid_for_every_row_count(rows: int) -> None:
    view = request_modal(ModalMetadata(channel_id="CSOC1", rows=rows))
    View(**view).to_dict()
    check_blocks(view["blocks"], 100)
    assert view["type"] == "modal"
    assert view["callback_id"] == Callback.REQUEST_MODAL == "lr_request"
    assert view["title"]["text"] == "Live response"
    assert view["submit"]["text"] == "Request approval"
    assert view["close"]["text"] == "Cancel"
    assert len(view["private_metadata"]) <= 3000
    assert ModalMetadata.model_validate_json(view["private_metadata"]).rows == rows
    inputs = modal_inputs(view)
    expected = {Block.DEVICE, Block.COMMANDS_TEXT, Block.JUSTIFICATION, Block.TICKET}
    expected |= {row_block(i, part) for i in range(rows) for part in ("type", "file", "value")}
    assert set(inputs) == expected
    pickers = {row_block(i, "file") for i in range(rows)}
    assert all(
        b["element"]["action_id"] == (Action.LIBRARY_FILE if k in pickers else Action.VALUE)
        for k, b in inputs.items()
    )
    assert all(inputs[k]["element"]["type"] == "external_select" for k in pickers)
    assert not inputs[Block.DEVICE]["optional"] and not inputs[Block.JUSTIFICATION]["optional"]
    assert inputs[Block.COMMANDS_TEXT]["optional"] and inputs[Block.TICKET]["optional"]
    assert inputs[Block.JUSTIFICATION]["element"]["multiline"]
    assert inputs[Block.COMMANDS_TEXT]["element"]["multiline"]
    assert inputs[row_block(0, "type")]["label"]["text"] == "Command 1"
    options = inputs[row_block(0, "type")]["element"]["options"]
    assert [o["value"] for o in options] == ["PutFile", "RunScript", "GetFile"]
    placeholder = inputs[Block.DEVICE]["element"]["placeholder"]["text"]
    assert placeholder == "hostname or 40-character machine id"
    row_buttons = {
        e["action_id"]
        for b in view["blocks"]
        if b.get("block_id") == Block.ROW_BUTTONS
        for e in b["elements"]
    }
    assert (Action.ADD_ROW in row_buttons) == (rows < MAX_ROWS)
    assert (Action.REMOVE_ROW in row_buttons) == (rows > 1)


def test_modal_keeps_what_was_typed() -> None:
    values = ModalValues(
        device="ws-0423",
        rows=[("RunScript", "collect.ps1 -Days 3"), (None, "C:\\x")],
        commands_text="getfile C:\\Windows\\Temp\\x.zip",
        justification="Alert 4711",
        ticket="INC-1",
    )
    view = request_modal(ModalMetadata(channel_id="CSOC1", rows=3), values)
    View(**view).to_dict()
    inputs = modal_inputs(view)
    assert inputs[Block.DEVICE]["element"]["initial_value"] == "ws-0423"
    first = inputs[row_block(0, "type")]["element"]
    assert first["initial_option"]["value"] == "RunScript"
    assert first["initial_option"] in first["options"]
    assert "initial_option" not in inputs[row_block(1, "type")]["element"]
    assert inputs[row_block(0, "value")]["element"]["initial_value"] == "collect.ps1 -Days 3"
    assert inputs[row_block(1, "value")]["element"]["initial_value"] == "C:\\x"
    assert "initial_value" not in inputs[row_block(2, "value")]["element"]
    assert inputs[Block.COMMANDS_TEXT]["element"]["initial_value"].startswith("getfile")
    assert inputs[Block.JUSTIFICATION]["element"]["initial_value"] == "Alert 4711"
    assert inputs[Block.TICKET]["element"]["initial_value"] == "INC-1"


def test_modal_truncates_initial_values_to_their_max_length() -> None:
    values = ModalValues(
        device="d" * 5000,
        rows=[("GetFile", "p" * 5000)] * MAX_ROWS,
        commands_text="c" * 5000,
        justification="j" * 5000,
        ticket="t" * 5000,
    )
    view = request_modal(ModalMetadata(channel_id="CSOC1", rows=MAX_ROWS), values)
    View(**view).to_dict()
    assert len(view["blocks"]) <= 100
    for block in modal_inputs(view).values():
        element = block["element"]
        if "initial_value" in element:
            assert len(element["initial_value"]) <= element["max_length"] <= 3000
        assert len(block["label"]["text"]) <= 2000


def test_notice_modal() -> None:
    view = notice_modal("You are not in the live response group. " + HOSTILE)
    View(**view).to_dict()
    check_blocks(view["blocks"], 100)
    assert "<!channel>" not in json.dumps(view)
    assert "live response group" in view["blocks"][0]["text"]["text"]


# --- the request message -------------------------------------------------------------------


@pytest.mark.parametrize("record", ALL_RECORDS, ids=ids)
def test_request_message_is_valid_in_every_state(record: RequestRecord) -> None:
    message = request_message(record, NOW)
    check_message(message)
    assert message.blocks[0]["type"] == "header"
    assert "<@UREQ1>" in message.text
    assert "ws-0423.corp.example" in message.text
    assert "3 commands" in message.text
    assert record.id in message.text


_HEADERS = {
    RequestState.AWAITING_APPROVAL: "awaiting approval",
    RequestState.APPROVED: "approved, queued",
    RequestState.IN_PROGRESS: "running",
    RequestState.REJECTED: "rejected",
    RequestState.WITHDRAWN: "withdrawn",
    RequestState.EXPIRED: "expired",
    RequestState.REFUSED: "refused by Defender",
}


@pytest.mark.parametrize(("state", "words"), _HEADERS.items())
def test_header_and_text_say_the_state(state: RequestState, words: str) -> None:
    message = request_message(make_record(state), NOW)
    assert message.blocks[0]["text"]["text"].endswith(f"Live response request — {words}")
    assert words in message.text


@pytest.mark.parametrize("status", sorted(FINAL_STATUSES))
def test_finished_says_defenders_own_word(status: str) -> None:
    message = request_message(finished(status), NOW)
    assert message.blocks[0]["text"]["text"].endswith(f"— {status}")
    assert f"Defender's final status: {status}" in message.text
    assert "after 4 min 12 s" in json.dumps(message.blocks)


@pytest.mark.parametrize("record", ALL_RECORDS, ids=ids)
def test_buttons_match_the_state(record: RequestRecord) -> None:
    found = buttons(request_message(record, NOW))
    if record.state is RequestState.AWAITING_APPROVAL:
        assert found == {Action.APPROVE, Action.REJECT, Action.WITHDRAW}
    elif record.state in (RequestState.APPROVED, RequestState.PENDING, RequestState.IN_PROGRESS):
        assert found == {Action.CANCEL}
    else:
        assert found == set()


def test_awaiting_approval_buttons_and_expiry() -> None:
    message = request_message(make_record(RequestState.AWAITING_APPROVAL), NOW)
    elements = {n["action_id"]: n for n in walk(message.blocks) if n.get("type") == "button"}
    approve = elements[Action.APPROVE]
    assert approve["style"] == "primary" and approve["value"] == "req-7f3a"
    assert "3 commands on ws-0423.corp.example" in approve["confirm"]["text"]["text"]
    assert elements[Action.REJECT]["style"] == "danger"
    assert elements[Action.WITHDRAW]["text"]["text"] == "Withdraw (requester)"
    assert all(e["value"] == "req-7f3a" for e in elements.values())
    blob = json.dumps(message.blocks)
    assert "Approval expires <!date^1740799920^{date_short_pretty} {time}|" in blob
    assert "(in 20 min)" not in blob  # a countdown would go stale in the channel


def test_cancel_has_a_confirm_dialog() -> None:
    message = request_message(make_record(RequestState.PENDING), NOW)
    (cancel,) = (n for n in walk(message.blocks) if n.get("action_id") == Action.CANCEL)
    assert cancel["style"] == "danger"
    assert "ws-0423.corp.example" in cancel["confirm"]["text"]["text"]
    assert "act-9c1e" in json.dumps(message.blocks)


def test_decisions_are_shown_with_who_and_when() -> None:
    blob = json.dumps(request_message(make_record(RequestState.APPROVED), NOW).blocks)
    assert "Approved by <@UAPPR2> at <!date^" in blob
    assert "Queued: the device already has a live response action running" in blob
    blob = json.dumps(request_message(make_record(RequestState.REJECTED), NOW).blocks)
    assert "Rejected by <@UAPPR2> at <!date^" in blob
    blob = json.dumps(request_message(make_record(RequestState.WITHDRAWN), NOW).blocks)
    assert "Withdrawn by the requester at <!date^" in blob
    blob = json.dumps(request_message(make_record(RequestState.EXPIRED), NOW).blocks)
    assert "Expired at <!date^" in blob
    blob = json.dumps(request_message(make_record(RequestState.REFUSED), NOW).blocks)
    assert "ActiveRequestAlreadyExists" in blob


def test_commands_are_shown_exactly_and_numbered() -> None:
    message = request_message(make_record(RequestState.AWAITING_APPROVAL), NOW)
    texts = mrkdwn_texts(message.blocks)
    for position, command in enumerate(sequence().commands, start=1):
        expected = f"*{position}.*\n```{escape(format_command(command))}```"
        assert expected in texts


def test_per_command_status_while_running_and_after_a_failure() -> None:
    running = request_message(make_record(RequestState.IN_PROGRESS), NOW)
    assert "1 Completed, 2 running, 3 waiting" in running.text
    failed = request_message(finished("Failed"), NOW)
    assert "1 Completed, 2 Failed, 3 skipped" in failed.text
    blob = json.dumps(failed.blocks, ensure_ascii=False)
    assert "❌ Failed — exit code 1: access denied" in blob
    assert "⏭️ skipped" in blob
    timed_out = request_message(finished("TimeOut"), NOW)
    assert "2 did not finish, 3 not run" in timed_out.text
    cancelled = request_message(finished("Cancelled"), NOW)
    assert "Cancelled by <@UCANC3>" in cancelled.text


def test_device_warnings() -> None:
    quiet = request_message(make_record(RequestState.AWAITING_APPROVAL), NOW)
    assert "⚠️" not in json.dumps(quiet.blocks, ensure_ascii=False)
    record = make_record(
        RequestState.AWAITING_APPROVAL,
        machine=machine(health_status="Inactive", active_action_id="act-0001"),
    )
    blob = json.dumps(request_message(record, NOW).blocks, ensure_ascii=False)
    assert "the run will queue until it connects" in blob
    assert "already has a live response action running (`act-0001`)" in blob


def test_device_card_fields() -> None:
    message = request_message(make_record(RequestState.AWAITING_APPROVAL), NOW)
    (card,) = (b for b in message.blocks if "fields" in b)
    fields = "\n".join(f["text"] for f in card["fields"])
    for words in (MACHINE_ID, "Windows11 23H2", "Active", "SOC workstations", "finance, vip"):
        assert words in fields
    assert "14 min ago" in fields


def test_a_sparse_machine_dict_does_not_break_the_card() -> None:
    record = make_record(RequestState.PENDING, machine={"last_seen": "not a date"})
    check_message(request_message(record, NOW))


def hostile_record(state: RequestState = RequestState.AWAITING_APPROVAL) -> RequestRecord:
    return make_record(
        state,
        justification=HOSTILE + "\n> quoted\n```",
        ticket=HOSTILE,
        machine_name=HOSTILE,
        machine=machine(name=HOSTILE, rbac_group_name=HOSTILE, machine_tags=[HOSTILE]),
        commands=CommandSequence.of(
            RunScript(script_name="x.ps1", args=HOSTILE), GetFile(path="C:\\" + HOSTILE)
        ),
        note=HOSTILE,
        action_status=HOSTILE if state is RequestState.FINISHED else None,
    )


@pytest.mark.parametrize("state", list(RequestState))
def test_user_markup_is_inert_in_the_request(state: RequestState) -> None:
    message = request_message(hostile_record(state), NOW)
    check_message(message)
    assert_inert(message)
    assert "&lt;!channel&gt;" in message.text


def test_user_markup_is_inert_in_replies() -> None:
    record = hostile_record(RequestState.IN_PROGRESS)
    output = RunScriptOutput(exit_code=1, script_output=HOSTILE, script_errors=HOSTILE)
    messages = [
        *every_reply(record),
        reply_waiting(record, HOSTILE),
        reply_command(record, 1, HOSTILE, HOSTILE),
        reply_refused(record, HOSTILE),
        reply_result_error(record, 1, HOSTILE),
        reply_runscript_result(record, 1, output, 10, HOSTILE, 2000),
        reply_cancelled(record, HOSTILE),
    ]
    for message in messages:
        check_message(message)
        assert_inert(message)
    comment = result_file_comment(record, 2, 10, HOSTILE)
    assert "<!channel>" not in comment and "<@U666>" not in comment


def test_long_values_stay_within_limits() -> None:
    long_path = "C:\\" + "\\".join(["directory-name"] * 68)
    record = make_record(
        RequestState.FINISHED,
        justification="why " * 750,
        ticket="T" * 3000,
        commands=CommandSequence.of(
            RunScript(script_name="s" * 200, args="<" * MAX_ARGS_LENGTH),
            *[RunScript(script_name="r.ps1", args="a" * MAX_ARGS_LENGTH)] * 4,
            *[GetFile(path=long_path)] * 5,
        ),
        command_states=tuple(CommandState("Failed", "&" * 3000) for _ in range(10)),
        machine=machine(machine_tags=["tag" * 100] * 50, name="n" * 3000),
    )
    for state in RequestState:
        message = request_message(record.with_changes(state=state), NOW)
        check_message(message)
        assert len(message.text) <= 4000
    message = request_message(record, NOW)
    assert "characters in full" in json.dumps(message.blocks)
    for reply in every_reply(record):
        check_message(reply)


def test_worst_case_everything_at_its_longest_and_escaped() -> None:
    """Every field long and made of characters that grow fourfold when escaped."""
    worst = "<" * 3000
    record = make_record(
        RequestState.FINISHED,
        justification=worst,
        ticket=worst,
        commands=CommandSequence.of(
            *[RunScript(script_name="s" * 255, args="<" * MAX_ARGS_LENGTH)] * 5,
            *[GetFile(path="C:\\" + "<" * 1020)] * 5,
        ),
        command_states=tuple(CommandState("Failed", worst) for _ in range(10)),
        machine={key: worst for key in machine()} | {"machine_tags": [worst] * 50},
        note=worst,
        action_id=worst,
        action_status=worst,
        cancelled_by=worst,
        decided_by=worst,
    )
    for state in RequestState:
        check_message(request_message(record.with_changes(state=state), NOW))
    for reply in every_reply(record):
        check_message(reply)


def test_short_commands_are_never_shortened() -> None:
    record = make_record(
        RequestState.AWAITING_APPROVAL,
        commands=CommandSequence.of(*[GetFile(path="C:\\" + "p" * 460)] * 10),
    )
    assert "shortened" not in json.dumps(request_message(record, NOW).blocks)


# --- thread replies ------------------------------------------------------------------------


@pytest.mark.parametrize("record", ALL_RECORDS, ids=ids)
def test_every_reply_is_valid(record: RequestRecord) -> None:
    for message in every_reply(record):
        check_message(message)
        assert len(message.blocks) <= 10


def test_reply_texts_carry_the_facts() -> None:
    record = make_record(RequestState.IN_PROGRESS)
    assert "act-9c1e" in reply_submitted(record).text
    assert "2025-03-01 03:05 UTC" in reply_submitted(record).text
    assert "the device is offline" in reply_waiting(record, "the device is offline").text
    assert "ws-0423.corp.example" in reply_started(record).text
    assert reply_command(record, 2, "Completed", None).text == (
        "Command 2 of 3 (runscript collect.ps1 -Days 3): Completed"
    )
    failed = reply_command(record, 2, "Failed", "access denied").text
    assert failed == "Command 2 of 3 (runscript collect.ps1 -Days 3): Failed — access denied"
    skipped = reply_skipped(finished("Failed"), [3]).text
    assert "command 2 failed" in skipped and "getfile C:\\Windows\\Temp\\collect.zip" in skipped
    final = reply_final(finished("TimeOut"), 252).text
    assert "TimeOut after 4 min 12 s" in final
    cancelled = reply_cancelled(finished("Cancelled"), "UCANC3").text
    assert "<@UCANC3> cancelled" in cancelled and "Defender confirms: Cancelled" in cancelled
    assert (
        "Waiting for Defender"
        in reply_cancelled(record.with_changes(action_status=None), "U1").text
    )
    assert "expired" in reply_expired(make_record(RequestState.EXPIRED)).text
    refused = reply_refused(record, "Machine is offline.").text
    assert refused == "Defender refused to run it: Machine is offline. Nothing ran."
    assert "Approved by <@UAPPR2>" in reply_decision(make_record(RequestState.APPROVED)).text
    assert "Rejected by <@UAPPR2>" in reply_decision(make_record(RequestState.REJECTED)).text
    assert "Withdrawn by the requester" in reply_decision(make_record(RequestState.WITHDRAWN)).text
    assert "expired" in reply_decision(make_record(RequestState.EXPIRED)).text
    large = reply_result_too_large(record, 3, "big.bin", 5 * 10**9, "cd" * 32, 3 * 10**9, "N.")
    assert "is over the 3.0 GB limit for posting here, so it is not uploaded" in large.text
    assert f"big.bin, 5.0 GB (5,000,000,000 bytes), SHA-256 {'cd' * 32}. N." in large.text
    bomb = reply_result_too_large(record, 3, "b.gz", 4 * 2**30, None, 3 * 10**9, "N.").text
    assert "b.gz, more than 4.3 GB (4,294,967,296 bytes)" in bomb and "no SHA-256" in bomb
    assert (
        "the download link expired"
        in reply_result_error(record, 3, "the download link expired").text
    )


def test_out_of_range_position_does_not_crash() -> None:
    record = make_record(RequestState.IN_PROGRESS)
    check_message(reply_command(record, 9, "Completed", None))
    check_message(reply_skipped(record, [0, 9]))


def test_runscript_result_inline_and_attached() -> None:
    record = make_record(RequestState.FINISHED)
    output = RunScriptOutput(exit_code=3, script_output="line 1\nline 2", script_errors="warn")
    inline = reply_runscript_result(record, 2, output, 1234, "ab" * 32, 100)
    check_message(inline)
    blob = json.dumps(inline.blocks)
    assert "```line 1\\nline 2```" in blob and "warn" in blob
    assert "exited with code 3" in inline.text
    assert "1.2 kB (1,234 bytes)" in inline.text and "ab" * 32 in inline.text
    attached = reply_runscript_result(record, 2, output, 1234, "ab" * 32, 5)
    assert "attached as a file" in attached.text
    assert "line 1" not in json.dumps(attached.blocks)
    none = reply_runscript_result(record, 2, RunScriptOutput(), 2, "cd" * 32, 100)
    assert "exited with code unknown" in none.text
    for message in (inline, attached, none):
        assert "http" not in message.text and "http" not in json.dumps(message.blocks)


def test_inline_output_follows_the_upload_rule_exactly() -> None:
    assert output_fits_inline("x" * 100, 100)
    assert not output_fits_inline("x" * 101, 100)
    record = make_record(RequestState.FINISHED)
    # 2,800 characters that escape to 11,200: shown in several blocks, shortened, never "attached".
    big = RunScriptOutput(exit_code=0, script_output="<" * 2800, script_errors="e" * 9000)
    message = reply_runscript_result(record, 2, big, 10, "ab" * 32, 2800)
    check_message(message)
    assert "attached" not in message.text
    assert "shortened here: 2,800 characters in all" in json.dumps(message.blocks)
    # Output that fits is shown whole, across blocks if escaping makes it long.
    xml = "<a>&</a>\n" * 280
    message = reply_runscript_result(record, 2, RunScriptOutput(script_output=xml), 1, "a", 2800)
    check_message(message)
    shown = "".join(
        t.split("```")[1]
        for t in mrkdwn_texts(message.blocks)
        if t.startswith("*Output*") or t.startswith("```")
    )
    assert "shortened" not in json.dumps(message.blocks)
    assert shown == escape(xml)


def test_code_blocks_split_without_losing_a_character() -> None:
    text = "a`b``c```d<&>" * 300
    blocks, whole = code_blocks(text, 500, 100_000)
    assert whole and all(len(b) <= 500 for b in blocks)
    joined = "".join(b[3:-3] for b in blocks).replace("\u200b", "")
    assert joined == escape(text)
    blocks, whole = code_blocks(text, 500, 1000)
    assert not whole and sum(len(b) for b in blocks) <= 1000


def test_result_file_comment() -> None:
    record = make_record(RequestState.FINISHED)
    comment = result_file_comment(record, 3, 4_200_000, "ef" * 32)
    assert "Command 3 of 3 (getfile C:\\Windows\\Temp\\collect.zip)" in comment
    assert "4.2 MB (4,200,000 bytes)" in comment and "ef" * 32 in comment


# --- fuzz ----------------------------------------------------------------------------------

_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=3000)
_line = st.text(st.characters(exclude_categories=["Cs", "Cc"]), min_size=1, max_size=1000)


def _commands(args: str, path: str) -> CommandSequence:
    try:
        return CommandSequence.of(
            RunScript(script_name="s.ps1", args=args), GetFile(path="C:\\" + path)
        )
    except (CommandError, ValueError):
        return sequence()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    justification=_text,
    ticket=st.text(st.characters(exclude_categories=["Cs"]), max_size=300),
    device=st.text(st.characters(exclude_categories=["Cs"]), max_size=500),
    args=_line,
    path=_line,
    state=st.sampled_from(list(RequestState)),
)
def test_fuzz_views_stay_valid(
    justification: str, ticket: str, device: str, args: str, path: str, state: RequestState
) -> None:
    record = make_record(
        state,
        justification=justification,
        ticket=ticket or None,
        machine_name=device,
        machine=machine(name=device, rbac_group_name=device, machine_tags=[device]),
        commands=_commands(args, path),
        note=justification,
        command_states=(CommandState("Failed", ticket),),
    )
    check_message(request_message(record, NOW))
    output = RunScriptOutput(exit_code=1, script_output=justification, script_errors=ticket)
    check_message(reply_runscript_result(record, 1, output, 5, "ab" * 32, 2500))
    check_message(reply_command(record, 1, "Failed", justification))
    values = ModalValues(
        device=device,
        rows=[("RunScript", args), (None, path)],
        commands_text=justification,
        justification=justification,
        ticket=ticket,
    )
    view = request_modal(ModalMetadata(channel_id="CSOC1", rows=2), values)
    View(**view).to_dict()
    check_blocks(view["blocks"], 100)


def test_large_result_note_fills_known_fields_only() -> None:
    record = make_record(RequestState.FINISHED)
    note = large_result_note(
        "Portal: {action_id}, command {command} of {request_id} on {device}: {file} {other}",
        record,
        3,
        "a.txt",
    )
    assert note == "Portal: act-9c1e, command 3 of req-7f3a on ws-0423.corp.example: a.txt {other}"
    default = large_result_note(DEFAULT_LARGE_RESULT_NOTE, record, 2, "x")
    assert "Microsoft Defender portal" in default and "Action center" in default
    assert "action act-9c1e, command 2" in default


def test_large_result_note_setting_refuses_unknown_fields() -> None:
    settings = load_bot_settings(_env_file=None, LRBOT_LARGE_RESULT_NOTE="Ask {device}.")
    assert settings.large_result_note == "Ask {device}."
    assert load_bot_settings(_env_file=None).large_result_note == DEFAULT_LARGE_RESULT_NOTE
    with pytest.raises(ConfigurationError, match=r"LRBOT_LARGE_RESULT_NOTE: \{host\} is not"):
        load_bot_settings(_env_file=None, LRBOT_LARGE_RESULT_NOTE="Ask {host}.")


def test_request_message_shows_the_preflight_and_the_playbook_while_open() -> None:
    findings = [
        {"level": "ok", "text": "Onboarded to Defender."},
        {"level": "warn", "text": f"Last seen long ago {HOSTILE}"},
        {"level": "block", "text": "x" * 5000},
        "not a finding",
    ]
    card = machine(
        preflight=findings,
        playbook={"name": "collect-triage", "params": {"case": "IR-7"}},
    )
    open_record = make_record(RequestState.AWAITING_APPROVAL, machine=card)
    message = request_message(open_record, NOW)
    check_message(message)
    assert_inert(message)
    texts = mrkdwn_texts(message.blocks)
    [preflight] = [t for t in texts if t.startswith("*Preflight*")]
    lines = preflight.splitlines()
    assert lines[1] == "✅ Onboarded to Defender."
    assert lines[2].startswith("⚠️ Last seen long ago &lt;!channel&gt;")
    assert lines[3].startswith("⛔ xxx") and len(lines[3]) < 1000
    assert len(lines) == 4  # what is not a finding is left out
    assert any(
        "*Playbook* `collect-triage` (case=IR-7), expanded in full below" in t for t in texts
    )
    # Closed, the request says what happened instead.
    closed = make_record(RequestState.REJECTED, machine=card)
    assert not any(
        t.startswith("*Preflight*") for t in mrkdwn_texts(request_message(closed, NOW).blocks)
    )
