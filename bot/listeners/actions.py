"""The request message's buttons: approve, reject, withdraw, cancel.

Authorization never trusts the button: the clicker is ``body.user.id`` and the request is
looked up by id in the store; the lifecycle decides. A refusal is told only to the clicker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.ids import Action, read_value
from bot.lifecycle import Outcome
from bot.listeners._read import object_id
from bot.logs import about
from bot.services import Services

__all__ = ["register"]

log = logging.getLogger(__name__)


def _clicked(body: dict[str, Any]) -> tuple[str, str, str]:
    user, channel = object_id(body, "user"), object_id(body, "channel")
    actions = body.get("actions")
    first = actions[0] if isinstance(actions, list) and actions else None
    value = first.get("value") if isinstance(first, dict) else None
    # A request id is ours, short and plain (with the Approve button's digest); anything
    # else finds no request.
    return user, channel, value[:100] if isinstance(value, str) else ""


def tell_refusal(client: WebClient, channel: str, user: str, outcome: Outcome) -> None:
    """Why a click did not go through, to the one who clicked (ephemeral); nothing on success."""
    if outcome.ok or not channel or not user:
        return
    try:
        client.chat_postEphemeral(channel=channel, user=user, text=outcome.message)
    except SlackApiError as exc:
        log.warning("could not tell %s why: %s", user, exc.response.get("error"))


def register(app: App, services: Services) -> None:
    def handle(
        ack: Ack,
        body: dict[str, Any],
        client: WebClient,
        operation: Callable[[str, str], Outcome],
        *,
        ack_first: bool = False,
    ) -> None:
        user, channel, request_id = _clicked(body)
        with about(request=read_value(request_id)[0] if request_id else None):
            _handle(ack, client, operation, user, channel, request_id, ack_first=ack_first)

    def _handle(
        ack: Ack,
        client: WebClient,
        operation: Callable[[str, str], Outcome],
        user: str,
        channel: str,
        request_id: str,
        *,
        ack_first: bool,
    ) -> None:
        if ack_first:  # the operation waits on Defender, and Slack waits 3 s at most
            ack()
            outcome = operation(request_id, user)
        else:
            # Slack's 200 delivers the click: a process killed just after it must still find
            # the decision stored. Deciding is one local transaction, well within 3 s.
            outcome = operation(request_id, user)
            ack()
        services.wake_outbox()
        tell_refusal(client, channel, user, outcome)

    lifecycle = services.lifecycle

    @app.action(str(Action.APPROVE))
    def approve(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        def decide(value: str, user: str) -> Outcome:
            request_id, digest = read_value(value)
            return lifecycle.decide(request_id, user, approve=True, digest=digest)

        handle(ack, body, client, decide)

    @app.action(str(Action.REJECT))
    def reject(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        handle(ack, body, client, lambda v, u: lifecycle.decide(read_value(v)[0], u, approve=False))

    @app.action(str(Action.WITHDRAW))
    def withdraw(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        handle(ack, body, client, lifecycle.withdraw)

    @app.action(str(Action.CANCEL))
    def cancel(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        handle(ack, body, client, lifecycle.cancel, ack_first=True)
