"""``lrbot policy check``: the engineer on call asks what the policy decides, and why.

Run as a separate process with nothing but the policy settings (and, for user groups, a
bot token pointing at the fake Slack server), the way it is used on a server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.policy import Kind, Policy
from bot.policy_cli import Membership, explain
from bot.policy_file import parse_policy
from bot.sandbox.slack_api import FakeSlack
from commands.syntax import parse_sequence

POLICY = """
channels = ["C0SOC"]
blocked_scripts = ["Wipe*.ps1"]

[getfile]
requesters = ["*"]
approvers = ["U0LEAD1", "U0LEAD2", "S0IR"]

[runscript]
requesters = ["U0ANA1", "S0IR"]
approvers = ["U0LEAD1", "U0LEAD2", "S0IR"]
approvals = 2
approval_minutes = 30
scripts = ["Collect*.ps1"]
"""


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY, encoding="utf-8")
    return path


def lrbot(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "LRBOT_", "DEFENDER_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", "policy", "check", *args],
        cwd=tmp_path,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        fake.set_usergroup("S0IR", ["U0IR1", "U0IR2", "U0ANA2"])
        yield fake


def test_an_allowed_request_names_the_rules_and_who_could_approve(
    tmp_path: Path, policy_file: Path
) -> None:
    result = lrbot(
        tmp_path,
        {"LRBOT_POLICY": str(policy_file)},
        "--user",
        "U0ANA1",
        "--channel",
        "C0SOC",
        "--device",
        "ws-001",
        'runscript Collect.ps1 "-Full"; getfile C:\\out.zip',
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"Policy: {policy_file}" in out
    assert "Channel C0SOC: allowed (C0SOC is in channels)" in out
    assert (
        "1. runscript Collect.ps1 -Full [RunScript]: allowed (U0ANA1 is in runscript.requesters)"
        in out
    )
    assert (
        "2. getfile C:\\out.zip [GetFile]: allowed"
        ' (anyone may request it: getfile.requesters is "*")' in out
    )
    # Mixed kinds take the strictest: RunScript's two approvers and 30 minutes.
    assert "Approval: 2 distinct approver(s), within 30 minutes" in out
    # Without a bot token the groups are not read, and the command says so.
    assert "User groups: not checked (SLACK_BOT_TOKEN is not set)" in out
    assert "S0IR: members not read" in out
    assert (
        "who could approve: U0LEAD1, U0LEAD2 (and members of the groups that were not read)" in out
    )
    assert "Device ws-001: the policy does not limit devices" in out
    assert out.rstrip().endswith(
        "Result: ALLOWED: U0ANA1 may request this; it runs after 2 approval(s) by the people above"
    )


def test_each_refusal_is_quoted_as_the_analyst_reads_it(tmp_path: Path, policy_file: Path) -> None:
    result = lrbot(
        tmp_path,
        {"LRBOT_POLICY": str(policy_file)},
        "--user",
        "U0ANA1",
        "--channel",
        "C0RANDOM",
        "runscript Wipe-Disk.ps1; runscript Other.ps1",
    )
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert (
        'Channel C0RANDOM: REFUSED, the analyst reads: "live response is not requested'
        " in this channel; use <#C0SOC>" in out
    )
    assert (
        "1. runscript Wipe-Disk.ps1 [RunScript]: REFUSED,"
        ' the analyst reads: "Wipe-Disk.ps1 is blocked' in out
    )
    assert (
        '2. runscript Other.ps1 [RunScript]: REFUSED, the analyst reads: "Other.ps1 is not among'
        " the RunScript files the policy allows (runscript.scripts in"
    ) in out
    assert "Result: REFUSED (3 reason(s) above)" in out


def test_user_groups_are_read_from_slack_with_a_bot_token(
    tmp_path: Path, policy_file: Path, slack: FakeSlack
) -> None:
    env = {
        "LRBOT_POLICY": str(policy_file),
        "SLACK_BOT_TOKEN": "xoxb-policy-check",
        "SLACK_API_URL": slack.base_url,
    }
    # U0ANA2 may request RunScript only through S0IR, and is then no approver of their own.
    result = lrbot(tmp_path, env, "--user", "U0ANA2", "runscript Collect-Memory.ps1")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "User groups: not checked" not in out
    assert "allowed (U0ANA2 is a member of S0IR, in runscript.requesters)" in out
    assert "S0IR: U0ANA2, U0IR1, U0IR2" in out
    assert "who could approve: U0IR1, U0IR2, U0LEAD1, U0LEAD2; not U0ANA2, who asked" in out
    assert [c.method for c in slack.calls()] == ["usergroups.users.list"]
    assert "xoxb-policy-check" not in out + result.stderr


def test_a_policy_that_could_never_approve_a_request_says_so(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        '[runscript]\nrequesters = ["*"]\napprovers = ["U0LEAD1", "U0LEAD2"]\napprovals = 2\n',
        encoding="utf-8",
    )
    result = lrbot(tmp_path, {"LRBOT_POLICY": str(path)}, "--user", "U0LEAD1", "runscript X.ps1")
    assert result.returncode == 1
    assert "who could approve: U0LEAD2; not U0LEAD1, who asked" in result.stdout
    assert (
        "PROBLEM: only 1 person(s) could approve, but 2 approvals are needed:"
        " a request like this could never run"
    ) in result.stdout


def test_the_simple_settings_policy_is_explained_too(tmp_path: Path) -> None:
    env = {"LRBOT_APPROVERS": "U0LEAD1,U0LEAD2", "LRBOT_APPROVAL_TTL_MINUTES": "45"}
    result = lrbot(tmp_path, env, "--user", "U0ANA1", "getfile C:\\Windows\\x.log")
    assert result.returncode == 0, result.stderr
    assert "Policy: LRBOT_REQUESTERS/LRBOT_APPROVERS" in result.stdout
    assert 'anyone may request it: LRBOT_REQUESTERS is "*"' in result.stdout
    assert "Approval: 1 distinct approver(s), within 45 minutes" in result.stdout
    assert "approvers: U0LEAD1, U0LEAD2" in result.stdout


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        (
            {"LRBOT_POLICY": "/nonexistent/policy.toml"},
            ["--user", "U0A1", "getfile C:\\x"],
            "lrbot: configuration error: LRBOT_POLICY: cannot read /nonexistent/policy.toml",
        ),
        (
            {},
            ["--user", "U0A1", "getfile C:\\x"],
            "lrbot: configuration error: LRBOT_APPROVERS: required (or LRBOT_POLICY)",
        ),
        (
            {"LRBOT_APPROVERS": "U0L1"},
            ["--user", "U0A1", "runscrip x"],
            "lrbot: configuration error: the commands 'runscrip x' do not parse: command 1"
            " (line 1, column 1): unknown verb 'runscrip'",
        ),
        (
            {"LRBOT_APPROVERS": "U0L1"},
            ["--user", "alice", "getfile C:\\x"],
            "argument --user: 'alice' is not a Slack user id (U… or W…)",
        ),
    ],
)
def test_a_wrong_configuration_or_question_exits_2_with_the_reason(
    tmp_path: Path, env: dict[str, str], args: list[str], message: str
) -> None:
    result = lrbot(tmp_path, env, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_explain_matches_the_bots_own_decisions() -> None:
    """``explain`` is the policy's decisions, not a second copy of the rules."""
    policy: Policy = parse_policy(POLICY, "p.toml")
    members = {"S0IR": frozenset({"U0IR1"})}
    membership = Membership(lambda g: members.get(g, frozenset()), checked=True)
    for user in ("U0ANA1", "U0IR1", "U0NOBODY"):
        for text in ("runscript Collect.ps1", "getfile C:\\x", "runscript Wipe.ps1"):
            commands = parse_sequence(text)
            allowed = explain(policy, user, commands, membership, channel="C0SOC").allowed
            refused = policy.command_refusals(user, commands, membership.members_of)
            assert allowed == (not refused), (user, text)


def test_the_readmes_example_policy_is_a_valid_policy() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    example = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    policy = parse_policy(example, "README.md")
    assert policy.channels == ("C0123SOC",)
    assert policy.rules[Kind.RUNSCRIPT].approvals == 2
    refusals = policy.command_refusals(
        "U0ANY", parse_sequence("runscript Wipe-All.ps1"), lambda _: frozenset({"U0ANY"})
    )
    assert "Wipe-All.ps1 is blocked" in refusals[1]
