"""Slack listeners: ack, parse, delegate, render. Registered explicitly on a fresh App."""

from __future__ import annotations

from slack_bolt import App

from bot.listeners import actions, commands, errors, library, modal
from bot.services import Services

__all__ = ["register"]


def register(app: App, services: Services) -> None:
    commands.register(app, services)
    modal.register(app, services)
    actions.register(app, services)
    library.register(app, services)
    errors.register(app)
