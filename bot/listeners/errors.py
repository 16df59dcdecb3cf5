"""One place where an unexpected listener failure is logged with an id people can quote."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from slack_bolt import App

__all__ = ["register"]

log = logging.getLogger(__name__)


def register(app: App) -> None:
    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> None:
        incident = uuid.uuid4().hex[:8]
        kind = body.get("type") or body.get("command") or "request"
        user = (body.get("user") or {}).get("id") or body.get("user_id")
        log.error("listener failed (error id %s, %s from %s)", incident, kind, user, exc_info=error)
