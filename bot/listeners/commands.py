"""``/liveresponse``: help, a status subcommand, or the request modal (prefilled from the
command's text)."""

from __future__ import annotations

import html
import logging
from typing import Any

from pydantic import ValidationError
from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import views
from bot.listeners.status import Subcommands, parse_subcommand
from bot.modal import ModalMetadata, ModalValues
from bot.services import Services
from commands.errors import CommandError
from commands.playbooks import expand, parse_params
from commands.syntax import split_device_and_commands

__all__ = ["register"]

log = logging.getLogger(__name__)

NO_CHANNEL = "Run this command in a channel: the request is posted there for approval."
HELP_WORDS = frozenset({"help", "-h", "--help", "?", "usage"})


def register(app: App, services: Services, subcommands: Subcommands) -> None:
    command_name = services.settings.slash_command

    @app.command(command_name)
    def open_request(
        ack: Ack, command: dict[str, Any], client: WebClient, respond: Respond
    ) -> None:
        # Slack escapes &, < and > in slash-command text; the syntax wants what was typed.
        text = html.unescape(str(command.get("text") or "")).strip()
        if text.lower() in HELP_WORDS:
            help_text = views.help_text(command_name)
            ack(
                response_type="ephemeral",
                text=f"{help_text}\n\n*Status*\n{views.subcommand_help(command_name)}",
            )
            return
        asked = parse_subcommand(text)
        if asked is not None:
            ack()  # a cancel waits on Defender; Slack waits 3 s for the ack at most
            user = str(command.get("user_id", ""))
            answer = subcommands.answer(*asked, user=user)
            services.wake_outbox()
            _respond(respond, command, answer)
            return
        channel = str(command.get("channel_id", ""))
        try:
            meta = ModalMetadata(channel_id=channel, rows=1)
        except ValidationError:
            # Slack always names the channel; a request without a usable one could never be
            # posted for approval, so say so now rather than fail the listener.
            ack(response_type="ephemeral", text=NO_CHANNEL)
            return
        where = services.lifecycle.policy.may_use_channel(channel)
        if not where:
            ack(response_type="ephemeral", text=views.sentence(where.reason))
            return
        device, rest = split_device_and_commands(text)
        values = ModalValues(device=device[:3000], commands_text=rest[:3000])
        words = rest.split(None, 1)
        if words and words[0].lower() == "playbook":
            typed = typed_playbook(services, words[1] if len(words) > 1 else "", command_name)
            if isinstance(typed, str):
                log.info("typed playbook refused: %s", typed)
                ack(response_type="ephemeral", text=typed)
                return
            values = ModalValues(device=device[:3000], playbook=typed[0], playbook_params=typed[1])
        ack()
        # The trigger_id lives 3 seconds: open the modal before anything that may be slow.
        try:
            opened = client.views_open(
                trigger_id=command.get("trigger_id"),
                view=views.request_modal(meta, values, list(services.intake.playbooks.values())),
            )
        except SlackApiError as exc:
            # An expired or reused trigger (a slow round trip, a replayed request) is no bug
            # of ours: tell the person, instead of failing the listener in silence.
            error = exc.response.get("error")
            log.warning("could not open the request form: %s", error)
            if not command.get("response_url"):
                return  # nowhere to answer (Slack always sends one; a forgery may not)
            try:
                respond(
                    response_type="ephemeral",
                    text=f"Slack did not open the request form ({error}): run {command_name}"
                    " again.",
                )
            except (ValueError, OSError) as sent:  # a response_url that is no URL, or down
                log.warning("could not say so either: %s", sent)
            return
        user = str(command.get("user_id", ""))
        allowed = services.lifecycle.may_request(user)
        if not allowed.ok:
            log.info("refused request form for %s: %s", user, allowed.message)
            client.views_update(
                view_id=opened["view"]["id"],
                view=views.notice_modal(allowed.message),
            )


def _respond(respond: Respond, command: dict[str, Any], answer: views.Message) -> None:
    if not command.get("response_url"):
        return  # nowhere to answer (Slack always sends one; a forgery may not)
    try:
        respond(
            response_type="ephemeral",
            text=answer.text,
            blocks=answer.blocks or None,
            replace_original=False,
        )
    except (ValueError, OSError) as sent:  # a response_url that is no URL, or down
        log.warning("could not answer the subcommand: %s", sent)


def typed_playbook(services: Services, text: str, command_name: str) -> tuple[str, str] | str:
    """``<name> [param=value…]`` checked now: (name, params), or what is wrong with it."""
    name, params = [*text.split(None, 1), "", ""][:2]
    playbook = services.intake.playbooks.get(name)
    if playbook is None:
        known = ", ".join(sorted(services.intake.playbooks)) or "none are configured"
        return views.escape(f"No playbook {name or '(none given)'}. Playbooks: {known}.")
    try:
        expand(playbook, parse_params(params))
    except CommandError as exc:
        return views.escape(
            f"{views.sentence(exc.message)} Usage: {command_name} <device> playbook"
            f" {playbook.usage()}"
        )
    return name, " ".join(params.split())
