"""Signed requests to the bot's HTTP endpoint, as Slack sends them.

Slash commands are form-encoded; interactivity (block actions, view submissions, options
loads) is ``payload=<urlencoded JSON>``. Every body is signed like Slack does:
``X-Slack-Signature: v0=hex(HMAC-SHA256(secret, "v0:{ts}:{body}"))`` with
``X-Slack-Request-Timestamp``. :class:`Signing` breaks the signature on purpose::

    with SlackRequests("http://127.0.0.1:3000/slack/events", SECRET, fake=fake) as slack:
        assert slack.slash_command("help", user_id="U1", channel_id="C1").status_code == 200
        assert slack.slash_command("help", user_id="U1", channel_id="C1",
                                   signing=STALE).status_code == 401

Each ``build_*`` returns a :class:`SignedRequest` without sending it, e.g. for
``app.dispatch(request.bolt_request())``.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import httpx
from slack_sdk.signature import SignatureVerifier

from bot.sandbox._slack_payloads import (
    block_actions_payload,
    block_suggestion_payload,
    external_select,
    find_element,
    new_trigger_id,
    plain_text,
    slash_command_form,
    state_values,
    static_select,
    users_select,
    view_submission_payload,
)
from bot.sandbox._slack_records import JsonDict, Message, OpenedView

if TYPE_CHECKING:
    from slack_bolt import BoltRequest

    from bot.sandbox.slack_api import FakeSlack

__all__ = [
    "STALE",
    "TAMPERED",
    "WRONG_SECRET",
    "SignedRequest",
    "Signing",
    "SlackRequests",
    "external_select",
    "find_element",
    "interactivity_body",
    "new_trigger_id",
    "plain_text",
    "sign",
    "state_values",
    "static_select",
    "users_select",
]

ViewLike = OpenedView | Mapping[str, Any]


def _append_field(body: bytes) -> bytes:
    return body + b"&tampered=1"


@dataclass(frozen=True)
class Signing:
    """How to sign: the right way by default, or broken on purpose.

    ``secret`` replaces the app's secret; ``age`` back-dates the timestamp (Bolt refuses
    more than 300 s); ``tamper`` changes the body after it was signed.
    """

    secret: str | None = None
    age: int = 0
    tamper: Callable[[bytes], bytes] | None = None


WRONG_SECRET = Signing(secret="not-the-signing-secret")
STALE = Signing(age=6 * 60)
TAMPERED = Signing(tamper=_append_field)


@dataclass(frozen=True)
class SignedRequest:
    """A body and the headers Slack would send with it."""

    body: bytes
    headers: dict[str, str]

    def bolt_request(self) -> BoltRequest:
        """The same request for ``App.dispatch`` (no HTTP server needed)."""
        from slack_bolt import BoltRequest

        headers: dict[str, str | Sequence[str]] = {k.lower(): v for k, v in self.headers.items()}
        return BoltRequest(body=self.body.decode(), headers=headers)


def sign(body: str | bytes, secret: str, signing: Signing = Signing()) -> SignedRequest:
    """Sign ``body`` like Slack, then apply ``signing``'s deliberate faults."""
    raw = body.encode() if isinstance(body, str) else body
    timestamp = str(int(time.time()) - signing.age)
    verifier = SignatureVerifier(signing.secret or secret)
    signature = verifier.generate_signature(timestamp=timestamp, body=raw)
    headers = {
        "Content-Type": "application/json"
        if raw.startswith(b"{")
        else "application/x-www-form-urlencoded",
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": str(signature),
    }
    sent = signing.tamper(raw) if signing.tamper else raw
    return SignedRequest(sent, headers)


def interactivity_body(payload: Mapping[str, Any]) -> str:
    """``payload=<urlencoded JSON>``, as Slack posts interactions."""
    return "payload=" + quote(json.dumps(payload, separators=(",", ":")))


def _view_dict(view: ViewLike) -> Mapping[str, Any]:
    return view.view if isinstance(view, OpenedView) else view


class SlackRequests:
    """Sends Slack's requests, signed, to ``url`` (the bot's ``/slack/events``) with httpx.

    With ``fake``, response URLs are created on the fake Slack server so that what the bot
    posts to them can be read back with ``fake.response_posts(url)``. The last trigger id and
    response URL used are kept in ``last_trigger_id`` / ``last_response_url``.
    """

    def __init__(
        self,
        url: str,
        signing_secret: str,
        *,
        fake: FakeSlack | None = None,
        team_id: str = "T0001",
        api_app_id: str = "A0001",
        command: str = "/liveresponse",
        timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.signing_secret = signing_secret
        self.fake = fake
        self.team_id = team_id
        self.api_app_id = api_app_id
        self.command = command
        self.last_trigger_id = ""
        self.last_response_url = ""
        self._http = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SlackRequests:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- plumbing -----------------------------------------------------------------------

    def _trigger(self, trigger_id: str | None) -> str:
        self.last_trigger_id = trigger_id or new_trigger_id()
        return self.last_trigger_id

    def _response_url(self, response_url: str | None) -> str:
        if response_url is None:
            response_url = (
                self.fake.new_response_url()
                if self.fake is not None
                else "https://hooks.slack.invalid/commands/T0001/1/fake"
            )
        self.last_response_url = response_url
        return response_url

    def _ids(self) -> dict[str, str]:
        return {"team_id": self.team_id, "api_app_id": self.api_app_id}

    def send(self, request: SignedRequest) -> httpx.Response:
        """POST an already built request."""
        return self._http.post(self.url, content=request.body, headers=request.headers)

    def sign_interaction(self, payload: Mapping[str, Any], signing: Signing) -> SignedRequest:
        return sign(interactivity_body(payload), self.signing_secret, signing)

    # -- slash command ----------------------------------------------------------------------

    def build_slash_command(
        self,
        text: str,
        *,
        user_id: str,
        channel_id: str,
        trigger_id: str | None = None,
        response_url: str | None = None,
        signing: Signing = Signing(),
    ) -> SignedRequest:
        form = slash_command_form(
            text,
            user_id=user_id,
            channel_id=channel_id,
            response_url=self._response_url(response_url),
            trigger_id=self._trigger(trigger_id),
            command=self.command,
            **self._ids(),
        )
        return sign(urlencode(form), self.signing_secret, signing)

    def slash_command(self, text: str, **kwargs: Any) -> httpx.Response:
        """``/liveresponse <text>``; keywords as :meth:`build_slash_command`."""
        return self.send(self.build_slash_command(text, **kwargs))

    # -- interactivity ------------------------------------------------------------------------

    def build_block_action(
        self,
        action_id: str,
        *,
        user_id: str,
        message: Message | None = None,
        view: ViewLike | None = None,
        value: object = None,
        block_id: str | None = None,
        trigger_id: str | None = None,
        signing: Signing = Signing(),
    ) -> SignedRequest:
        payload: JsonDict = block_actions_payload(
            action_id,
            user_id=user_id,
            message=message,
            view=None if view is None else _view_dict(view),
            value=value,
            block_id=block_id,
            response_url=self._response_url(None),
            trigger_id=self._trigger(trigger_id),
            **self._ids(),
        )
        return self.sign_interaction(payload, signing)

    def block_action(self, action_id: str, **kwargs: Any) -> httpx.Response:
        """A click on ``action_id`` in ``message=`` (e.g. ``fake.message(c, ts)``) or ``view=``."""
        return self.send(self.build_block_action(action_id, **kwargs))

    def build_view_submission(
        self,
        view: ViewLike,
        user_id: str,
        values: Mapping[str, Mapping[str, object]],
        *,
        trigger_id: str | None = None,
        signing: Signing = Signing(),
    ) -> SignedRequest:
        payload = view_submission_payload(
            _view_dict(view),
            user_id=user_id,
            values=values,
            trigger_id=self._trigger(trigger_id),
            **self._ids(),
        )
        return self.sign_interaction(payload, signing)

    def view_submission(
        self, view: ViewLike, user_id: str, values: Mapping[str, Mapping[str, object]], **kw: Any
    ) -> httpx.Response:
        """Submit modal ``view`` (an ``OpenedView`` or the dict views.open returned)."""
        return self.send(self.build_view_submission(view, user_id, values, **kw))

    def build_block_suggestion(
        self,
        action_id: str,
        typed: str,
        *,
        user_id: str,
        view: ViewLike,
        block_id: str | None = None,
        signing: Signing = Signing(),
    ) -> SignedRequest:
        payload = block_suggestion_payload(
            action_id,
            typed,
            user_id=user_id,
            view=_view_dict(view),
            block_id=block_id,
            **self._ids(),
        )
        return self.sign_interaction(payload, signing)

    def block_suggestion(self, action_id: str, typed: str, **kwargs: Any) -> httpx.Response:
        """An ``external_select`` options load; the bot answers ``{"options": [...]}``."""
        return self.send(self.build_block_suggestion(action_id, typed, **kwargs))

    options = block_suggestion

    # -- events ---------------------------------------------------------------------------------

    def build_event(
        self, event: Mapping[str, Any], *, signing: Signing = Signing()
    ) -> SignedRequest:
        """An Events API ``event_callback`` wrapping ``event``, as JSON."""
        body = {
            "token": "unused-verification-token",
            **self._ids(),
            "type": "event_callback",
            "event": dict(event),
            "event_id": f"Ev{secrets.token_hex(5).upper()}",
            "event_time": int(time.time()),
        }
        return sign(json.dumps(body, separators=(",", ":")), self.signing_secret, signing)

    def app_home_opened(self, user_id: str, tab: str = "home", **kwargs: Any) -> httpx.Response:
        """The analyst opened the app's Home (or Messages) tab."""
        event = {
            "type": "app_home_opened",
            "user": user_id,
            "channel": "D0000HOME",
            "tab": tab,
            "event_ts": f"{time.time():.6f}",
        }
        return self.send(self.build_event(event, **kwargs))
