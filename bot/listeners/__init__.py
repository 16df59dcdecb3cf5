"""Slack listeners: ack, parse, delegate, render. Registered explicitly on a fresh App."""

from __future__ import annotations

from slack_bolt import App

from bot.links import WorkspaceLinks
from bot.listeners import actions, batch, commands, errors, home, library, modal
from bot.listeners.status import Subcommands
from bot.lookup import Lookup
from bot.services import Services

__all__ = ["register"]


def register(app: App, services: Services) -> None:
    lifecycle = services.lifecycle
    lookup = Lookup(lifecycle.store, lifecycle.policy, lifecycle.directory.members, lifecycle.clock)
    links = WorkspaceLinks(app.client)
    subcommands = Subcommands(
        lifecycle, lookup, links, services.settings.slash_command, services.batches
    )
    commands.register(app, services, subcommands)
    modal.register(app, services)
    actions.register(app, services)
    home.register(app, lookup, links)
    batch.register(app, services)
    library.register(app, services)
    errors.register(app)
