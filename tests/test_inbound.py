"""``bot.inbound``: what may reach Bolt. Each case here once made Bolt raise (a 500)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.inbound import problem
from tests.hostile import any_json

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_700_000_000.0


def signed(body: bytes, timestamp: str = str(int(NOW)), secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256)
    return {"x-slack-request-timestamp": timestamp, "x-slack-signature": f"v0={digest.hexdigest()}"}


def interaction(payload: Any) -> bytes:
    return ("payload=" + quote(json.dumps(payload))).encode()


def status(body: bytes, headers: dict[str, str] | None = None) -> int:
    refusal = problem(body, signed(body) if headers is None else headers, None, SECRET, NOW)
    return 200 if refusal is None else refusal.status


CLICK = {
    "type": "block_actions",
    "user": {"id": "U1"},
    "team": {"id": "T1"},
    "actions": [{"action_id": "lr_approve", "block_id": "b", "value": "lr-1"}],
}


def test_a_well_formed_click_passes() -> None:
    assert status(interaction(CLICK)) == 200
    assert status(b"command=%2Fliveresponse&text=help&user_id=U1") == 200


@pytest.mark.parametrize(
    "change",
    [
        {"actions": []},  # Bolt: body["actions"][0] -> IndexError, then again in its handler
        {"actions": [{"value": "x"}]},  # Bolt: action["action_id"] -> KeyError
        {"actions": "lr_approve"},
        {"team": 7},  # Bolt: "id" in 7 -> TypeError
        {"user": ["U1"]},
        {"enterprise": {"id": 5}},
        {"view": "V1"},
        {"type": "view_submission", "view": {"id": "V1"}},  # Bolt: view["callback_id"]
        {"type": "view_submission", "view": {"callback_id": "x"}},  # Bolt: view["type"]
        {"event": {"user": "U1"}},  # Bolt: event["type"]
        {"type": None, "view": None},  # Bolt's "unhandled request" warning: view.get
        {"response_urls": ["https://hooks.slack.com/x"]},  # Bolt: response_urls[0].get
        {"response_urls": 5},
        {"type": "view_submission", "view": {"callback_id": "x", "type": "modal", "state": []}},
        {"authorizations": [1]},
    ],
)
def test_shapes_bolt_cannot_read_are_400(change: dict[str, Any]) -> None:
    assert status(interaction(CLICK | change)) == 400


@pytest.mark.parametrize(
    "body", [b"\x80payload=", b"payload=%7Bnot json", b"payload=%5B1%5D", b'{"a": [[[[' * 1]
)
def test_bodies_that_do_not_parse_are_400(body: bytes) -> None:
    assert status(body) == 400


def test_deep_nesting_is_400_not_a_recursion_error() -> None:
    assert status(b"payload=" + quote("[" * 100_000).encode()) == 400


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-slack-request-timestamp": "yesterday", "x-slack-signature": "v0=00"},
        {"x-slack-request-timestamp": "9" * 5000, "x-slack-signature": "v0=00"},
        {"x-slack-request-timestamp": str(int(NOW)), "x-slack-signature": "v0=\xe9\xe9"},
        signed(b"other body"),
        signed(interaction(CLICK), secret="wrong"),
        signed(interaction(CLICK), timestamp=str(int(NOW) - 301)),
        signed(interaction(CLICK), timestamp=str(int(NOW) + 301)),
    ],
)
def test_anything_not_signed_now_is_401(headers: dict[str, str]) -> None:
    assert status(interaction(CLICK), headers) == 401


def test_a_non_utf8_body_is_checked_over_its_bytes_then_refused_as_400() -> None:
    body = b"payload=\xff\xfe"
    assert status(body, signed(b"payload=")) == 401
    assert status(body) == 400


@settings(max_examples=200, deadline=None)
@given(any_json(), st.binary(max_size=200))
def test_any_document_or_bytes_is_judged_without_raising(document: Any, raw: bytes) -> None:
    assert status(interaction(document)) in (200, 400)
    assert status(raw) in (200, 400)


def test_the_real_clock_is_the_default() -> None:
    body = interaction(CLICK)
    assert problem(body, signed(body, str(int(time.time()))), None, SECRET) is None


# --- what passes, Bolt can read -----------------------------------------------------------------

VIEW = {
    "type": "view_submission",
    "response_urls": [{"response_url": "https://hooks.slack.invalid/1", "channel_id": "C1"}],
    "user": {"id": "U1", "team_id": "T1"},
    "team": {"id": "T1", "domain": "x"},
    "view": {
        "id": "V1",
        "type": "modal",
        "callback_id": "lr_request",
        "private_metadata": '{"channel_id": "C1", "rows": 1}',
        "state": {"values": {"device": {"value": {"type": "plain_text_input", "value": "ws"}}}},
    },
}
COMMAND = {"command": "/liveresponse", "text": "help", "user_id": "U1", "team_id": "T1"}


def _bolt() -> tuple[Any, list[BaseException]]:
    """A bare Bolt app with listeners on our ids: where Bolt itself reads the payload."""
    from slack_bolt import App
    from slack_bolt.authorization import AuthorizeResult

    failures: list[BaseException] = []
    app = App(
        # Bolt's single-team authorization would call auth.test: no network in a unit test.
        authorize=lambda **_: AuthorizeResult(
            enterprise_id=None, team_id="T1", bot_token="xoxb-unused", bot_user_id="UB"
        ),
        signing_secret=SECRET,
        token_verification_enabled=False,
        request_verification_enabled=False,
        ssl_check_enabled=False,
        url_verification_enabled=False,
    )
    for action in ("lr_approve", "lr_add_row"):
        app.action(action)(lambda ack: ack())
    app.view("lr_request")(lambda ack: ack())
    app.command("/liveresponse")(lambda ack: ack())

    @app.error
    def failed(error: BaseException) -> None:
        failures.append(error)

    return app, failures


BOLT, BOLT_FAILURES = _bolt()


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict):
        items: list[tuple[Any, Any]] = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    else:
        items = []
    found: list[tuple[Any, ...]] = []
    for key, child in items:
        found += [(*prefix, key), *_paths(child, (*prefix, key))]
    return found


# A click as Slack sends it, with everything Bolt's context building reads.
FULL_CLICK = CLICK | {
    "api_app_id": "A1",
    "token": "t",
    "enterprise": None,
    "is_enterprise_install": False,
    "trigger_id": "1.2.3",
    "container": {"type": "message", "message_ts": "1.2", "channel_id": "C1"},
    "channel": {"id": "C1", "name": "soc"},
    "message": {"ts": "1.2", "thread_ts": "1.1", "text": "x", "blocks": []},
    "response_url": "https://hooks.slack.invalid/2",
    "state": {"values": {}},
}
ROW_CLICK = FULL_CLICK | {
    "container": {"type": "view", "view_id": "V1"},
    "actions": [{"action_id": "lr_add_row", "block_id": "row_buttons", "type": "button"}],
    "view": VIEW["view"],
}


@st.composite
def mutated_payloads(draw: st.DrawFn) -> dict[str, Any]:
    template = draw(st.sampled_from([CLICK, VIEW, FULL_CLICK, ROW_CLICK]))
    document: dict[str, Any] = json.loads(json.dumps(template))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(document) or [("type",)]))
        parent: Any = document
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(any_json())
    return document


# LRBOT_FUZZ_EXAMPLES=3000 for a deeper run (about 90 s); 300 keeps the suite quick.
@settings(max_examples=int(os.environ.get("LRBOT_FUZZ_EXAMPLES", 300)), deadline=None)
@given(mutated_payloads() | st.builds(lambda d: COMMAND | d, st.dictionaries(st.text(), st.text())))
def test_whatever_passes_bolt_reads_without_failing(payload: dict[str, Any]) -> None:
    from slack_bolt import BoltRequest

    is_form = "command" in payload and all(isinstance(v, str) for v in payload.values())
    body = (urlencode(payload) if is_form else interaction(payload).decode()).encode()
    if problem(body, signed(body), None, SECRET, NOW) is not None:
        return
    BOLT_FAILURES.clear()
    response = BOLT.dispatch(BoltRequest(body=body.decode(), headers={}))
    assert response.status < 500 and not BOLT_FAILURES, (response.status, BOLT_FAILURES)
