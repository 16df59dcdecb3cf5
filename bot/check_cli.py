"""``lrbot check``: verify the whole configuration, line by line, with what to fix.

Each check makes at most a couple of calls with a short timeout, so the command ends in
seconds. A check whose prerequisite failed is skipped with the reason. Secrets and tokens
are only ever used, never printed: Slack's and Entra's own error codes are.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.check import (
    SETTINGS,
    CheckResult,
    exit_status,
    fail,
    ok,
    render,
    skip,
    summary,
    warn,
)
from bot.check_advice import GRANT_ROLES, missing_roles, sign_in_advice, token_roles
from bot.db_cli import missing_sqlite_file
from bot.policy import Policy
from bot.schema import SchemaState
from bot.settings import BotSettings, load_bot_settings
from bot.slack_scopes import missing_scopes
from bot.store import schema_status, shown_url
from commands.auth import MsalTokenProvider
from commands.client import DefenderClient
from commands.config import DefenderSettings, load_defender_settings
from commands.errors import (
    ApiError,
    AuthenticationError,
    ConfigurationError,
    DefenderError,
    TransportError,
)

__all__ = ["add_check_parser", "bounded_url", "run_checks"]

TIMEOUT_SECONDS = 5.0  # each Slack or Defender call
OFFLINE = "`lrbot check --offline` (the built-in Defender simulator and a stand-in Slack)"
SLACK_APP_PAGE = "https://api.slack.com/apps > the app"


@dataclass
class _Defender:
    """Where the Defender checks sign in and call: the tenant, or the built-in simulator."""

    settings: DefenderSettings | None
    msal_http: Any = None  # None: MSAL's own session, trusting the environment's CAs
    transport: httpx.BaseTransport | None = None


@dataclass
class _Run:
    """What the checks learned so far, for the ones after them."""

    results: list[CheckResult] = field(default_factory=list)
    slack: WebClient | None = None
    token: str | None = None
    provider: MsalTokenProvider | None = None

    def add(self, result: CheckResult) -> CheckResult:
        self.results.append(result)
        return result


# -- Slack ---------------------------------------------------------------------------------


def _slack_failure(exc: Exception) -> str:
    if isinstance(exc, SlackApiError):
        return f"Slack answered {exc.response.get('error', 'an error')}"
    return f"Slack did not answer ({type(exc).__name__})"


def _check_slack(run: _Run, settings: BotSettings) -> None:
    if settings.slack_bot_token is None:
        run.add(
            fail(
                "slack token",
                "SLACK_BOT_TOKEN is not set",
                f"set it to the Bot User OAuth Token (xoxb-…) under {SLACK_APP_PAGE} > OAuth &"
                f" Permissions; or try {OFFLINE}",
            )
        )
        run.add(skip("slack scopes", "no Slack token"))
        return
    client = WebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=int(TIMEOUT_SECONDS),
    )
    try:
        answer = client.auth_test()
    except (SlackApiError, OSError) as exc:
        run.add(
            fail(
                "slack token",
                f"auth.test failed: {_slack_failure(exc)}",
                f"set SLACK_BOT_TOKEN to the Bot User OAuth Token (xoxb-…) under {SLACK_APP_PAGE}"
                " > OAuth & Permissions (reinstall the app if it was revoked); check"
                " SLACK_API_URL and the network",
            )
        )
        run.add(skip("slack scopes", "the Slack token did not work"))
        return
    run.slack = client
    run.add(ok("slack token", f"valid: bot {answer.get('user')} in workspace {answer.get('team')}"))
    headers = {str(k).lower(): v for k, v in (answer.headers or {}).items()}
    granted = headers.get("x-oauth-scopes")
    granted = granted[0] if isinstance(granted, list) else granted
    if granted is None:
        run.add(
            warn(
                "slack scopes",
                "Slack's answer did not list the token's scopes (no x-oauth-scopes header)",
                "compare the app's Bot Token Scopes with manifest.yml by hand",
            )
        )
        return
    missing = missing_scopes(granted)
    if missing:
        run.add(
            fail(
                "slack scopes",
                f"the token lacks {', '.join(missing)}",
                f"add them under {SLACK_APP_PAGE} > OAuth & Permissions > Bot Token Scopes (or"
                " update the app from manifest.yml), then reinstall the app to the workspace",
            )
        )
    else:
        run.add(ok("slack scopes", "the token has every scope manifest.yml asks for"))


def _check_mode(run: _Run, settings: BotSettings) -> None:
    app_token = settings.slack_app_token
    if app_token is not None:
        if app_token.get_secret_value().startswith("xapp-"):
            run.add(ok("slack mode", "Socket Mode: SLACK_APP_TOKEN is an app-level token"))
        else:
            run.add(
                fail(
                    "slack mode",
                    "Socket Mode: SLACK_APP_TOKEN does not start with xapp-",
                    f"create an app-level token with connections:write under {SLACK_APP_PAGE}"
                    " > Basic Information > App-Level Tokens (or unset it for HTTP mode)",
                )
            )
    elif settings.slack_signing_secret is not None:
        run.add(ok("slack mode", "HTTP mode: SLACK_SIGNING_SECRET is set"))
    else:
        run.add(
            fail(
                "slack mode",
                "HTTP mode (no SLACK_APP_TOKEN) without SLACK_SIGNING_SECRET",
                f"set SLACK_SIGNING_SECRET from {SLACK_APP_PAGE} > Basic Information > App"
                " Credentials, or SLACK_APP_TOKEN (xapp-…) for Socket Mode",
            )
        )


def _policy_groups(policy: Policy) -> list[str]:
    named = [p for rule in policy.rules.values() for p in (*rule.requesters, *rule.approvers)]
    return sorted({p for p in named if p.startswith("S")})


def _check_policy(run: _Run, settings: BotSettings) -> None:
    from bot.policy_file import policy_from_settings

    try:
        policy = policy_from_settings(settings)
    except ConfigurationError as exc:
        run.add(fail("policy", str(exc), "see the README's approval policy section"))
        run.add(skip("user groups", "the policy could not be read"))
        return
    groups = _policy_groups(policy)
    run.add(ok("policy", f"read from {policy.source}"))
    if not groups:
        run.add(ok("user groups", "the policy names no user groups"))
    elif run.slack is None:
        run.add(skip("user groups", "no working Slack token to look them up with"))
    else:
        _check_groups(run, run.slack, groups)


def _check_groups(run: _Run, slack: WebClient, groups: list[str]) -> None:
    try:
        answer = slack.usergroups_list(include_disabled=False)
    except (SlackApiError, OSError) as exc:
        run.add(
            fail(
                "user groups",
                f"usergroups.list failed: {_slack_failure(exc)}",
                "give the bot the usergroups:read scope and reinstall the app",
            )
        )
        return
    existing = {str(g.get("id")) for g in answer.get("usergroups") or [] if isinstance(g, dict)}
    absent = [g for g in groups if g not in existing]
    if absent:
        run.add(
            fail(
                "user groups",
                f"the policy names user group(s) Slack does not have: {', '.join(absent)}",
                "use the group ids (S…) from Slack's People > User groups, or create the groups",
            )
        )
    else:
        run.add(ok("user groups", f"all {len(groups)} exist: {', '.join(groups)}"))


# -- Defender ------------------------------------------------------------------------------


def _credential_fix(problem: str) -> str:
    if problem.startswith("missing settings"):
        return (
            "register an app in Entra ID (README: The Entra application) and set its ids and"
            f" credential; or try {OFFLINE}"
        )
    if problem.startswith("DEFENDER_CLIENT_CERTIFICATE"):
        return (
            "point DEFENDER_CLIENT_CERTIFICATE at one PEM file holding the unencrypted private"
            " key and the certificate uploaded to the app"
        )
    return "correct that setting (environment or .env)"


def _check_sign_in(run: _Run, defender: _Defender) -> None:
    settings = defender.settings
    assert settings is not None
    try:
        settings.require_credentials()
        provider = MsalTokenProvider(settings, http_client=defender.msal_http)
        run.token = provider.token()
    except ConfigurationError as exc:
        run.add(fail("defender token", str(exc), _credential_fix(str(exc))))
        return
    except AuthenticationError as exc:
        meaning, fix = sign_in_advice(exc.error, exc.description)
        run.add(fail("defender token", meaning, fix))
        return
    except TransportError as exc:
        run.add(
            fail(
                "defender token",
                str(exc),
                "check DEFENDER_CLOUD / DEFENDER_AUTHORITY_HOST, the network and any proxy",
            )
        )
        return
    run.provider = provider
    run.add(ok("defender token", f"issued for app {settings.client_id} by {settings.authority}"))


def _check_roles(run: _Run) -> None:
    assert run.token is not None
    roles = token_roles(run.token)
    if roles is None:
        run.add(
            fail("defender roles", "the token is not a JWT: its roles cannot be read", GRANT_ROLES)
        )
        return
    missing = missing_roles(roles)
    if missing:
        run.add(
            fail(
                "defender roles",
                f"the token lacks {', '.join(missing)}",
                f"add {', '.join(missing)}: {GRANT_ROLES}",
            )
        )
    else:
        run.add(ok("defender roles", "Machine.LiveResponse, Machine.Read.All, Library.Manage"))


def _api_failure(exc: DefenderError) -> tuple[str, str]:
    if isinstance(exc, ApiError) and exc.status in (401, 403):
        return f"Defender refused: {exc.status} {exc.code}", f"check the roles above; {GRANT_ROLES}"
    if isinstance(exc, ApiError):
        return (
            f"Defender answered {exc.status} {exc.code}",
            "try again later; if it persists, check Defender's service health",
        )
    return str(exc), "check DEFENDER_API_URL (DEFENDER_CLOUD), the network and any proxy"


def _check_endpoints(run: _Run, defender: _Defender) -> None:
    assert defender.settings is not None and run.provider is not None
    client = DefenderClient(
        defender.settings,
        token_provider=run.provider,
        transport=defender.transport,
        max_get_retries=0,  # a check reports what it saw; the bot retries
    )
    with client:
        for name, call, what in (
            ("defender machines", lambda: client.sample_machines(1), "machine"),
            ("defender library", client.library_files, "library file"),
        ):
            try:
                found = len(call())
            except DefenderError as exc:
                detail, fix = _api_failure(exc)
                run.add(fail(name, detail, fix))
            else:
                run.add(ok(name, f"answers ({found} {what}(s) in the first page)"))


def _check_defender(run: _Run, defender: _Defender) -> None:
    _check_sign_in(run, defender)
    if run.token is None:
        for name in ("defender roles", "defender machines", "defender library"):
            run.add(skip(name, "no Defender token"))
        return
    _check_roles(run)
    _check_endpoints(run, defender)


# -- database ------------------------------------------------------------------------------


def bounded_url(url: str, seconds: float = TIMEOUT_SECONDS) -> str:
    """The URL with a connect timeout for PostgreSQL (unless it sets one): an unreachable
    server must not hold the check for the operating system's TCP timeout."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "postgresql" or "connect_timeout" in parsed.query:
        return url
    bounded = parsed.update_query_dict({"connect_timeout": str(max(1, round(seconds)))})
    return bounded.render_as_string(hide_password=False)


def _check_database(run: _Run, url: str) -> None:
    shown = shown_url(url)
    try:
        if missing_sqlite_file(url):
            run.add(ok("database", f"{shown}: no file yet; the first `lrbot serve` creates it"))
            return
        status = schema_status(bounded_url(url))
    except sa.exc.SQLAlchemyError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        run.add(fail("database", f"{shown}: cannot open: {reason}", "check LRBOT_DATABASE_URL"))
        return
    if status.state in (SchemaState.CURRENT, SchemaState.EMPTY):
        run.add(ok("database", f"{shown}: {status.describe()}"))
    else:
        fix = "run `lrbot db upgrade`" if status.state is not SchemaState.AHEAD else ""
        run.add(fail("database", f"{shown}: {status.refusal()}", fix))


# -- the command ---------------------------------------------------------------------------

_AFTER_SETTINGS = (
    "slack token",
    "slack scopes",
    "slack mode",
    "policy",
    "user groups",
    "defender token",
    "defender roles",
    "defender machines",
    "defender library",
    "database",
)


def run_checks(
    bot_overrides: dict[str, Any] | None = None, defender: _Defender | None = None
) -> list[CheckResult]:
    """Every check in order; ``defender`` None: the tenant the environment names."""
    run = _Run()
    try:
        settings = load_bot_settings(**(bot_overrides or {}))
        if defender is None:
            defender = _Defender(load_defender_settings(timeout_seconds=TIMEOUT_SECONDS))
    except ConfigurationError as exc:
        run.add(fail(SETTINGS, str(exc), "correct that setting (environment or .env)"))
        run.results += [skip(name, "the settings could not be read") for name in _AFTER_SETTINGS]
        return run.results
    run.add(ok(SETTINGS, "SLACK_*, LRBOT_* and DEFENDER_* read"))
    _check_slack(run, settings)
    _check_mode(run, settings)
    _check_policy(run, settings)
    _check_defender(run, defender)
    _check_database(run, settings.database_url)
    return run.results


@contextlib.contextmanager
def _offline() -> Iterator[tuple[dict[str, Any], _Defender]]:
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
        yield overrides, _Defender(settings, msal_http, httpx.HTTPTransport(verify=trust))


def _command(args: argparse.Namespace) -> int:
    if args.offline:
        with _offline() as (overrides, defender):
            results = run_checks(overrides, defender)
    elif args.simulate_defender:
        from bot.defender import simulator_sign_in

        with simulator_sign_in() as (_sim, settings, msal_http, trust):
            transport = httpx.HTTPTransport(verify=trust)
            results = run_checks(None, _Defender(settings, msal_http, transport))
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
