"""One place where an unexpected listener failure is logged with an id people can quote."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from slack_bolt import App

from bot.listeners._read import object_id

__all__ = ["register"]

log = logging.getLogger(__name__)


def register(app: App) -> None:
    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> None:
        incident = uuid.uuid4().hex[:8]
        # The body may be what made the listener fail: read it without trusting its shape.
        kind = str(body.get("type") or body.get("command") or "request")[:100]
        user = (object_id(body, "user") or str(body.get("user_id") or ""))[:100]
        log.error("listener failed (error id %s, %s from %s)", incident, kind, user, exc_info=error)
