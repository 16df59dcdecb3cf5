"""``lrbot serve``: the bot in Socket Mode or HTTP mode, until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from bot.defender import real_defender, simulated_defender
from bot.http import HttpServer
from bot.policy_file import policy_from_settings
from bot.runtime import build_runtime
from bot.schema import SchemaError
from bot.settings import BotSettings, load_bot_settings
from commands.config import load_defender_settings
from commands.errors import ConfigurationError

__all__ = ["serve", "validate_for_serving"]

log = logging.getLogger(__name__)


def validate_for_serving(settings: BotSettings) -> bool:
    """Refuse to start without what this mode needs; True for Socket Mode."""
    if settings.slack_bot_token is None:
        raise ConfigurationError("SLACK_BOT_TOKEN: required (the bot token, xoxb-…)")
    policy_from_settings(settings)  # a bad policy stops the start, with its precise error
    socket_mode = settings.slack_app_token is not None
    if not socket_mode and settings.slack_signing_secret is None:
        raise ConfigurationError(
            "SLACK_SIGNING_SECRET: required in HTTP mode (or set SLACK_APP_TOKEN for Socket Mode)"
        )
    return socket_mode


@contextlib.contextmanager
def _defender(simulate: bool, time_scale: float) -> Iterator[Any]:
    if simulate:
        with simulated_defender(time_scale=time_scale) as (client, sim):
            log.info("using the built-in Defender simulator at %s", sim.base_url)
            yield client
    else:
        with real_defender(load_defender_settings()) as client:
            yield client


def serve(args: argparse.Namespace) -> int:
    settings = load_bot_settings()
    socket_mode = validate_for_serving(settings)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    bound = settings.shutdown_seconds
    with _defender(args.simulate_defender, args.time_scale) as defender:
        try:
            # Creates the schema in an empty database; refuses one at another revision.
            runtime = build_runtime(settings, defender, socket_mode=socket_mode)
        except SchemaError as exc:
            print(f"lrbot: {exc}", file=sys.stderr)
            return 2
        ops = (runtime.health, runtime.metrics)
        deadline = time.monotonic() + bound  # set again when the signal comes
        runtime.start()
        runtime.health.start()  # readiness probes while idle
        health: HttpServer | None = None
        try:
            if socket_mode:
                # No HTTP port of its own: health and metrics on a small one.
                health = HttpServer(
                    None, host=settings.health_host, port=settings.health_port, threads=2, ops=ops
                )
                health.start()
                from slack_bolt.adapter.socket_mode import SocketModeHandler

                assert settings.slack_app_token is not None
                handler = SocketModeHandler(
                    runtime.app, settings.slack_app_token.get_secret_value()
                )
                handler.connect()  # type: ignore[no-untyped-call]
                log.info("connected to Slack in Socket Mode")
                stop.wait()
                deadline = _stopping(bound)
                handler.close()  # type: ignore[no-untyped-call]
            else:
                server = HttpServer(runtime.app, host=args.host, port=args.port, ops=ops)
                server.start()
                stop.wait()
                deadline = _stopping(bound)
                if not server.drain(deadline - time.monotonic()):
                    log.warning("stopping with Slack requests still unanswered")
                server.stop()
        finally:
            runtime.stop(max(deadline - time.monotonic(), 0.0))
            if health is not None:
                health.stop()
            log.info("stopped; unfinished runs resume at the next start")
    return 0


def _stopping(bound: float) -> float:
    """Say so, and give the deadline for finishing what is in hand."""
    log.info(
        "stopping: no new Slack requests; finishing what is in hand within %g s "
        "(the tracker's current step, the outbox's current item)",
        bound,
    )
    return time.monotonic() + bound
