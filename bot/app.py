"""``create_app``: a fresh Bolt App with our listeners, for the server, the demo and tests."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from slack_bolt import App
from slack_sdk import WebClient

from bot.listeners import register
from bot.services import Services

__all__ = ["create_app"]


def create_app(services: Services, client: WebClient, *, socket_mode: bool = False) -> App:
    """The Slack app; in HTTP mode every request's signature is checked."""
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
        listener_executor=ThreadPoolExecutor(max_workers=16, thread_name_prefix="listener"),
        logger=logging.getLogger("bot.bolt"),
    )
    register(app, services)
    return app
