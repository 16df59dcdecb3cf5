"""``bot.inbound``: what may reach Bolt. Each case here once made Bolt raise (a 500)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import quote

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
        {"type": "view_submission", "view": {"callback_id": "x", "state": []}},
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
