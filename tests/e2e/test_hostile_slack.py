"""Every Slack payload shape, fuzzed, signed, against the bot's real endpoint.

Slash commands, clicks (approve, reject, withdraw, cancel, add and remove a row) and the
request form's submission are built the way Slack sends them, then broken by hypothesis:
fields removed, values of the wrong JSON type, 100 KB strings, unicode tricks, Slack markup.
Whatever arrives, the bot answers without a 5xx, logs no failure, keeps serving, creates
no request from it, and tells the person who typed something invalid what is wrong.

One bot serves a whole module (starting one per example would dominate the run time).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.ids import Action, Block, row_block
from bot.records import RequestRecord, RequestState
from bot.sandbox._slack_records import Message, OpenedView
from bot.sandbox.slack_requests import SignedRequest, interactivity_body
from tests.helpers.bot import CHANNEL, OUTSIDER, REQUESTER, BotHarness, running_bot
from tests.hostile import any_json, hostile_text, printable_hostile_text

# A failing example with a 100 KB string makes hypothesis warn that its repr is large; as an
# error (warnings are errors here) that warning would hide the failure it reports.
pytestmark = [
    pytest.mark.usefixtures("no_errors_logged"),
    pytest.mark.filterwarnings("ignore:Generating overly large repr"),
]

E2E = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
DEVICE = "ws-001.contoso.com"
_BLOCKS = [str(b) for b in Block] + [row_block(i, p) for i in range(3) for p in ("type", "value")]

Path_ = tuple[str | int, ...]


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotHarness]:
    with running_bot(tmp_path_factory.mktemp("hostile")) as harness:
        yield harness


@pytest.fixture(scope="module")
def request_message(bot: BotHarness) -> Message:
    """One request awaiting approval, for clicks to land on."""
    return bot.request(DEVICE, "getfile C:\\Temp\\a.txt")


@pytest.fixture(scope="module")
def form(bot: BotHarness) -> OpenedView:
    """An opened request form, for submissions and row buttons."""
    return bot.slash("", REQUESTER)


# --- plumbing ----------------------------------------------------------------------------------


def _paths(node: Any, prefix: Path_ = ()) -> list[Path_]:
    found: list[Path_] = []
    items: list[tuple[str | int, Any]] = (
        list(node.items())
        if isinstance(node, dict)
        else list(enumerate(node))
        if isinstance(node, list)
        else []
    )
    for key, child in items:
        found.append((*prefix, key))
        found.extend(_paths(child, (*prefix, key)))
    return found


def _apply(document: Any, path: Path_, op: str, value: Any) -> None:
    parent = document
    for key in path[:-1]:
        try:
            parent = parent[key]
        except (KeyError, IndexError, TypeError):
            return
    last = path[-1]
    if (isinstance(parent, dict) and last in parent) or (
        isinstance(parent, list) and isinstance(last, int) and last < len(parent)
    ):
        if op == "delete":
            del parent[last]
        else:
            parent[last] = value


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` with up to four fields removed or replaced by hostile values."""
    document = copy.deepcopy(base)
    paths = _paths(base)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["delete", "replace"]))
        _apply(document, path, op, draw(any_json() | hostile_text()) if op == "replace" else None)
    return document


def payload_of(request: SignedRequest) -> dict[str, Any]:
    """The JSON payload of an interactivity request built by ``SlackRequests``."""
    document: dict[str, Any] = json.loads(unquote(request.body.decode().removeprefix("payload=")))
    return document


def post(bot: BotHarness, body: str | bytes, content_type: str | None = None) -> httpx.Response:
    """``body`` signed as Slack signs: over the raw bytes (slack_sdk's helper wants UTF-8)."""
    raw = body.encode() if isinstance(body, str) else body
    timestamp = str(int(time.time()))
    digest = hmac.new(bot.secret.encode(), f"v0:{timestamp}:".encode() + raw, hashlib.sha256)
    headers = {
        "Content-Type": content_type or "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={digest.hexdigest()}",
    }
    return bot.send.send(SignedRequest(raw, headers))


def interact(bot: BotHarness, payload: Any) -> httpx.Response:
    return post(bot, interactivity_body(payload))


def still_serving(bot: BotHarness, answer: httpx.Response) -> None:
    assert answer.status_code < 500, (answer.status_code, answer.text[:300])
    health = httpx.get(bot.send.url.replace("/slack/events", "/healthz"), timeout=5)
    assert health.status_code == 200


def stored(bot: BotHarness) -> list[RequestRecord]:
    return bot.store_runtime.store.in_states(list(RequestState))


def a_valid_command_still_works(bot: BotHarness) -> None:
    views_before = len(bot.slack.views())
    answer = bot.send.slash_command("", user_id=REQUESTER, channel_id=CHANNEL)
    assert answer.status_code == 200
    bot.wait(lambda: len(bot.slack.views()) > views_before, "a modal for a valid command")


def quiet(bot: BotHarness) -> None:
    """Wait for what the requests queued (listeners, outbox) before looking at the effects."""
    bot.wait(bot.settled, "the outbox to settle")


# --- slash commands ------------------------------------------------------------------------


_FORM_FIELDS = [
    "token",
    "team_id",
    "channel_id",
    "user_id",
    "command",
    "text",
    "api_app_id",
    "response_url",
    "trigger_id",
]


@E2E
@given(
    text=printable_hostile_text(3000),
    dropped=st.sets(st.sampled_from(_FORM_FIELDS), max_size=3),
    replaced=st.dictionaries(
        st.sampled_from(_FORM_FIELDS), printable_hostile_text(200), max_size=3
    ),
)
def test_fuzzed_slash_commands(
    bot: BotHarness, text: str, dropped: set[str], replaced: dict[str, str]
) -> None:
    before = len(stored(bot))
    request = bot.send.build_slash_command(text, user_id=REQUESTER, channel_id=CHANNEL)
    form = dict(parse_qsl(request.body.decode()))
    form.update(replaced)
    for name in dropped:
        form.pop(name, None)
    answer = post(bot, urlencode(form))
    still_serving(bot, answer)
    assert len(stored(bot)) == before  # a command only opens a form


def test_slash_commands_still_work_after_fuzzing(bot: BotHarness) -> None:
    a_valid_command_still_works(bot)


# --- clicks --------------------------------------------------------------------------------------


_CLICKS = [Action.APPROVE, Action.REJECT, Action.WITHDRAW, Action.CANCEL]


@E2E
@given(data=st.data(), action=st.sampled_from(_CLICKS))
def test_fuzzed_clicks_on_the_request_change_nothing(
    bot: BotHarness, request_message: Message, data: st.DataObject, action: Action
) -> None:
    """Clicks by someone who may not act (or forged past recognition) never move the request."""
    message = bot.current(request_message)
    payload = payload_of(
        bot.send.build_block_action(str(action), user_id=OUTSIDER, message=message)
    )
    answer = interact(bot, data.draw(mutated(payload)))
    still_serving(bot, answer)
    quiet(bot)
    assert bot.record(request_message).state is RequestState.AWAITING_APPROVAL
    assert len(stored(bot)) == 1


@E2E
@given(data=st.data(), action=st.sampled_from([Action.ADD_ROW, Action.REMOVE_ROW]))
def test_fuzzed_row_buttons(
    bot: BotHarness, form: OpenedView, data: st.DataObject, action: Action
) -> None:
    view = copy.deepcopy(form.view)  # as first opened: examples must not depend on each other
    view["state"] = {"values": {}}
    request = bot.send.build_block_action(str(action), user_id=REQUESTER, view=view)
    payload = payload_of(request)
    answer = interact(bot, data.draw(mutated(payload)))
    still_serving(bot, answer)


@pytest.mark.parametrize("view_id", [None, "", 7])
def test_a_row_button_on_a_view_without_an_id_is_ignored(
    bot: BotHarness, form: OpenedView, view_id: object
) -> None:
    """Found by the fuzz above: slack_sdk raised on views.update without a view id."""
    view = copy.deepcopy(form.view)
    view["state"] = {"values": {}}
    view["id"] = view_id
    request = bot.send.build_block_action(str(Action.ADD_ROW), user_id=REQUESTER, view=view)
    before = len(bot.slack.calls("views.update"))
    answer = interact(bot, payload_of(request))
    still_serving(bot, answer)
    assert len(bot.slack.calls("views.update")) == before


# --- the request form ------------------------------------------------------------------------


def _entry(block: str, value: Any) -> dict[str, Any]:
    if block.endswith("_type"):
        return {"type": "static_select", "selected_option": {"value": value}}
    return {"type": "plain_text_input", "value": value}


@E2E
@given(
    values=st.dictionaries(
        st.sampled_from(_BLOCKS), hostile_text(3000) | any_json(), min_size=1, max_size=8
    )
)
def test_fuzzed_form_values_get_field_errors_and_create_nothing(
    bot: BotHarness, form: OpenedView, values: dict[str, Any]
) -> None:
    """Every value typed into the form, hostile; the device is never a real one."""
    before = len(stored(bot))
    view = form.view
    state = {block: {str(Action.VALUE): _entry(block, value)} for block, value in values.items()}
    answer = bot.send.view_submission(view, REQUESTER, state)
    still_serving(bot, answer)
    assert answer.status_code == 200
    body = answer.json()
    assert body["response_action"] == "errors", body
    errors = body["errors"]
    present = {b["block_id"] for b in view["blocks"] if "block_id" in b}
    assert errors and set(errors) <= present, errors
    assert all(isinstance(m, str) and m.strip() for m in errors.values())
    assert len(stored(bot)) == before


@E2E
@given(data=st.data())
def test_fuzzed_form_submissions(bot: BotHarness, form: OpenedView, data: st.DataObject) -> None:
    """The submission's shape broken anywhere: no 5xx, no failure logged, nothing created."""
    before = len(stored(bot))
    view = form.view
    state = {
        str(Block.DEVICE): {str(Action.VALUE): _entry("device", "no-such-device")},
        str(Block.JUSTIFICATION): {str(Action.VALUE): _entry("justification", "why")},
        str(Block.COMMANDS_TEXT): {str(Action.VALUE): _entry("commands", "getfile C:\\a")},
    }
    request = bot.send.build_view_submission(view, REQUESTER, state)
    payload = payload_of(request)
    answer = interact(bot, data.draw(mutated(payload)))
    still_serving(bot, answer)
    assert len(stored(bot)) == before


# --- bodies that are not Slack's at all ------------------------------------------------------


@E2E
@given(
    body=st.binary(max_size=2000)
    | printable_hostile_text(2000).map(lambda t: "payload=" + t)
    | any_json().map(lambda d: "payload=" + json.dumps(d)),
    content_type=st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "application/json",
            "text/plain",
            "multipart/form-data",
        ]
    ),
)
def test_fuzzed_bodies(bot: BotHarness, body: str | bytes, content_type: str) -> None:
    before = len(stored(bot))
    answer = post(bot, body, content_type)
    still_serving(bot, answer)
    assert len(stored(bot)) == before


# --- what the fuzzing found, as plain regression tests --------------------------------------


def test_a_click_with_no_actions_is_400_not_a_bolt_crash(
    bot: BotHarness, request_message: Message
) -> None:
    """Bolt indexed actions[0] while matching, and again in the error handler: a 500 from
    waitress and "Exception while serving" logged."""
    payload = payload_of(
        bot.send.build_block_action(
            str(Action.APPROVE), user_id=OUTSIDER, message=bot.current(request_message)
        )
    )
    for broken in ({"actions": []}, {"actions": [{"value": "x"}]}, {"team": 7}):
        assert interact(bot, payload | broken).status_code == 400


def test_a_click_from_a_bare_user_id_is_read(bot: BotHarness, request_message: Message) -> None:
    """Bolt accepts ``"user": "U…"``; the listener assumed an object and failed."""
    payload = payload_of(
        bot.send.build_block_action(
            str(Action.APPROVE), user_id=OUTSIDER, message=bot.current(request_message)
        )
    )
    before = len(bot.slack.ephemerals(OUTSIDER))
    assert interact(bot, payload | {"user": OUTSIDER}).status_code == 200
    bot.wait(lambda: len(bot.slack.ephemerals(OUTSIDER)) > before, "the refusal, told")


def test_a_100_kb_device_name_is_a_field_error(bot: BotHarness, form: OpenedView) -> None:
    """It went into the lookup's URL: httpx.InvalidURL escaped the client and the listener."""
    state = {
        str(Block.DEVICE): {str(Action.VALUE): "ws-" + "a" * 100_000},
        str(Block.JUSTIFICATION): {str(Action.VALUE): "why"},
        str(Block.COMMANDS_TEXT): {str(Action.VALUE): "getfile C:\\a"},
    }
    answer = bot.send.view_submission(form.view, REQUESTER, state)
    assert answer.json()["errors"][str(Block.DEVICE)] == "A device name has at most 255 characters."


def test_a_command_from_no_usable_channel_is_told_so(bot: BotHarness) -> None:
    """ModalMetadata refused a 33-character channel id inside the listener: it failed."""
    for channel in ("C" * 33, "", "c0-lower"):
        answer = bot.send.slash_command("", user_id=REQUESTER, channel_id=channel)
        assert answer.status_code == 200
        assert "Run this command in a channel" in answer.json()["text"]


def test_a_form_slack_will_not_open_is_not_a_listener_failure(bot: BotHarness) -> None:
    """A reused trigger_id with no response_url: views.open fails and nobody can be told."""
    request = bot.send.build_slash_command("", user_id=REQUESTER, channel_id=CHANNEL)
    assert bot.send.send(request).status_code == 200
    form = dict(parse_qsl(request.body.decode()))
    form.pop("response_url")
    views_before = bot.slack.call_count("views.open")
    assert post(bot, urlencode(form)).status_code == 200
    bot.slack.wait_for_calls("views.open", views_before + 1)


def test_resizing_a_form_slack_no_longer_has_is_logged_not_failed(
    bot: BotHarness, form: OpenedView
) -> None:
    view = copy.deepcopy(form.view) | {"id": "V0GONE", "state": {"values": {}}}
    before = bot.slack.call_count("views.update")
    answer = bot.send.block_action(str(Action.ADD_ROW), user_id=REQUESTER, view=view)
    assert answer.status_code == 200
    bot.slack.wait_for_calls("views.update", before + 1)


def test_everything_still_works_after_the_fuzzing(
    bot: BotHarness, request_message: Message, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    a_valid_command_still_works(bot)
    assert bot.record(request_message).state is RequestState.AWAITING_APPROVAL
    bot.click(Action.WITHDRAW, request_message, REQUESTER)
    bot.wait_state(request_message, RequestState.WITHDRAWN)
