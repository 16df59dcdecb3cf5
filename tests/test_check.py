"""``lrbot check``'s pure parts: its lines, its exit rule, the sign-in advice, the token's
roles and the Slack scopes it compares (kept equal to manifest.yml's)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import yaml
from hypothesis import given
from hypothesis import strategies as st

from bot.check import SETTINGS, State, exit_status, fail, ok, render, skip, summary, warn
from bot.check_advice import missing_roles, sign_in_advice, token_roles
from bot.check_cli import bounded_url
from bot.slack_scopes import BOT_SCOPES, missing_scopes

MANIFEST = Path(__file__).resolve().parents[1] / "manifest.yml"


def _jwt(claims: object) -> str:
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


# -- lines and exit status -------------------------------------------------------------------


def test_a_line_per_check_with_its_state_and_fix() -> None:
    assert render(ok("database", "up to date")) == "ok    database: up to date"
    assert render(fail("slack mode", "no secret", "set it")) == (
        "FAIL  slack mode: no secret. Fix: set it"
    )
    assert render(warn("x", "odd", "look")) == "WARN  x: odd. Fix: look"
    assert render(skip("defender roles", "no Defender token")) == (
        "skip  defender roles: no Defender token"
    )


def test_a_detail_quoting_newlines_stays_on_one_line() -> None:
    line = render(fail("policy", "bad\nTOML\n  here", "fix\nit"))
    assert "\n" not in line
    assert line == "FAIL  policy: bad TOML here. Fix: fix it"


def test_exit_status_is_0_only_when_nothing_failed() -> None:
    assert exit_status([ok(SETTINGS, "read"), ok("a", "fine"), warn("b", "meh")]) == 0
    assert exit_status([ok(SETTINGS, "read"), fail("a", "broken"), skip("b", "after a")]) == 1
    assert exit_status([fail(SETTINGS, "LRBOT_POLL_SECONDS: bad"), skip("a", "no settings")]) == 2


def test_summary_counts_problems() -> None:
    assert summary([ok("a", ""), ok("b", "")]).startswith("all 2 checks passed")
    assert summary([ok("a", ""), warn("b", "")]).startswith("all 2 checks passed (1 warning")
    assert summary([fail("a", ""), fail("b", ""), skip("c", "")]).startswith("2 problem(s)")


@given(st.text(), st.text(), st.sampled_from(list(State)))
def test_any_detail_renders_as_one_line(detail: str, fix: str, state: State) -> None:
    line = render(fail("n", detail, fix) if state is State.FAIL else skip("n", detail))
    assert len(line.splitlines()) <= 1


# -- sign-in advice --------------------------------------------------------------------------


def test_aadsts_codes_are_explained_in_words() -> None:
    cases = {
        "AADSTS7000215: Invalid client secret provided.": "client secret is wrong",
        "AADSTS90002: Tenant 'x' not found.": "tenant was not found",
        "AADSTS700016: Application with identifier 'y' was not found": "application was not",
        "AADSTS65001: The user or administrator has not consented": "consented",
        "AADSTS700027: Client assertion failed": "certificate was refused",
    }
    for description, meaning in cases.items():
        said, fix = sign_in_advice("invalid_client", description)
        assert meaning in said
        assert fix


def test_msal_invalid_authority_means_the_tenant() -> None:
    said, fix = sign_in_advice("invalid_authority", "Unable to get authority configuration")
    assert "tenant was not found" in said
    assert "DEFENDER_TENANT_ID" in fix


def test_an_unknown_code_is_named() -> None:
    said, fix = sign_in_advice("invalid_request", "AADSTS12345: something new")
    assert "AADSTS12345" in said and "AADSTS12345" in fix


@given(st.text(), st.text())
def test_advice_never_quotes_the_description(error: str, description: str) -> None:
    said, fix = sign_in_advice(error, "secret-" + description)
    assert "secret-" not in said + fix


# -- roles -----------------------------------------------------------------------------------


def test_roles_are_read_from_the_token_payload() -> None:
    token = _jwt({"roles": ["Machine.Read.All", "Library.Manage"], "tid": "t"})
    roles = token_roles(token)
    assert roles == {"Machine.Read.All", "Library.Manage"}
    assert missing_roles(roles) == ["Machine.LiveResponse"]
    assert token_roles(_jwt({"tid": "t"})) == frozenset()
    assert token_roles(_jwt({"roles": "Machine.Read.All"})) == frozenset()


@given(st.text())
def test_any_token_text_gives_roles_or_none(token: str) -> None:
    roles = token_roles(token)
    assert roles is None or isinstance(roles, frozenset)


@given(st.recursive(st.none() | st.integers() | st.text(), st.lists, max_leaves=5))
def test_any_payload_gives_roles_or_none(claims: object) -> None:
    roles = token_roles(_jwt(claims))
    assert roles is None or isinstance(roles, frozenset)


# -- Slack scopes ----------------------------------------------------------------------------


def test_needed_scopes_are_the_manifests() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert list(BOT_SCOPES) == manifest["oauth_config"]["scopes"]["bot"]


def test_missing_scopes_from_slacks_header() -> None:
    assert missing_scopes(",".join(BOT_SCOPES)) == []
    assert missing_scopes("commands, chat:write,users:read,extra:scope") == [
        "chat:write.public",
        "files:write",
        "im:write",
        "usergroups:read",
    ]
    assert missing_scopes(None) == list(BOT_SCOPES)


# -- the database check's bound ----------------------------------------------------------------


def test_postgresql_gets_a_connect_timeout_unless_it_has_one() -> None:
    url = "postgresql+psycopg://lrbot:pw@db.internal/lrbot"
    assert bounded_url(url) == f"{url}?connect_timeout=5"
    assert bounded_url(f"{url}?connect_timeout=2") == f"{url}?connect_timeout=2"
    assert bounded_url("sqlite:///lrbot.sqlite3") == "sqlite:///lrbot.sqlite3"
