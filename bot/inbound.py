"""What may reach Bolt: a signed body that parses, in the shape Bolt reads without checking.

Bolt trusts Slack's payloads: it indexes ``actions[0]``, ``view["callback_id"]`` and
``"id" in team`` as they come, and it parses the body before it checks the signature. A
forged or broken body (an empty ``actions`` list, a number for ``team``, bytes that are not
UTF-8, a ``payload`` that is not JSON) raised inside Bolt: a 500, an error logged as a
listener failure, or an exception out of the WSGI app. ``problem`` finds these first, so
the HTTP layer answers 401 (unsigned) or 400 (malformed) and Bolt only sees what it can read.

The checks stop at what Bolt needs; our listeners read the rest defensively themselves.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["MAX_AGE_SECONDS", "Refusal", "problem"]

MAX_AGE_SECONDS = 300  # Slack's (and Bolt's) bound on the timestamp, either way

# Keys Bolt reads as "an id, or an object with an id" (extract_team_id and friends).
_ID_HOLDERS = ("team", "enterprise", "user", "channel")
# Keys Bolt (or our listeners) read as objects when present.
_OBJECTS = ("container", "message", "view", "event", "state")
_WITH_ACTIONS = frozenset({"block_actions", "interactive_message"})
_WITH_VIEW = frozenset({"view_submission", "view_closed"})


class Refusal:
    """Why a request does not go to Bolt, and with which HTTP status."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason

    def __repr__(self) -> str:
        return f"Refusal({self.status}, {self.reason!r})"


def problem(
    body: bytes,
    headers: Mapping[str, str],
    content_type: str | None,
    secret: str | None,
    now: float | None = None,
) -> Refusal | None:
    """None when Bolt may have the request; else the status and reason to refuse it.

    ``headers`` are lower-cased names. With no ``secret`` (Socket Mode, or verification off)
    signatures are not checked here.
    """
    if secret:
        refusal = _unsigned(body, headers, secret, now)
        if refusal is not None:
            return refusal
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return Refusal(400, "the body is not UTF-8")
    try:
        document = _parse(text, content_type)
    except (ValueError, RecursionError):
        return Refusal(400, "the body does not parse")
    if not isinstance(document, dict):
        return Refusal(400, "the payload is not a JSON object")
    reason = _shape(document)
    return Refusal(400, reason) if reason else None


def _unsigned(
    body: bytes, headers: Mapping[str, str], secret: str, now: float | None
) -> Refusal | None:
    """Slack's check (as slack_sdk's ``SignatureVerifier``), over the raw bytes.

    slack_sdk calls ``int()`` on the timestamp unguarded ("yesterday" raised ValueError),
    decodes the body as UTF-8 (other bytes raised UnicodeDecodeError) and compares str
    digests (a non-ASCII signature header raised TypeError): each was a 500 from Bolt.
    """
    timestamp = headers.get("x-slack-request-timestamp", "0")
    try:
        sent_at = int(timestamp)
    except ValueError:  # also past int()'s 4,300-digit limit
        return Refusal(401, "the timestamp is not a number")
    if abs((time.time() if now is None else now) - sent_at) > MAX_AGE_SECONDS:
        return Refusal(401, "the timestamp is more than 5 minutes from now")
    base = b"v0:" + timestamp.encode("utf-8", "surrogateescape") + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    signature = headers.get("x-slack-signature", "").encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(expected.encode(), signature):
        return Refusal(401, "the signature does not match")
    return None


def _parse(text: str, content_type: str | None) -> Any:
    """As ``slack_bolt.request.internals.parse_body`` reads a body."""
    if not text:
        return {}
    if content_type == "application/json" or text.startswith("{"):
        return json.loads(text)
    if "payload" in text:
        payload = dict(parse_qsl(text, keep_blank_values=True)).get("payload")
        return {} if payload is None else json.loads(payload)
    return dict(parse_qsl(text, keep_blank_values=True))


def _is_id(value: object) -> bool:
    return value is None or isinstance(value, str)


def _shape(payload: dict[str, Any]) -> str | None:
    for key in ("type", "command", "callback_id", "action_id", "block_id", "trigger_id"):
        if not _is_id(payload.get(key)):
            return f"{key} is not a string"
    for key in _ID_HOLDERS:
        value = payload.get(key)
        if isinstance(value, dict):
            if not _is_id(value.get("id")) or not _is_id(value.get("enterprise_id")):
                return f"{key}.id is not a string"
        elif not _is_id(value):
            return f"{key} is neither an id nor an object"
    for key in _OBJECTS:
        if payload.get(key) is not None and not isinstance(payload[key], dict):
            return f"{key} is not an object"
    for key in ("view", "event"):  # Bolt's unhandled-request log reads them if present at all
        if key in payload and not isinstance(payload[key], dict):
            return f"{key} is not an object"
    authorizations = payload.get("authorizations")
    if authorizations is not None and not (
        isinstance(authorizations, list) and all(isinstance(a, dict) for a in authorizations)
    ):
        return "authorizations is not a list of objects"
    urls = payload.get("response_urls")  # Bolt reads response_urls[0].get("response_url")
    if "response_urls" in payload and not (
        isinstance(urls, list) and (not urls or isinstance(urls[0], dict))
    ):
        return "response_urls is not a list of objects"
    kind = payload.get("type")
    if kind in _WITH_ACTIONS:
        actions = payload.get("actions")
        if not isinstance(actions, list) or not actions:
            return "actions is not a non-empty list"
        for action in actions:
            if not isinstance(action, dict):
                return "an action is not an object"
            # Bolt's matcher reads action["action_id"]: present, and a string.
            if not isinstance(action.get("action_id"), str) or not _is_id(action.get("block_id")):
                return "an action has no action_id, or ids that are not strings"
    view = payload.get("view")
    # Bolt reads view["callback_id"] and view["type"] of every view_submission.
    if kind in _WITH_VIEW and not (
        isinstance(view, dict) and "callback_id" in view and isinstance(view.get("type"), str)
    ):
        return "view, its callback_id or its type is missing"
    event = payload.get("event")
    if isinstance(event, dict) and not isinstance(event.get("type"), str):
        return "event.type is missing"  # Bolt reads event["type"] of every event
    if isinstance(view, dict):
        if not isinstance(view.get("callback_id", ""), str):
            return "view.callback_id is not a string"
        if view.get("state") is not None and not isinstance(view["state"], dict):
            return "view.state is not an object"
    return None
