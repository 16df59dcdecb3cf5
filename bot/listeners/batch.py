"""Batch requests: the form submitted with several devices or a tag, and the batch
message's buttons (approve all, reject all, withdraw). The batch lifecycle decides."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.ids import Action, Block, read_value
from bot.lifecycle import Outcome
from bot.listeners._read import object_id
from bot.listeners.actions import tell_refusal
from bot.modal import ModalValues
from bot.services import Services

__all__ = ["register", "submit"]

log = logging.getLogger(__name__)


def submit(
    ack: Ack,
    services: Services,
    user: str,
    channel: str,
    values: ModalValues,
    view: dict[str, Any],
) -> None:
    """A form naming several devices: one batch, or field errors naming what is wrong."""
    from bot.listeners.modal import field_errors  # the modal's own rule for stray errors

    if services.batch_intake is None or services.batches is None:
        ack(
            response_action="errors",
            errors={str(Block.DEVICE): "This bot takes one device per request."},
        )
        return
    result = services.batch_intake.check_batch(values)
    if isinstance(result, dict):
        log.info("batch form from %s refused: %s", user, result)
        ack(response_action="errors", errors=field_errors(view, result))
        return
    refused = services.lifecycle.refusals(user, channel, result[0])
    if refused:
        ack(response_action="errors", errors=field_errors(view, refused))
        return
    services.batches.create(user, channel, result)  # stored before Slack closes the form
    ack()
    services.wake_outbox()


def register(app: App, services: Services) -> None:
    def handle(ack: Ack, body: dict[str, Any], client: WebClient, clicked: Action) -> None:
        user, channel = object_id(body, "user"), object_id(body, "channel")
        actions = body.get("actions")
        first = actions[0] if isinstance(actions, list) and actions else None
        raw = first.get("value") if isinstance(first, dict) else None
        batch_id, digest = read_value(raw[:100] if isinstance(raw, str) else "")
        batches = services.batches
        if batches is None:
            ack()
            return
        outcome: Outcome
        if clicked is Action.BATCH_CANCEL:
            ack()  # cancelling asks Defender, and Slack waits 3 s at most
            outcome = batches.cancel(batch_id, user)
        elif clicked is Action.BATCH_APPROVE:
            outcome = batches.decide(batch_id, user, approve=True, digest=digest)
        elif clicked is Action.BATCH_REJECT:
            outcome = batches.decide(batch_id, user, approve=False)
        else:
            outcome = batches.withdraw(batch_id, user)
        if clicked is not Action.BATCH_CANCEL:
            ack()  # after the decision is stored: a process killed now still has it
        services.wake_outbox()
        tell_refusal(client, channel, user, outcome)

    @app.action(str(Action.BATCH_APPROVE))
    def approve(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        handle(ack, body, client, Action.BATCH_APPROVE)

    @app.action(str(Action.BATCH_REJECT))
    def reject(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        handle(ack, body, client, Action.BATCH_REJECT)

    @app.action(str(Action.BATCH_WITHDRAW))
    def withdraw(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        handle(ack, body, client, Action.BATCH_WITHDRAW)

    @app.action(str(Action.BATCH_CANCEL))
    def cancel(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        handle(ack, body, client, Action.BATCH_CANCEL)
