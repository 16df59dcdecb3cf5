"""``create_app``: a fresh Bolt App with our listeners, for the server, the demo and tests."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltContext, BoltRequest, BoltResponse
from slack_sdk import WebClient

from bot.listeners import register
from bot.logs import ContextThreadPool, about
from bot.metrics import Metrics, ObservedWebClient
from bot.services import Services

__all__ = ["create_app", "listener_pool"]


def create_app(
    services: Services,
    client: WebClient,
    *,
    socket_mode: bool = False,
    metrics: Metrics | None = None,
    listeners: ContextThreadPool | None = None,
) -> App:
    """The Slack app; in HTTP mode every request's signature is checked. Each request's
    log lines name its user; with ``metrics``, the time to its ack is measured."""
    settings = services.settings
    secret = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    )
    app = App(
        client=client,
        signing_secret=secret or "",
        # Socket Mode frames come over an authenticated socket, not signed HTTP requests.
        request_verification_enabled=not socket_mode,
        token_verification_enabled=True,
        process_before_response=False,
        # Bolt's default pool has 5 workers; view submissions wait on Defender for up to ~2 s.
        listener_executor=listeners or listener_pool(),
        logger=logging.getLogger("bot.bolt"),
    )
    if isinstance(client, ObservedWebClient):
        # Bolt hands each listener a plain WebClient of its own: observe its calls too.
        @app.middleware
        def observed_client(context: BoltContext, next: Callable[[], BoltResponse]) -> Any:
            context["client"] = client.like(context.client)
            return next()

    register(app, services)
    _observe_dispatch(app, metrics)
    return app


def listener_pool() -> ContextThreadPool:
    return ContextThreadPool(max_workers=16, thread_name_prefix="listener")


def _observe_dispatch(app: App, metrics: Metrics | None) -> None:
    """Both adapters hand each request to ``app.dispatch``, which returns once the listener
    has acked (``process_before_response=False``): its duration is the ack latency."""
    dispatch = app.dispatch

    def observed(req: BoltRequest) -> BoltResponse:
        body = req.body if isinstance(req.body, dict) else {}
        started = time.monotonic()
        try:
            with about(user=_user(body)):
                return dispatch(req)
        finally:
            if metrics is not None:
                metrics.acked(_kind(body), time.monotonic() - started)

    app.dispatch = observed  # type: ignore[method-assign]


def _user(body: dict[str, Any]) -> str | None:
    user = body.get("user")
    value = user.get("id") if isinstance(user, dict) else body.get("user_id")
    return value if isinstance(value, str) else None


def _kind(body: dict[str, Any]) -> str:
    """``slash_command``, ``block_actions``, ``view_submission``…: few, fixed values."""
    if "command" in body:
        return "slash_command"
    kind = body.get("type")
    known = {"block_actions", "view_submission", "view_closed", "event_callback", "shortcut"}
    return kind if isinstance(kind, str) and kind in known else "other"
