"""``lrbot check`` as a real process against the stand-in Slack and the Defender simulator
(TLS, MSAL): a good configuration passes every line; each broken one fails with its own line
and fix, and exit 1; a setting that cannot be read gives exit 2. No secret or token shows."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.store import Store
from commands.simulator import TOKEN_MARKER, Fault
from tests.helpers import leaks
from tests.helpers.bot import APP_TOKEN, APPROVER, BOT_TOKEN, LEADS
from tests.helpers.defender import SECRET, build_scenario
from tests.helpers.process import START_SECONDS, World, bot_world
from tests.helpers.tls import make_client_certificate

CHECKS = (
    "settings",
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


@dataclass(frozen=True)
class Outcome:
    status: int
    output: str

    def line(self, name: str) -> str:
        """The line of the check ``name`` (its label stripped)."""
        [found] = [line for line in self.output.splitlines() if line[6:].startswith(f"{name}: ")]
        return found

    def state(self, name: str) -> str:
        return self.line(name)[:4].strip()


def check(world: World, env: dict[str, str] | None = None, *options: str) -> Outcome:
    """``lrbot check`` in the world's environment; its output scanned by the leak guard."""
    env = env if env is not None else world.environment()
    done = subprocess.run(
        [sys.executable, "-m", "bot", "check", *options],
        cwd=world.workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=START_SECONDS,
        check=False,
    )
    output = done.stdout + done.stderr
    leaks.watch_output(f"lrbot check {' '.join(options)}", lambda: output)
    for secret in (BOT_TOKEN, APP_TOKEN, world.secret, SECRET, TOKEN_MARKER):
        assert secret not in output
    assert not done.stderr, done.stderr  # the report is the lines; nothing else to read
    return Outcome(done.returncode, done.stdout)


def test_a_good_configuration_passes_every_line_quickly(tmp_path: Path) -> None:
    with bot_world(tmp_path) as world:
        Store(world.database_url).close()  # a database at the current schema
        outcome = check(world)
        assert outcome.status == 0, outcome.output
        for name in CHECKS:
            assert outcome.state(name) == "ok", outcome.output
        assert "defender roles: Machine.LiveResponse, Machine.Read.All, Library.Manage" in (
            outcome.line("defender roles")
        )
        assert outcome.output.splitlines()[-1].startswith("all 12 checks passed")
        assert world.slack.call_count("auth.test") == 1
        assert world.slack.call_count("usergroups.list") == 1


@dataclass(frozen=True)
class Broken:
    check: str
    says: str
    fix: str
    env: dict[str, str | None]
    scenario: dict[str, object] | None = None
    prepare: Callable[[World], None] | None = None


def _behind(world: World) -> None:
    Store(world.database_url).close()
    engine = sa.create_engine(world.database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    engine.dispose()


def _fewer_scopes(world: World) -> None:
    world.slack.scopes = ("commands", "chat:write", "chat:write.public", "files:write", "im:write")


def _library_fails(world: World) -> None:
    world.sim.fault(Fault(method="GET", path_regex="/api/libraryfiles", status=500, times=5))


BROKEN = {
    "wrong secret": Broken(
        "defender token",
        "the client secret is wrong (AADSTS7000215)",
        "DEFENDER_CLIENT_SECRET to the secret's Value",
        {"DEFENDER_CLIENT_SECRET": f"{leaks.CLIENT_SECRET}-wrong"},
    ),
    "wrong tenant": Broken(
        "defender token",
        "the tenant was not found (AADSTS90002)",
        "DEFENDER_TENANT_ID to the Directory (tenant) ID",
        {"DEFENDER_TENANT_ID": "11111111-2222-3333-4444-555555555555"},
    ),
    "unknown app": Broken(
        "defender token",
        "the application was not found in the tenant (AADSTS700016)",
        "DEFENDER_CLIENT_ID to the Application (client) ID",
        {"DEFENDER_CLIENT_ID": "some-other-app"},
    ),
    "no consent": Broken(
        "defender token",
        "no administrator has consented to the app's permissions (AADSTS65001)",
        "Grant admin consent",
        {},
        scenario={"admin_consent": False},
    ),
    "a missing role": Broken(
        "defender roles",
        "the token lacks Library.Manage",
        "add Library.Manage: in the Entra admin center, App registrations > the app > API"
        " permissions > Add a permission > APIs my organization uses > WindowsDefenderATP >"
        " Application permissions; then Grant admin consent",
        {},
        scenario={"token_roles": ("Machine.LiveResponse", "Machine.Read.All")},
    ),
    "a missing Slack scope": Broken(
        "slack scopes",
        "the token lacks usergroups:read, users:read",
        "then reinstall the app",
        {},
        prepare=_fewer_scopes,
    ),
    "a playbooks file lrbot serve would refuse": Broken(
        "playbooks",
        "LRBOT_PLAYBOOKS: cannot read",
        "`lrbot serve` will not start with it",
        {"LRBOT_PLAYBOOKS": "/nonexistent/playbooks.toml"},
    ),
    "HTTP mode without a signing secret": Broken(
        "slack mode",
        "HTTP mode (no SLACK_APP_TOKEN) without SLACK_SIGNING_SECRET",
        "set SLACK_SIGNING_SECRET",
        {"SLACK_SIGNING_SECRET": None},
    ),
    "a Socket Mode token of the wrong kind": Broken(
        "slack mode",
        "Socket Mode: SLACK_APP_TOKEN does not start with xapp-",
        "App-Level Tokens",
        {"SLACK_APP_TOKEN": BOT_TOKEN},
    ),
    "a missing user group": Broken(
        "user groups",
        "the policy names user group(s) Slack does not have: S0GONE001",
        "group ids (S…)",
        {"LRBOT_APPROVERS": f"{APPROVER},{LEADS},S0GONE001"},
    ),
    "a database behind the schema": Broken(
        "database",
        "the database schema is at revision 0001",
        "run `lrbot db upgrade`",
        {},
        prepare=_behind,
    ),
    "a Defender endpoint answering 500": Broken(
        "defender library",
        "Defender answered 500 InternalServerError",
        "try again later",
        {},
        prepare=_library_fails,
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_configuration_fails_on_its_line_with_the_fix(case: str, tmp_path: Path) -> None:
    broken = BROKEN[case]
    scenario = build_scenario(**(broken.scenario or {}))
    with bot_world(tmp_path, scenario) as world:
        if broken.check != "database":
            Store(world.database_url).close()
        if broken.prepare is not None:
            broken.prepare(world)
        env = world.environment()
        for name, value in broken.env.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        outcome = check(world, env)
        assert outcome.status == 1, outcome.output
        line = outcome.line(broken.check)
        assert line.startswith("FAIL"), outcome.output
        assert broken.says in line
        assert broken.fix in line.split(". Fix: ", 1)[1]
        failed = [n for n in CHECKS if outcome.state(n) == "FAIL"]
        assert failed == [broken.check], outcome.output  # only what is broken fails
        assert "problem(s)" in outcome.output.splitlines()[-1]


def test_scopes_slack_does_not_list_are_a_warning_not_a_failure(tmp_path: Path) -> None:
    with bot_world(tmp_path) as world:
        Store(world.database_url).close()
        world.slack.scopes = None
        outcome = check(world)
        assert outcome.status == 0, outcome.output
        assert outcome.line("slack scopes").startswith("WARN  slack scopes: Slack's answer did")
        assert "(1 warning(s))" in outcome.output.splitlines()[-1]


def test_the_database_check_on_each_engine(database_url: str, tmp_path: Path) -> None:
    with bot_world(tmp_path, database_url=database_url) as world:
        empty = check(world)  # nothing there yet: the first lrbot serve creates the tables
        assert empty.status == 0, empty.output
        assert "creates" in empty.line("database")
        Store(database_url).close()
        current = check(world)
        assert current.status == 0, current.output
        assert current.line("database").endswith("up to date")
        _behind(world)
        behind = check(world)
        assert behind.status == 1
        assert behind.line("database").endswith("Fix: run `lrbot db upgrade`")


def test_checks_after_a_failed_sign_in_are_skipped_with_the_reason(tmp_path: Path) -> None:
    with bot_world(tmp_path) as world:
        env = {**world.environment(), "DEFENDER_CLIENT_SECRET": "not-it"}
        outcome = check(world, env)
        for name in ("defender roles", "defender machines", "defender library"):
            assert outcome.line(name) == f"skip  {name}: no Defender token"


def test_certificate_problems_are_explained(tmp_path: Path) -> None:
    # The keys live outside the bot's directory, which the leak guard scans.
    keys, workdir = tmp_path / "keys", tmp_path / "bot"
    keys.mkdir()
    workdir.mkdir()
    registered = make_client_certificate(keys, "registered")
    other = make_client_certificate(keys, "other")
    keyless = keys / "keyless.pem"
    keyless.write_text(registered.certificate_pem)
    scenario = build_scenario(client_certificate_pem=registered.certificate_pem)
    with bot_world(workdir, scenario) as world:
        Store(world.database_url).close()
        env = world.environment()
        del env["DEFENDER_CLIENT_SECRET"]

        good = check(world, {**env, "DEFENDER_CLIENT_CERTIFICATE": str(registered.pem_path)})
        assert good.status == 0, good.output

        wrong = check(world, {**env, "DEFENDER_CLIENT_CERTIFICATE": str(other.pem_path)})
        assert wrong.status == 1
        assert "the certificate was refused" in wrong.line("defender token")
        assert "AADSTS700027" in wrong.line("defender token")

        unreadable = check(world, {**env, "DEFENDER_CLIENT_CERTIFICATE": str(keyless)})
        assert unreadable.status == 1
        line = unreadable.line("defender token")
        assert "DEFENDER_CLIENT_CERTIFICATE: the PEM file holds no private key" in line
        assert "unencrypted private key and the certificate" in line


def test_an_unreadable_setting_exits_2_naming_it(tmp_path: Path) -> None:
    with bot_world(tmp_path) as world:
        env = {**world.environment(), "LRBOT_POLL_SECONDS": "often"}
        outcome = check(world, env)
        assert outcome.status == 2, outcome.output
        assert outcome.line("settings").startswith("FAIL  settings: LRBOT_POLL_SECONDS: ")
        assert outcome.state("defender token") == "skip"
        assert world.slack.call_count("auth.test") == 0


def test_nothing_configured_fails_and_points_to_the_offline_check(tmp_path: Path) -> None:
    with bot_world(tmp_path) as world:
        bare = {
            k: v
            for k, v in world.environment().items()
            if not k.startswith(("SLACK_", "DEFENDER_", "LRBOT_"))
        }
        outcome = check(world, bare)
        assert outcome.status == 1
        assert "SLACK_BOT_TOKEN is not set" in outcome.line("slack token")
        assert "lrbot check --offline" in outcome.line("slack token")
        assert "lrbot check --offline" in outcome.line("defender token")

        offline = check(world, bare, "--offline")
        assert offline.status == 0, offline.output
        assert all(offline.state(name) == "ok" for name in CHECKS)
