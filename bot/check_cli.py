"""``lrbot check``: verify the whole configuration, line by line, with what to fix.

Each check makes at most a couple of calls with a short timeout, so the command ends in
seconds. A check whose prerequisite failed is skipped with the reason. Secrets and tokens
are only ever used, never printed: Slack's and Entra's own error codes are. The Slack
lines are made in ``check_slack``, the Defender lines in ``check_defender``.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bot.check import (
    SETTINGS,
    TIMEOUT_SECONDS,
    CheckResult,
    exit_status,
    fail,
    ok,
    render,
    skip,
    summary,
)
from bot.check_defender import DefenderTarget, defender_checks
from bot.check_slack import slack_checks
from bot.db_cli import missing_sqlite_file
from bot.playbook_file import load_playbooks
from bot.schema import SchemaState
from bot.settings import load_bot_settings
from bot.store import schema_status, shown_url
from commands.config import load_defender_settings
from commands.errors import ConfigurationError

__all__ = ["add_check_parser", "bounded_url", "run_checks"]


# -- database ------------------------------------------------------------------------------


def bounded_url(url: str, seconds: float = TIMEOUT_SECONDS) -> str:
    """The URL with a connect timeout for PostgreSQL (unless it sets one): an unreachable
    server must not hold the check for the operating system's TCP timeout."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "postgresql" or "connect_timeout" in parsed.query:
        return url
    bounded = parsed.update_query_dict({"connect_timeout": str(max(1, round(seconds)))})
    return bounded.render_as_string(hide_password=False)


def _check_database(url: str) -> CheckResult:
    shown = shown_url(url)
    try:
        if missing_sqlite_file(url):
            return ok("database", f"{shown}: no file yet; the first `lrbot serve` creates it")
        status = schema_status(bounded_url(url))
    except sa.exc.SQLAlchemyError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return fail("database", f"{shown}: cannot open: {reason}", "check LRBOT_DATABASE_URL")
    if status.state in (SchemaState.CURRENT, SchemaState.EMPTY):
        return ok("database", f"{shown}: {status.describe()}")
    fix = "run `lrbot db upgrade`" if status.state is not SchemaState.AHEAD else ""
    return fail("database", f"{shown}: {status.refusal()}", fix)


# -- the command ---------------------------------------------------------------------------

_AFTER_SETTINGS = (
    "slack token",
    "slack scopes",
    "slack mode",
    "policy",
    "user groups",
    "playbooks",
    "defender token",
    "defender roles",
    "defender machines",
    "defender library",
    "database",
)


def run_checks(
    bot_overrides: dict[str, Any] | None = None, defender: DefenderTarget | None = None
) -> list[CheckResult]:
    """Every check in order; ``defender`` None: the tenant the environment names."""
    try:
        settings = load_bot_settings(**(bot_overrides or {}))
        if defender is None:
            defender = DefenderTarget(load_defender_settings(timeout_seconds=TIMEOUT_SECONDS))
    except ConfigurationError as exc:
        unread = [skip(name, "the settings could not be read") for name in _AFTER_SETTINGS]
        return [fail(SETTINGS, str(exc), "correct that setting (environment or .env)"), *unread]
    return [
        ok(SETTINGS, "SLACK_*, LRBOT_* and DEFENDER_* read"),
        *slack_checks(settings),
        _check_playbooks(settings.playbooks_file),
        *defender_checks(defender),
        _check_database(settings.database_url),
    ]


def _check_playbooks(path: Path | None) -> CheckResult:
    """The playbooks file, read as ``lrbot serve`` reads it at start-up (which it would
    refuse)."""
    if path is None:
        return ok("playbooks", "none (LRBOT_PLAYBOOKS is not set)")
    try:
        playbooks = load_playbooks(path)
    except ConfigurationError as exc:
        return fail("playbooks", str(exc), "correct the file: `lrbot serve` will not start with it")
    return ok("playbooks", f"{len(playbooks)} read from {path}")


@contextlib.contextmanager
def _offline() -> Iterator[tuple[dict[str, Any], DefenderTarget]]:
    """The stand-in Slack and the Defender simulator, and settings naming them."""
    from bot.defender import simulator_sign_in
    from bot.sandbox import FakeSlack

    token, group = "xoxb-offline-check", "S0OFFLINE1"
    with (
        FakeSlack(token=token) as slack,
        simulator_sign_in() as (_sim, settings, msal_http, trust),
        tempfile.TemporaryDirectory(prefix="lrbot-check-") as scratch,
    ):
        slack.set_usergroup(group, ["U0OFFLINE1"])
        overrides = {
            "slack_bot_token": token,
            "slack_api_url": slack.base_url,
            "slack_app_token": "xapp-offline-check",
            "approvers": (group,),
            "policy_file": None,
            "database_url": f"sqlite:///{Path(scratch) / 'lrbot.sqlite3'}",
        }
        yield overrides, DefenderTarget(settings, msal_http, httpx.HTTPTransport(verify=trust))


def _command(args: argparse.Namespace) -> int:
    if args.offline:
        with _offline() as (overrides, defender):
            results = run_checks(overrides, defender)
    elif args.simulate_defender:
        from bot.defender import simulator_sign_in

        with simulator_sign_in() as (_sim, settings, msal_http, trust):
            transport = httpx.HTTPTransport(verify=trust)
            results = run_checks(None, DefenderTarget(settings, msal_http, transport))
    else:
        results = run_checks()
    for result in results:
        print(render(result))
    print(summary(results))
    if args.offline:
        print("(offline: against the built-in Defender simulator and a stand-in Slack)")
    return exit_status(results)


def add_check_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``lrbot check``."""
    check = sub.add_parser(
        "check",
        help="verify the configuration line by line: Slack, Defender, the database",
        description=(
            "Checks the settings, the Slack token and its scopes, the Socket Mode token or"
            " signing secret, the policy's user groups, a Defender token and its roles, the"
            " machines and library endpoints, and the database schema. Exit 0 when lrbot has"
            " everything a run needs, 1 when a check failed, 2 when a setting cannot be read."
        ),
    )
    where = check.add_mutually_exclusive_group()
    where.add_argument(
        "--simulate-defender",
        action="store_true",
        help="check Defender against the built-in simulator (as `lrbot serve --simulate-defender`)",
    )
    where.add_argument(
        "--offline",
        action="store_true",
        help="check against the built-in simulator and a stand-in Slack: see every line pass",
    )
    check.set_defaults(handler=_command)
