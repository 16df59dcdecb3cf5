"""The library file picker's options: Slack asks as the analyst types, within 3 seconds."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App

from bot.ids import Action
from bot.library_cache import library_options
from bot.services import Services
from commands.errors import DefenderError

__all__ = ["register"]

log = logging.getLogger(__name__)

OPTIONS_SECONDS = 2.0  # of Slack's 3 s for an options answer, what the library read may take


def register(app: App, services: Services) -> None:
    @app.options(str(Action.LIBRARY_FILE))
    def library_file_options(ack: Ack, body: dict[str, Any]) -> None:
        typed = body.get("value")
        try:
            files = services.intake.library.within(OPTIONS_SECONDS)
        except DefenderError as exc:
            # An empty list leaves the box usable: the name can still be typed in the row.
            log.warning("library listing for the file picker failed: %s", exc)
            ack(options=[])
            return
        ack(options=library_options(files, typed if isinstance(typed, str) else ""))
