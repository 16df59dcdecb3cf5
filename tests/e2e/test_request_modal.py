"""Asking for a run: ``/liveresponse``, the modal, its field errors, and the request message.

Everything is seen as the analyst sees it: the slash command's answer, the modal Slack shows
(what ``views.open``/``views.update`` sent), the errors under the fields, and the channel.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from bot.ids import Action, Block, row_block
from bot.records import RequestState
from bot.sandbox import FakeSlack
from bot.sandbox._slack_records import Message, OpenedView
from bot.sandbox.slack_requests import STALE, TAMPERED, WRONG_SECRET, Signing, state_values
from bot.views.common import utc_text
from commands.simulator import Fault
from tests.e2e.slack_checks import assert_slack_accepts_everything_sent
from tests.helpers.bot import (
    APPROVER,
    APPROVER_2,
    CHANNEL,
    JUSTIFICATION,
    LEADS,
    REQUESTER,
    BotHarness,
    running_bot,
)
from tests.helpers.defender import machine

DEVICE = str(Block.DEVICE)
TEXT = str(Block.COMMANDS_TEXT)
WHY = str(Block.JUSTIFICATION)
TICKET = str(Block.TICKET)

pytestmark = pytest.mark.usefixtures("no_errors_logged")


# --- helpers ---------------------------------------------------------------------------------


def slack_escaped(text: str) -> str:
    """Slash-command text as Slack sends it: ``&``, ``<`` and ``>`` HTML-escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def initial_values(view: dict[str, Any]) -> dict[str, str]:
    """What each input of the modal shows before anyone types: ``{block_id: value}``."""
    filled = {}
    for block in view["blocks"]:
        element = block.get("element") or {}
        if block["type"] != "input":
            continue
        if "initial_value" in element:
            filled[block["block_id"]] = element["initial_value"]
        elif "initial_option" in element:
            filled[block["block_id"]] = element["initial_option"]["value"]
    return filled


def input_blocks(view: dict[str, Any]) -> list[str]:
    return [b["block_id"] for b in view["blocks"] if b["type"] == "input"]


def buttons_in(view: dict[str, Any]) -> set[str]:
    return {e["action_id"] for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]}


def click_in_modal(
    bot: BotHarness, opened: OpenedView, action: Action, typed: dict[str, str]
) -> OpenedView:
    """Click a modal button with ``typed`` in the inputs, as Slack sends it; the updated modal."""
    current = bot.slack.view(opened.id)
    view = copy.deepcopy(current.view)
    values = {block: {str(Action.VALUE): value} for block, value in typed.items()}
    view["state"] = {"values": state_values(values, view["blocks"])}
    answer = bot.send.block_action(str(action), user_id=REQUESTER, view=view)
    assert answer.status_code == 200, answer.text
    return modal_updated(bot, opened.id, current.updates + 1)


def modal_updated(bot: BotHarness, view_id: str, updates: int) -> OpenedView:
    """The modal once ``views.update`` has changed it ``updates`` times."""
    bot.wait(lambda: bot.slack.view(view_id).updates >= updates, f"update {updates} of the modal")
    return bot.slack.view(view_id)


def assert_nothing_requested(bot: BotHarness) -> None:
    """No request stored, so nothing is (or will be) posted; and nothing was."""
    assert bot.store_runtime.store.in_states(list(RequestState)) == []
    assert bot.slack.messages(CHANNEL, include_replies=True) == []
    assert bot.slack.call_count("chat.postMessage") == 0


def section_texts(message: Message) -> list[str]:
    """Every mrkdwn or plain text the message's blocks show, in order."""
    texts: list[str] = []
    for block in message.blocks:
        if block["type"] in ("header", "section"):
            texts.append(block["text"]["text"])
        texts += [f["text"] for f in block.get("fields", [])]
        if block["type"] == "context":
            texts += [e["text"] for e in block["elements"]]
    return texts


def shown(message: Message) -> str:
    return "\n".join(section_texts(message))


# --- /liveresponse help ----------------------------------------------------------------------


@pytest.mark.parametrize("word", ["help", "HELP", "  Help "])
def test_help_answers_ephemerally_with_usage_and_opens_no_modal(tmp_path: Path, word: str) -> None:
    with running_bot(tmp_path) as bot:
        answer = bot.send.slash_command(word, user_id=REQUESTER, channel_id=CHANNEL)

        assert answer.status_code == 200
        body = answer.json()
        assert body["response_type"] == "ephemeral"
        assert "/liveresponse &lt;device&gt; &lt;commands&gt;" in body["text"]
        for verb in ("putfile", "runscript", "getfile"):
            assert f"`{verb} &lt;" in body["text"]
        assert "second analyst" in body["text"]

        # The next command does open a modal: it is the first view, so help opened none.
        bot.slash("")
        assert bot.slack.call_count("views.open") == 1
        assert bot.slack.response_posts() == []
        assert_nothing_requested(bot)


# --- prefilled modal -------------------------------------------------------------------------


def test_slash_text_prefills_the_modal_and_its_values_are_accepted(tmp_path: Path) -> None:
    with running_bot(tmp_path) as bot:
        opened = bot.slash("ws-001.contoso.com getfile C:\\Temp\\a.txt")

        assert opened.callback_id == "lr_request"
        prefilled = initial_values(opened.view)
        assert prefilled == {DEVICE: "ws-001.contoso.com", TEXT: "getfile C:\\Temp\\a.txt"}

        answer = bot.submit(opened, {**prefilled, WHY: JUSTIFICATION})

        assert answer == {}
        message = bot.wait(lambda: bot.slack.messages(CHANNEL)[0], "the request message")
        assert "getfile C:\\Temp\\a.txt" in shown(message)
        assert "ws-001.contoso.com" in message.text
        [record] = bot.store_runtime.store.in_states([RequestState.AWAITING_APPROVAL])
        assert record.requester == REQUESTER and record.channel == CHANNEL
        assert_slack_accepts_everything_sent(bot.slack)


def test_slack_escaping_of_slash_text_is_undone(tmp_path: Path) -> None:
    typed = 'runscript ok.ps1 -Filter "a&b" -Out <none>; getfile "C:\\Temp\\R&amp;D.txt"'
    with running_bot(tmp_path) as bot:
        opened = bot.slash(slack_escaped(f"ws-001.contoso.com {typed}"))

        # What the analyst typed, not Slack's escaping of it (and a typed "&amp;" stays so).
        assert initial_values(opened.view)[TEXT] == typed

        assert bot.submit(opened, {DEVICE: "ws-001.contoso.com", TEXT: typed, WHY: "x"}) == {}
        bot.wait(lambda: bot.slack.messages(CHANNEL), "the request message")
        [record] = bot.store_runtime.store.in_states([RequestState.AWAITING_APPROVAL])
        script, getfile = record.commands.commands
        assert script.args == '-Filter "a&b" -Out <none>'  # type: ignore[union-attr]
        assert getfile.path == "C:\\Temp\\R&amp;D.txt"  # type: ignore[union-attr]


# --- field errors ----------------------------------------------------------------------------

TWO_ROWS = 2


def _rows(*rows: tuple[str | None, str]) -> dict[str, str]:
    typed = {}
    for index, (kind, value) in enumerate(rows):
        if kind:
            typed[row_block(index, "type")] = kind
        if value:
            typed[row_block(index, "value")] = value
    return typed


# (case, rows in the modal, what is typed, the one block with an error, words it must say)
FIELD_ERRORS: list[tuple[str, int, dict[str, str], str, list[str]]] = [
    (
        "unknown host",
        1,
        {DEVICE: "nope-9.contoso.com", TEXT: "getfile C:\\Temp\\a.txt"},
        DEVICE,
        ["nope-9.contoso.com"],
    ),
    (
        "ambiguous host lists the candidates",
        1,
        {DEVICE: "ws-001", TEXT: "getfile C:\\Temp\\a.txt"},
        DEVICE,
        ["2 machines", "ws-001.contoso.com", "ws-001.fabrikam.com"],
    ),
    (
        "two machines with one name are told apart by id",
        1,
        {DEVICE: "twin.contoso.com", TEXT: "getfile C:\\Temp\\a.txt"},
        DEVICE,
        [f"twin.contoso.com ({machine(7)})", f"twin.contoso.com ({machine(8)})"],
    ),
    (
        "unknown machine id",
        1,
        {DEVICE: machine(99), TEXT: "getfile C:\\Temp\\a.txt"},
        DEVICE,
        ["No machine in Defender has this id"],
    ),
    (
        "getfile before putfile names the command",
        1,
        {DEVICE: "ws-001.contoso.com", TEXT: "getfile C:\\Temp\\a.txt; putfile tool.exe"},
        TEXT,
        ["command 2", "PutFile tool.exe", "move it up"],
    ),
    (
        "unknown library file",
        1,
        {DEVICE: "ws-001.contoso.com", TEXT: "putfile nope.exe"},
        TEXT,
        ["nope.exe is not in the live response library", "tool.exe"],
    ),
    (
        "relative path",
        1,
        {DEVICE: "ws-001.contoso.com", TEXT: "getfile Temp\\a.txt"},
        TEXT,
        ["Temp\\a.txt", "not absolute"],
    ),
    (
        "rows and text both filled",
        1,
        {
            DEVICE: "ws-001.contoso.com",
            TEXT: "getfile C:\\Temp\\a.txt",
            **_rows(("GetFile", "C:\\Temp\\b.txt")),
        },
        TEXT,
        ["either the command rows or this text"],
    ),
    ("no commands", 1, {DEVICE: "ws-001.contoso.com"}, TEXT, ["at least one command"]),
    (
        "a row with a type but no value",
        1,
        {DEVICE: "ws-001.contoso.com", **_rows(("GetFile", ""))},
        row_block(0, "value"),
        ["GetFile needs a value"],
    ),
    (
        "a row with a value but no type",
        1,
        {DEVICE: "ws-001.contoso.com", **_rows((None, "tool.exe"))},
        row_block(0, "type"),
        ["Pick PutFile, RunScript or GetFile"],
    ),
    (
        "second row out of order",
        TWO_ROWS,
        {DEVICE: "ws-001.contoso.com", **_rows(("GetFile", "C:\\a.txt"), ("PutFile", "tool.exe"))},
        row_block(1, "value"),
        ["PutFile tool.exe", "move it up"],
    ),
    (
        "second row's script not in the library",
        TWO_ROWS,
        {DEVICE: "ws-001.contoso.com", **_rows(("PutFile", "tool.exe"), ("RunScript", "x.ps1"))},
        row_block(1, "value"),
        ["x.ps1 is not in the live response library"],
    ),
    (
        "second row's relative path",
        TWO_ROWS,
        {DEVICE: "ws-001.contoso.com", **_rows(("PutFile", "tool.exe"), ("GetFile", "a.txt"))},
        row_block(1, "value"),
        ["'a.txt' is not absolute"],
    ),
]


@pytest.mark.parametrize(
    ("rows", "typed", "block", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in FIELD_ERRORS],
)
def test_field_errors_land_under_the_field_and_nothing_is_posted(
    tmp_path: Path, rows: int, typed: dict[str, str], block: str, words: list[str]
) -> None:
    with running_bot(tmp_path) as bot:
        opened = bot.slash("")
        for _ in range(rows - 1):
            opened = click_in_modal(bot, opened, Action.ADD_ROW, {})

        answer = bot.submit(opened, {WHY: JUSTIFICATION, **typed})

        assert answer["response_action"] == "errors"
        assert list(answer["errors"]) == [block]
        for word in words:
            assert word in answer["errors"][block]
        assert block in input_blocks(opened.view)  # Slack refuses errors on unknown blocks
        assert_nothing_requested(bot)
        assert bot.slack.view(opened.id).updates == rows - 1  # the modal itself is unchanged


@pytest.mark.parametrize("why", ["", "  \n "], ids=["empty", "blank"])
def test_missing_justification_is_a_field_error(tmp_path: Path, why: str) -> None:
    with running_bot(tmp_path) as bot:
        opened = bot.slash("ws-001.contoso.com getfile C:\\Temp\\a.txt")

        answer = bot.submit(opened, {**initial_values(opened.view), WHY: why})

        assert answer == {
            "response_action": "errors",
            "errors": {WHY: "Say why this run is needed: the approver reads it."},
        }
        assert_nothing_requested(bot)


@pytest.mark.parametrize(
    ("path", "block"), [("^/api/machines$", DEVICE), ("^/api/libraryfiles$", TEXT)]
)
def test_defender_refusing_a_lookup_is_said_under_the_field(
    tmp_path: Path, path: str, block: str
) -> None:
    with running_bot(tmp_path) as bot:
        bot.defender.sim.fault(Fault(method="GET", path_regex=path, status=403))
        opened = bot.slash("ws-001.contoso.com getfile C:\\Temp\\a.txt")

        answer = bot.submit(opened, {**initial_values(opened.view), WHY: JUSTIFICATION})

        assert list(answer["errors"]) == [block]
        assert answer["errors"][block].startswith("Defender refused the lookup: ")
        assert "403" in answer["errors"][block]
        assert_nothing_requested(bot)

        # Submitting again once Defender answers goes through.
        assert bot.submit(opened, {**initial_values(opened.view), WHY: JUSTIFICATION}) == {}
        bot.wait(lambda: bot.slack.messages(CHANNEL), "the request message")


@pytest.mark.parametrize(
    ("typed", "name"),
    [
        ("WS-001.Contoso.com.", "ws-001.contoso.com"),
        (machine(1), "ws-001.contoso.com"),
        ("ws-0011", "ws-0011.contoso.com"),
        ("laptop", "laptop-7.contoso.com"),
    ],
    ids=["case and trailing dot", "machine id", "first label", "unique prefix"],
)
def test_the_device_may_be_named_loosely(tmp_path: Path, typed: str, name: str) -> None:
    with running_bot(tmp_path) as bot:
        message = bot.request(typed, "getfile C:\\Temp\\a.txt")

        assert f"*Name*\n{name}" in shown(message)


def test_a_form_the_bot_cannot_read_asks_for_a_fresh_one(tmp_path: Path) -> None:
    with running_bot(tmp_path) as bot:
        opened = bot.slash("ws-001.contoso.com getfile C:\\Temp\\a.txt")
        old = copy.deepcopy(opened.view) | {"private_metadata": '{"version": 0}'}
        values = {**initial_values(opened.view), WHY: JUSTIFICATION}
        state = {block: {str(Action.VALUE): value} for block, value in values.items()}

        answer = bot.send.view_submission(old, REQUESTER, state).json()

        assert answer["errors"] == {
            WHY: "This form is out of date: close it and run the slash command again."
        }
        assert_nothing_requested(bot)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    with running_bot(tmp_path) as bot:
        opened = bot.slash("")

        answer = bot.submit(opened, {DEVICE: "ws-001", TEXT: "putfile nope.exe"})

        assert set(answer["errors"]) == {DEVICE, TEXT, WHY}
        assert_nothing_requested(bot)
        assert_slack_accepts_everything_sent(bot.slack)


# --- command rows ----------------------------------------------------------------------------


def test_rows_grow_and_shrink_keeping_what_was_typed_then_submit(tmp_path: Path) -> None:
    with running_bot(tmp_path) as bot:
        opened = bot.slash("ws-001.contoso.com")
        assert buttons_in(opened.view) == {str(Action.ADD_ROW)}  # one row: nothing to remove
        typed = {
            DEVICE: "ws-001.contoso.com",
            **_rows(("PutFile", "tool.exe")),
            WHY: JUSTIFICATION,
            TICKET: "INC-7",
        }

        two = click_in_modal(bot, opened, Action.ADD_ROW, typed)

        assert input_blocks(two.view) == [
            DEVICE,
            row_block(0, "type"),
            row_block(0, "file"),
            row_block(0, "value"),
            row_block(1, "type"),
            row_block(1, "file"),
            row_block(1, "value"),
            TEXT,
            WHY,
            TICKET,
        ]
        assert initial_values(two.view) == typed
        assert buttons_in(two.view) == {str(Action.ADD_ROW), str(Action.REMOVE_ROW)}

        typed |= _rows(("PutFile", "tool.exe"), ("RunScript", "ok.ps1 -Days 3 -Tag a&b"))
        three = click_in_modal(bot, two, Action.ADD_ROW, typed)
        typed |= {row_block(2, "type"): "GetFile", row_block(2, "value"): "C:\\Temp\\a.txt"}
        four = click_in_modal(bot, three, Action.ADD_ROW, typed)
        assert row_block(3, "value") in input_blocks(four.view)
        assert initial_values(four.view) == typed

        # A half-filled last row goes when it is removed; the others stay as typed.
        three_again = click_in_modal(
            bot, four, Action.REMOVE_ROW, typed | {row_block(3, "type"): "GetFile"}
        )
        assert row_block(3, "type") not in input_blocks(three_again.view)
        assert initial_values(three_again.view) == typed
        assert three_again.view["private_metadata"] == three.view["private_metadata"]

        answer = bot.submit(three_again, typed)

        assert answer == {}
        message = bot.wait(lambda: bot.slack.messages(CHANNEL)[0], "the request message")
        commands = [t for t in section_texts(message) if "```" in t]
        assert commands == [
            "*1.*\n```putfile tool.exe```",
            "*2.*\n```runscript ok.ps1 -Days 3 -Tag a&amp;b```",
            "*3.*\n```getfile C:\\Temp\\a.txt```",
        ]
        assert "*Ticket* INC-7" in shown(message)
        assert_slack_accepts_everything_sent(bot.slack)


def test_remove_last_never_goes_below_one_row(tmp_path: Path) -> None:
    with running_bot(tmp_path) as bot:
        opened = bot.slash("")
        two = click_in_modal(bot, opened, Action.ADD_ROW, {})
        one = click_in_modal(bot, two, Action.REMOVE_ROW, _rows(("GetFile", "C:\\x")))

        assert [b for b in input_blocks(one.view) if b.startswith("row_")] == [
            row_block(0, "type"),
            row_block(0, "file"),
            row_block(0, "value"),
        ]
        assert initial_values(one.view)[row_block(0, "value")] == "C:\\x"
        assert buttons_in(one.view) == {str(Action.ADD_ROW)}


# --- the request message ---------------------------------------------------------------------


def test_request_message_shows_who_why_the_device_the_expiry_and_the_buttons(
    tmp_path: Path,
) -> None:
    with running_bot(tmp_path) as bot:
        message = bot.request(
            "ws-001.contoso.com",
            "getfile C:\\Temp\\a.txt",
            justification="Alert 42: <!channel> beacon & more",
            ticket="INC-1234",
        )
        record = bot.wait(lambda: bot.record(message), "the message's ts in the store")
        text = shown(message)

        assert f"*Requested by* <@{REQUESTER}>" in text
        assert ">Alert 42: &lt;!channel&gt; beacon &amp; more" in text  # quoted, inert
        assert "*Ticket* INC-1234" in text
        for field in (
            "*Name*\nws-001.contoso.com",
            f"*Machine id*\n`{record.machine_id}`",
            "*OS*\nWindows11 22H2",
            "*Health*\nActive",
            "*Device group*\nWorkstations",
        ):
            assert field in text
        assert "not Active" not in text
        assert f"Approval expires <!date^{int(record.expires_at.timestamp())}^" in text
        assert f"|{utc_text(record.expires_at)}>" in text
        assert 59 * 60 < (record.expires_at - record.created_at).total_seconds() <= 60 * 60
        assert bot.buttons(message) == {
            str(Action.APPROVE),
            str(Action.REJECT),
            str(Action.WITHDRAW),
        }
        assert record.id in message.text and "awaiting approval" in message.text
        assert bot.slack.thread(CHANNEL, message.ts) == []
        assert_slack_accepts_everything_sent(bot.slack)


def test_inactive_device_warns_that_the_run_will_queue(tmp_path: Path) -> None:
    with running_bot(tmp_path) as bot:
        message = bot.request("laptop-7", "putfile tool.exe")

        assert "*Health*\nInactive" in shown(message)
        assert "not Active (health: Inactive): the run will queue until it connects" in shown(
            message
        )
        assert "laptop-7.contoso.com" in message.text


# --- who may request -------------------------------------------------------------------------


def test_someone_not_on_the_requesters_list_gets_a_notice_and_cannot_submit(
    tmp_path: Path,
) -> None:
    with running_bot(tmp_path, env={"LRBOT_REQUESTERS": APPROVER}) as bot:
        opened = bot.slash("ws-001.contoso.com getfile C:\\Temp\\a.txt")
        notice = modal_updated(bot, opened.id, 1)

        assert notice.callback_id == "" and notice.view["submit"] is None  # nothing to submit
        said = notice.view["blocks"][0]["text"]["text"]
        assert "not on the list of people who may request" in said

        # Submitting the form anyway (it was open before the update) is refused.
        form = notice.history[0]
        values = {**initial_values(form), WHY: JUSTIFICATION}
        state = {block: {str(Action.VALUE): value} for block, value in values.items()}
        answer = bot.send.view_submission(form, REQUESTER, state).json()

        assert answer["response_action"] == "errors"
        assert "not on the list" in answer["errors"][DEVICE]
        assert_nothing_requested(bot)

        # Someone on the list may ask.
        message = bot.request("ws-001.contoso.com", "getfile C:\\Temp\\a.txt", user=APPROVER)
        assert f"<@{APPROVER}>" in message.text
        assert bot.slack.views()[-1].updates == 0
        assert_slack_accepts_everything_sent(bot.slack)


def test_a_user_group_may_be_the_requesters_list(tmp_path: Path) -> None:
    with running_bot(tmp_path, env={"LRBOT_REQUESTERS": LEADS}) as bot:
        message = bot.request("ws-001.contoso.com", "getfile C:\\Temp\\a.txt", user=APPROVER_2)
        assert f"<@{APPROVER_2}>" in message.text

        opened = bot.slash("", user=REQUESTER)

        assert (
            "not on the list" in modal_updated(bot, opened.id, 1).view["blocks"][0]["text"]["text"]
        )
        assert {c.params["usergroup"] for c in bot.slack.calls("usergroups.users.list")} == {LEADS}


# --- signatures ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "signing", [TAMPERED, WRONG_SECRET, STALE], ids=["tampered", "wrong secret", "stale"]
)
def test_badly_signed_commands_and_submissions_are_refused_without_effect(
    tmp_path: Path, signing: Signing
) -> None:
    with running_bot(tmp_path) as bot:
        forged = bot.send.slash_command(
            "ws-001.contoso.com getfile C:\\Temp\\a.txt",
            user_id=REQUESTER,
            channel_id=CHANNEL,
            signing=signing,
        )
        assert forged.status_code == 401
        assert bot.slack.call_count("views.open") == 0
        assert bot.defender.api_requests() == []  # not even a device lookup

        opened = bot.slash("ws-001.contoso.com getfile C:\\Temp\\a.txt")
        values = {**initial_values(opened.view), WHY: JUSTIFICATION}
        state = {block: {str(Action.VALUE): value} for block, value in values.items()}
        forged = bot.send.view_submission(opened, REQUESTER, state, signing=signing)
        assert forged.status_code == 401
        assert_nothing_requested(bot)

        # The same submission, signed, goes through: the refusal was the signature's doing.
        assert bot.submit(opened, values) == {}
        bot.wait(lambda: bot.slack.messages(CHANNEL), "the request message")
        assert len(bot.store_runtime.store.in_states(list(RequestState))) == 1


def test_slack_sdk_validation_helper_sees_every_kind_of_call(tmp_path: Path) -> None:
    """The helper is no rubber stamp: it refuses a duplicate block id and an unknown block."""
    with FakeSlack(token="xoxb-test-token") as slack:
        client = slack.client()
        section = {"type": "section", "block_id": "a", "text": {"type": "mrkdwn", "text": "x"}}
        client.chat_postMessage(channel=CHANNEL, text="ok", blocks=[section])
        assert assert_slack_accepts_everything_sent(slack) == 1
        client.chat_postMessage(channel=CHANNEL, text="dup", blocks=[section, section])
        with pytest.raises(AssertionError, match="duplicate block ids"):
            assert_slack_accepts_everything_sent(slack)
