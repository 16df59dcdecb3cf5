"""Hostile input at the pure level: the modal's reader, the text syntax and the views.

Whatever Slack (or someone forging Slack) sends, ``bot.modal`` reads values that can be
stored and sent on (UTF-8, no NUL), the syntax answers a sequence or a ``CommandError`` that
says where, and the views never let typed markup ping anyone or break Slack's limits.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.ids import Action, Block, row_block
from bot.modal import MAX_ROWS, ModalMetadata, ModalValues, clean_text, read_metadata, read_values
from bot.records import CommandState, RequestState
from bot.views import (
    reply_command,
    reply_refused,
    reply_result_error,
    reply_runscript_result,
    reply_waiting,
    request_message,
    request_modal,
)
from commands.errors import CommandError, SyntaxProblem
from commands.models import CommandSequence, GetFile, RunScript
from commands.syntax import format_sequence, parse_sequence, split_device_and_commands
from commands.wire import RunScriptOutput
from tests.hostile import MARKUP, any_json, hostile_text
from tests.test_views import NOW, check_blocks, check_message, machine, make_record, mrkdwn_texts

# A failing example with a 100 KB string makes hypothesis warn that its repr is large; as an
# error (warnings are errors here) that warning would hide the failure it reports.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_BLOCKS = [str(b) for b in Block] + [row_block(i, p) for i in range(11) for p in ("type", "value")]


def _usable(text: str) -> bool:
    """Storable in any database and sendable as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _all_strings(values: ModalValues) -> list[str]:
    rows = [v for kind, v in values.rows] + [k for k, _ in values.rows if k]
    return [values.device, values.commands_text, values.justification, values.ticket, *rows]


# --- the modal -------------------------------------------------------------------------------


@st.composite
def state_values(draw: st.DrawFn) -> Any:
    """Anything from nonsense to almost-right ``view.state.values``."""
    shaped = st.dictionaries(
        st.sampled_from(_BLOCKS),
        st.dictionaries(
            st.sampled_from([str(Action.VALUE), "other"]),
            st.fixed_dictionaries(
                {},
                optional={
                    "type": st.sampled_from(["plain_text_input", "static_select"]),
                    "value": any_json() | hostile_text(),
                    "selected_option": any_json()
                    | st.fixed_dictionaries({"value": any_json() | hostile_text()}),
                },
            )
            | any_json(),
        )
        | any_json(),
    )
    return draw(shaped | any_json(st.sampled_from(_BLOCKS)) | any_json())


@FUZZ
@given(state_values(), st.integers(-(2**40), 2**40))
@example({"device": {"value": {"value": "ws\x00\ud800-1"}}}, 1)
def test_any_state_values_read_as_usable_modal_values(raw: Any, rows: int) -> None:
    values = read_values(raw, rows)
    assert isinstance(values, ModalValues)
    assert len(values.rows) == min(max(rows, 0), MAX_ROWS)
    for text in _all_strings(values):
        assert isinstance(text, str) and _usable(text), repr(text)
    for kind, _ in values.rows:
        assert kind in (None, "PutFile", "RunScript", "GetFile")


def test_a_nul_or_lone_surrogate_in_a_field_is_replaced_not_kept() -> None:
    """Regression: "\\u0000" and "\\ud800" arrive from Slack's JSON as they are; PostgreSQL
    refuses NUL in text and UTF-8 cannot encode a lone surrogate, so storing the request
    (or the device lookup's URL) failed with an exception the analyst never saw."""
    raw = {
        str(Block.DEVICE): {"value": {"value": "ws-001\x00"}},
        str(Block.JUSTIFICATION): {"value": {"value": "why \ud800 not"}},
    }
    values = read_values(raw, 1)
    assert values.device == "ws-001"
    assert values.justification == "why \ufffd not"
    assert clean_text("a\x00b\udfffc") == "ab\ufffdc"


@FUZZ
@given(hostile_text(4000) | st.builds(json.dumps, any_json()) | any_json())
def test_any_private_metadata_is_ours_or_none(raw: Any) -> None:
    meta = read_metadata(raw)
    if meta is not None:
        assert 1 <= meta.rows <= MAX_ROWS and len(meta.channel_id) <= 32


# --- the text syntax ---------------------------------------------------------------------------


_COMMANDISH = st.lists(
    st.tuples(
        st.sampled_from(["putfile ", "runscript a.ps1 ", "getfile C:\\", "getfile ", '"', ""]),
        hostile_text(60),
        st.sampled_from([";", "\n", "\r\n", "\r", " ; "]),
    ).map("".join),
    max_size=8,
).map("".join)


@FUZZ
@given(_COMMANDISH | hostile_text(3000))
def test_any_text_is_a_sequence_or_an_error_that_says_where(text: str) -> None:
    try:
        sequence = parse_sequence(text)
    except SyntaxProblem as problem:
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        assert 1 <= problem.line <= len(lines)
        assert 1 <= problem.column <= len(lines[problem.line - 1]) + 1
        assert str(problem).startswith(("line ", "command "))
        return
    except CommandError as problem:  # a rule over the whole sequence (order, count)
        assert problem.message
        return
    assert isinstance(sequence, CommandSequence)
    assert parse_sequence(format_sequence(sequence)) == sequence


@FUZZ
@given(hostile_text(3000))
def test_splitting_the_slash_command_never_fails(text: str) -> None:
    device, rest = split_device_and_commands(text)
    assert isinstance(device, str) and isinstance(rest, str)


# --- the views ---------------------------------------------------------------------------------

# The bot's own markup: mentions of the record's people, its channel, and dates.
_OURS = re.compile(r"<(@UREQ1|@UAPPR2|#CSOC1|!date\^[^<>]*)>")


def assert_no_user_markup(texts: list[str]) -> None:
    for text in texts:
        # Markup needs "<"; a ">" alone is at most the bot's own quote at a line start.
        assert "<" not in _OURS.sub("", text), text[:500]


def _sequence(args: str, path: str) -> CommandSequence:
    try:
        return CommandSequence.of(
            RunScript(script_name="s.ps1", args=args), GetFile(path="C:\\" + path)
        )
    except (CommandError, ValueError):
        return CommandSequence.of(GetFile(path="C:\\x"))


_FIELD = hostile_text(3000, surrogates=False)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=_FIELD,
    other=_FIELD,
    markup=st.lists(st.sampled_from(MARKUP), min_size=1, max_size=4).map(" ".join),
    state=st.sampled_from(list(RequestState)),
)
def test_typed_markup_never_pings_and_blocks_stay_within_limits(
    text: str, other: str, markup: str, state: RequestState
) -> None:
    hostile = f"{markup} {text[:2000]} {markup}"
    record = make_record(
        state,
        justification=hostile,
        ticket=(markup + other)[:200],
        machine_name=hostile[:300],
        machine=machine(name=hostile[:300], rbac_group_name=other, machine_tags=[markup]),
        commands=_sequence(markup, markup.replace("|", "_")),
        note=hostile,
        action_status=markup if state is RequestState.FINISHED else None,
        command_states=(CommandState(markup, hostile),),
    )
    output = RunScriptOutput(exit_code=1, script_output=hostile, script_errors=other)
    messages = [
        request_message(record, NOW),
        reply_command(record, 1, markup, hostile),
        reply_waiting(record, hostile),
        reply_refused(record, hostile),
        reply_result_error(record, 1, hostile),
        reply_runscript_result(record, 1, output, 10, markup, 2500),
    ]
    for message in messages:
        check_message(message)
        assert_no_user_markup([message.text, *mrkdwn_texts(message.blocks)])
    view = request_modal(
        ModalMetadata(channel_id="C1"),
        ModalValues(device=hostile[:300], commands_text=hostile, justification=other),
    )
    check_blocks(view["blocks"], 100)
    assert len(json.dumps(view)) < 100_000


def test_control_characters_in_script_output_do_not_blow_the_message_size() -> None:
    """Regression: 2,000 NULs fit the inline limit as characters but are 12,000 characters of
    JSON (``\\u0000`` each): the reply went past what Slack accepts. They show as U+FFFD."""
    record = make_record(RequestState.FINISHED)
    output = RunScriptOutput(exit_code=0, script_output="\x00\x1b" * 1000)
    message = reply_runscript_result(record, 2, output, 2000, "ab" * 32, 2500)
    check_message(message)
    assert (
        "\x00" not in json.dumps(message.blocks) and "\ufffd" in message.blocks[1]["text"]["text"]
    )
