"""``lrbot check``'s Slack lines: the token and its scopes, the mode's credential, the
policy and the user groups it names. Only Slack's error codes are shown, never a token."""

from __future__ import annotations

from dataclasses import dataclass, field

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.check import OFFLINE, TIMEOUT_SECONDS, CheckResult, fail, ok, skip, warn
from bot.policy import Policy
from bot.settings import BotSettings
from bot.slack_scopes import missing_scopes
from commands.errors import ConfigurationError

__all__ = ["slack_checks"]

SLACK_APP_PAGE = "https://api.slack.com/apps > the app"


@dataclass
class _Run:
    """The lines so far, and the client once its token worked."""

    results: list[CheckResult] = field(default_factory=list)
    slack: WebClient | None = None

    def add(self, result: CheckResult) -> None:
        self.results.append(result)


def slack_checks(settings: BotSettings) -> list[CheckResult]:
    """slack token, slack scopes, slack mode, policy, user groups: in that order."""
    run = _Run()
    _check_slack(run, settings)
    _check_mode(run, settings)
    _check_policy(run, settings)
    return run.results


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
