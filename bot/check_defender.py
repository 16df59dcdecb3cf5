"""``lrbot check``'s Defender lines: a token through the bot's own MSAL path (a refusal
explained from its AADSTS code), its roles, and the machines and library endpoints. The
secret and the token are used, never shown."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from bot.check import OFFLINE, CheckResult, fail, ok, skip
from bot.check_advice import GRANT_ROLES, missing_roles, sign_in_advice, token_roles
from commands.auth import MsalTokenProvider
from commands.client import DefenderClient
from commands.config import DefenderSettings
from commands.errors import (
    ApiError,
    AuthenticationError,
    ConfigurationError,
    DefenderError,
    TransportError,
)

__all__ = ["DefenderTarget", "defender_checks"]


@dataclass
class DefenderTarget:
    """Where the Defender checks sign in and call: the tenant, or the built-in simulator."""

    settings: DefenderSettings
    msal_http: Any = None  # None: MSAL's own session, trusting the environment's CAs
    transport: httpx.BaseTransport | None = None


@dataclass
class _Run:
    """The lines so far, and the token and its provider once sign-in worked."""

    results: list[CheckResult] = field(default_factory=list)
    token: str | None = None
    provider: MsalTokenProvider | None = None

    def add(self, result: CheckResult) -> None:
        self.results.append(result)


def defender_checks(target: DefenderTarget) -> list[CheckResult]:
    """defender token, roles, machines, library: in that order."""
    run = _Run()
    _check_sign_in(run, target)
    if run.token is None:
        for name in ("defender roles", "defender machines", "defender library"):
            run.add(skip(name, "no Defender token"))
        return run.results
    _check_roles(run)
    _check_endpoints(run, target)
    return run.results


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


def _check_sign_in(run: _Run, defender: DefenderTarget) -> None:
    settings = defender.settings
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


def _check_endpoints(run: _Run, defender: DefenderTarget) -> None:
    assert run.provider is not None
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
