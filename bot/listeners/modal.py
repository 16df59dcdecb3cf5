"""The request modal: submission (validate, then post for approval) and adding/removing rows."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import views
from bot.device_list import is_batch
from bot.ids import Action, Block, Callback
from bot.listeners import batch
from bot.listeners._read import object_id
from bot.modal import MAX_ROWS, read_metadata, read_values
from bot.services import Services

__all__ = ["register"]

log = logging.getLogger(__name__)

STALE_FORM = "This form is out of date: close it and run the slash command again."


def _block_ids(view: dict[str, Any]) -> set[str]:
    blocks = view.get("blocks")
    return (
        {str(b.get("block_id")) for b in blocks if isinstance(b, dict)}
        if isinstance(blocks, list)
        else set()
    )


def field_errors(view: dict[str, Any], errors: dict[str, str]) -> dict[str, str]:
    """Keep errors on blocks the view has (Slack refuses the rest); move strays to the text."""
    present = _block_ids(view)
    kept: dict[str, str] = {}
    for block, message in errors.items():
        target = block if block in present else str(Block.COMMANDS_TEXT)
        kept[target] = f"{kept[target]} {message}" if target in kept else message
    return {k: v[:1900] for k, v in kept.items()}


def register(app: App, services: Services) -> None:
    @app.view(str(Callback.REQUEST_MODAL))
    def submit(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = object_id(body, "user")
        meta = read_metadata(view.get("private_metadata"))
        if meta is None:
            ack(response_action="errors", errors={str(Block.JUSTIFICATION): STALE_FORM})
            return
        allowed = services.lifecycle.may_request(user)
        if not allowed.ok:
            ack(
                response_action="errors",
                errors={str(Block.DEVICE): views.sentence(allowed.message)},
            )
            return
        values = read_values((view.get("state") or {}).get("values"), meta.rows)
        if is_batch(values.device):
            batch.submit(ack, services, user, meta.channel_id, values, view)
            return
        result = services.intake.check(values)
        if isinstance(result, dict):
            log.info("request form from %s refused: %s", user, result)
            ack(response_action="errors", errors=field_errors(view, result))
            return
        refused = services.lifecycle.refusals(user, meta.channel_id, result)
        if refused:
            ack(response_action="errors", errors=field_errors(view, refused))
            return
        # Stored before Slack closes the form: once it has its 200, a crash must not lose it.
        services.lifecycle.create(user, meta.channel_id, result)
        ack()
        services.wake_outbox()

    def resize(ack: Ack, body: dict[str, Any], client: WebClient, delta: int) -> None:
        ack()
        view = body.get("view") or {}
        meta = read_metadata(view.get("private_metadata"))
        view_id = view.get("id")
        if meta is None or not isinstance(view_id, str) or not view_id:
            # Not a form this bot opened (no metadata of ours, or no view to update).
            log.info("request form not resized: the click names no form of ours")
            return
        values = read_values((view.get("state") or {}).get("values"), meta.rows)
        rows = min(MAX_ROWS, max(1, meta.rows + delta))
        values.rows = values.rows[:rows]
        values.row_files = values.row_files[:rows]
        try:
            client.views_update(
                view_id=view_id,
                hash=view.get("hash"),
                view=views.request_modal(
                    meta.model_copy(update={"rows": rows}),
                    values,
                    list(services.intake.playbooks.values()),
                ),
            )
        except SlackApiError as exc:
            # hash_conflict (two quick clicks) or a view that is gone: the form as Slack
            # shows it is still usable, so this is worth a line in the log, not a failure.
            log.info("request form not resized: %s", exc.response.get("error"))

    @app.action(str(Action.ADD_ROW))
    def add_row(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        resize(ack, body, client, +1)

    @app.action(str(Action.REMOVE_ROW))
    def remove_row(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        resize(ack, body, client, -1)
