"""The policy file (``LRBOT_POLICY``): what a valid one means, and the exact line an operator
reads at start-up for each mistake."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.policy import ANYONE, Kind, KindRule, Policy
from bot.policy_file import load_policy, parse_policy, policy_from_settings
from bot.settings import load_bot_settings
from commands.errors import ConfigurationError

SOURCE = "policy.toml"

FULL = """
# Who may do what with live response.
channels = ["C0SOC0001", "G0PRIV001"]
blocked_scripts = ["*mimikatz*", " wipe.ps1 "]

[getfile]
requesters = ["S0HUNT001", "U0ANA0001"]
approvers = ["U0LEE0001", "W0ENT0001"]
approval_minutes = 30

[putfile]
requesters = ["U0ANA0001"]
approvers = ["S0LEADS01"]
files = ["tool.exe", "*.msi"]

[runscript]
requesters = ["U0ANA0001", "U0ANA0001"]
approvers = ["U0LEE0001", "S0LEADS01"]
approvals = 2
approval_minutes = 90.5
scripts = ["collect-*.ps1"]
"""

MINIMAL = '[getfile]\nrequesters = ["*"]\napprovers = ["U0LEE0001"]\n'


def refused(text: str, **options: Any) -> str:
    with pytest.raises(ConfigurationError) as caught:
        parse_policy(text, SOURCE, **options)
    return str(caught.value)


def rule(kind: str, body: str) -> str:
    return f"[{kind}]\n{body}\n"


# --- valid files -----------------------------------------------------------------------------


def test_a_full_policy_reads_as_written() -> None:
    policy = parse_policy(FULL, SOURCE, default_minutes=45)

    assert policy == Policy(
        rules={
            Kind.GETFILE: KindRule(
                requesters=("S0HUNT001", "U0ANA0001"),
                approvers=("U0LEE0001", "W0ENT0001"),
                approvals=1,
                approval_minutes=30.0,
                allowed_files=(ANYONE,),
            ),
            Kind.PUTFILE: KindRule(
                requesters=("U0ANA0001",),
                approvers=("S0LEADS01",),
                approvals=1,
                approval_minutes=45.0,  # not given: LRBOT_APPROVAL_TTL_MINUTES
                allowed_files=("tool.exe", "*.msi"),
            ),
            Kind.RUNSCRIPT: KindRule(
                requesters=("U0ANA0001",),  # repeats count once
                approvers=("U0LEE0001", "S0LEADS01"),
                approvals=2,
                approval_minutes=90.5,
                allowed_files=("collect-*.ps1",),
            ),
        },
        channels=("C0SOC0001", "G0PRIV001"),
        blocked=("*mimikatz*", "wipe.ps1"),  # spaces around a name are not part of it
        source=SOURCE,
    )


def test_a_kind_left_out_is_refused_to_everyone() -> None:
    policy = parse_policy(MINIMAL, SOURCE)

    assert set(policy.rules) == {Kind.GETFILE}
    assert policy.channels == () and policy.blocked == ()
    assert policy.rules[Kind.GETFILE].approval_minutes == 60.0


def test_load_policy_reads_a_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("# Richtlinie für das SOC\n" + MINIMAL, encoding="utf-8")

    policy = load_policy(path, default_minutes=15)

    assert policy.source == str(path)
    assert policy.rules[Kind.GETFILE].approval_minutes == 15.0


# --- settings: the file, or the simple policy ------------------------------------------------


def bot_settings(**env: Any) -> Any:
    return load_bot_settings(_env_file=None, **env)


def test_policy_from_settings_prefers_the_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(MINIMAL, encoding="utf-8")

    policy = policy_from_settings(
        bot_settings(
            LRBOT_POLICY=str(path),
            LRBOT_APPROVERS="U0OTHER01",
            LRBOT_APPROVAL_TTL_MINUTES=20,
        )
    )

    assert policy.source == str(path)
    assert policy.rules[Kind.GETFILE].approvers == ("U0LEE0001",)
    assert policy.rules[Kind.GETFILE].approval_minutes == 20.0


def test_policy_from_settings_without_a_file_is_the_simple_policy() -> None:
    policy = policy_from_settings(
        bot_settings(LRBOT_APPROVERS="U0LEE0001,S0LEADS01", LRBOT_APPROVAL_TTL_MINUTES=10)
    )

    assert policy == Policy.simple((), ("U0LEE0001", "S0LEADS01"), 10)


def test_policy_from_settings_without_approvers_refuses_to_start() -> None:
    with pytest.raises(ConfigurationError) as caught:
        policy_from_settings(bot_settings())

    assert str(caught.value) == (
        "LRBOT_APPROVERS: required (or LRBOT_POLICY): the Slack user ids (U…) or user"
        " groups (S…) who may approve live response"
    )


# --- the file itself -------------------------------------------------------------------------


def test_a_missing_file_is_named_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"

    with pytest.raises(ConfigurationError) as caught:
        load_policy(path)

    assert str(caught.value) == f"LRBOT_POLICY: cannot read {path}: No such file or directory"


def test_a_directory_is_not_a_policy(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_policy(tmp_path)

    assert str(caught.value) == f"LRBOT_POLICY: cannot read {tmp_path}: Is a directory"


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_bytes("# für\n".encode("latin-1") + MINIMAL.encode())

    with pytest.raises(ConfigurationError) as caught:
        load_policy(path)

    assert str(caught.value) == f"LRBOT_POLICY: {path} is not UTF-8 text"


def test_invalid_toml_says_where() -> None:
    assert refused("[getfile\nrequesters = []") == (
        f"LRBOT_POLICY {SOURCE}: not valid TOML: Expected ']' at the end of a table"
        " declaration (at line 1, column 9)"
    )


# --- every mistake, the line the operator reads ----------------------------------------------

GOOD = 'requesters = ["*"]\napprovers = ["U0LEE0001"]'
PRINCIPAL = 'a Slack user (U…/W…) or user group (S…) id, or "*"'

MISTAKES: list[tuple[str, str, str]] = [
    # (case, the file, what follows "LRBOT_POLICY policy.toml: ")
    (
        "empty file",
        "",
        "(top level): no [getfile], [putfile] or [runscript] table: nobody could request anything",
    ),
    (
        "top-level typo",
        'chanels = ["C0SOC0001"]\n' + rule("getfile", GOOD),
        "chanels: is not a policy setting; did you mean channels?",
    ),
    (
        "kind typo",
        rule("runscrip", GOOD),
        "runscrip: is not a policy setting; did you mean runscript?",
    ),
    (
        "key typo in a kind",
        rule("runscript", GOOD + "\naprovals = 2"),
        "runscript.aprovals: is not a policy setting; did you mean runscript.approvals?",
    ),
    (
        "unknown key with no near match lists the known ones",
        rule("getfile", GOOD + "\ncolour = 1"),
        "getfile.colour: is not a policy setting; known: requesters, approvers, approvals,"
        " approval_minutes",
    ),
    (
        "files under getfile",
        rule("getfile", GOOD + '\nfiles = ["a.exe"]'),
        "getfile.files: is not a policy setting; known: requesters, approvers, approvals,"
        " approval_minutes",
    ),
    (
        "scripts under putfile",
        rule("putfile", GOOD + '\nscripts = ["a.ps1"]'),
        "putfile.scripts: is not a policy setting; known: requesters, approvers, approvals,"
        " approval_minutes, files",
    ),
    (
        "files under runscript",
        rule("runscript", GOOD + '\nfiles = ["a.ps1"]'),
        "runscript.files: is not a policy setting; known: requesters, approvers, approvals,"
        " approval_minutes, scripts",
    ),
    (
        "a kind that is not a table",
        'getfile = "everyone"',
        "getfile: must be a table ([getfile]), not a string",
    ),
    (
        "a kind as an array of tables",
        "[[getfile]]\n" + GOOD,
        "getfile: must be a table ([getfile]), not a list",
    ),
    (
        "channels not a list",
        'channels = "C0SOC0001"\n' + rule("getfile", GOOD),
        "channels: must be a list of strings, not a string",
    ),
    (
        "a channel that is a number",
        "channels = [42]\n" + rule("getfile", GOOD),
        "channels[0]: must be a string, not a number",
    ),
    (
        "a channel name instead of its id",
        'channels = ["C0SOC0001", "#soc"]\n' + rule("getfile", GOOD),
        "channels[1]: '#soc' is not a Slack channel id (C…)",
    ),
    (
        "any channel is not a channel",
        'channels = ["*"]\n' + rule("getfile", GOOD),
        "channels[0]: '*' is not a Slack channel id (C…)",
    ),
    (
        "a blocked script with a space",
        'blocked_scripts = ["bad script.ps1"]\n' + rule("getfile", GOOD),
        "blocked_scripts[0]: 'bad script.ps1' is not a library file name or glob",
    ),
    (
        "requesters missing",
        rule("getfile", 'approvers = ["U0LEE0001"]'),
        "getfile.requesters: is missing or empty: nobody could request it",
    ),
    (
        "requesters empty",
        rule("getfile", 'requesters = []\napprovers = ["U0LEE0001"]'),
        "getfile.requesters: is missing or empty: nobody could request it",
    ),
    (
        "approvers missing",
        rule("putfile", 'requesters = ["*"]'),
        "putfile.approvers: is missing or empty: nobody could approve it",
    ),
    (
        "a lowercase user id",
        rule("getfile", 'requesters = ["u0ana0001"]\napprovers = ["U0LEE0001"]'),
        f"getfile.requesters[0]: 'u0ana0001' is not {PRINCIPAL}",
    ),
    (
        "a user name instead of an id",
        rule("getfile", 'requesters = ["*"]\napprovers = ["U0LEE0001", "@lee"]'),
        f"getfile.approvers[1]: '@lee' is not {PRINCIPAL}",
    ),
    (
        "a channel among the approvers",
        rule("getfile", 'requesters = ["*"]\napprovers = ["C0SOC0001"]'),
        f"getfile.approvers[0]: 'C0SOC0001' is not {PRINCIPAL}",
    ),
    (
        "a requester that is a table",
        rule("getfile", 'requesters = [{id = "U0ANA0001"}]\napprovers = ["U0LEE0001"]'),
        "getfile.requesters[0]: must be a string, not a table",
    ),
    (
        "anyone may approve",
        rule("getfile", 'requesters = ["*"]\napprovers = ["*"]'),
        'getfile.approvers: "*" is not allowed: name the approvers',
    ),
    (
        "approvals as a string",
        rule("runscript", GOOD + '\napprovals = "2"'),
        "runscript.approvals: must be a whole number, not a string",
    ),
    (
        "approvals as true",
        rule("runscript", GOOD + "\napprovals = true"),
        "runscript.approvals: must be a whole number, not true/false",
    ),
    (
        "approvals as a fraction",
        rule("runscript", GOOD + "\napprovals = 1.5"),
        "runscript.approvals: must be a whole number, not a number",
    ),
    (
        "no approvals",
        rule("runscript", GOOD + "\napprovals = 0"),
        "runscript.approvals: must be from 1 to 5, not 0",
    ),
    (
        "too many approvals",
        rule("runscript", 'requesters = ["*"]\napprovers = ["S0LEADS01"]\napprovals = 6'),
        "runscript.approvals: must be from 1 to 5, not 6",
    ),
    (
        "more approvals than named approvers",
        rule("runscript", 'requesters = ["*"]\napprovers = ["U0LEE0001"]\napprovals = 2'),
        "runscript.approvals: needs 2 distinct approvers but runscript.approvers names only 1",
    ),
    (
        "minutes as a string",
        rule("getfile", GOOD + '\napproval_minutes = "30"'),
        "getfile.approval_minutes: must be a number, not a string",
    ),
    (
        "minutes as a date",
        rule("getfile", GOOD + "\napproval_minutes = 2026-11-28"),
        "getfile.approval_minutes: must be a number, not date",
    ),
    (
        "zero minutes",
        rule("getfile", GOOD + "\napproval_minutes = 0"),
        "getfile.approval_minutes: must be more than 0 and at most 10080, not 0",
    ),
    (
        "negative minutes",
        rule("getfile", GOOD + "\napproval_minutes = -5"),
        "getfile.approval_minutes: must be more than 0 and at most 10080, not -5",
    ),
    (
        "more than a week",
        rule("getfile", GOOD + "\napproval_minutes = 10081"),
        "getfile.approval_minutes: must be more than 0 and at most 10080, not 10081",
    ),
    (
        "not a number at all",
        rule("getfile", GOOD + "\napproval_minutes = nan"),
        "getfile.approval_minutes: must be more than 0 and at most 10080, not nan",
    ),
    (
        "forever",
        rule("getfile", GOOD + "\napproval_minutes = inf"),
        "getfile.approval_minutes: must be more than 0 and at most 10080, not inf",
    ),
    (
        "no allowed scripts",
        rule("runscript", GOOD + "\nscripts = []"),
        'runscript.scripts: is empty: list the allowed files, or "*" for any',
    ),
    (
        "scripts as one string",
        rule("runscript", GOOD + '\nscripts = "collect.ps1"'),
        "runscript.scripts: must be a list of strings, not a string",
    ),
    (
        "a file path among the allowed files",
        rule("putfile", GOOD + '\nfiles = ["C:\\\\tools\\\\tool.exe"]'),
        "putfile.files[0]: 'C:\\\\tools\\\\tool.exe' is not a library file name or glob",
    ),
    (
        "a sub-table under a kind",
        rule("getfile", GOOD) + "[getfile.extra]\nx = 1\n",
        "getfile.extra: is not a policy setting; known: requesters, approvers, approvals,"
        " approval_minutes",
    ),
]


@pytest.mark.parametrize(
    ("text", "message"), [pytest.param(case[1], case[2], id=case[0]) for case in MISTAKES]
)
def test_each_mistake_is_one_precise_line(text: str, message: str) -> None:
    assert refused(text) == f"LRBOT_POLICY {SOURCE}: {message}"


def test_approvals_may_exceed_named_people_when_a_group_approves() -> None:
    text = rule("runscript", 'requesters = ["*"]\napprovers = ["U0LEE0001", "S0LEADS01"]')
    policy = parse_policy(text + "approvals = 5\n", SOURCE)

    assert policy.rules[Kind.RUNSCRIPT].approvals == 5


def test_the_first_mistake_in_file_order_is_reported() -> None:
    # One line at a time, and always the same one for the same file.
    text = 'chanels = []\n[getfile]\nrequesters = ["x"]\napprovers = []\n'
    assert (
        refused(text)
        == f"LRBOT_POLICY {SOURCE}: chanels: is not a policy setting; did you mean channels?"
    )


# --- anything at all -------------------------------------------------------------------------

KEYS = [
    "channels",
    "blocked_scripts",
    "requesters",
    "approvers",
    "approvals",
    "approval_minutes",
    "files",
    "scripts",
    "x",
]
SCALARS = (
    st.text(max_size=12)
    | st.sampled_from(["*", "U0LEE0001", "S0LEADS01", "C0SOC0001", "a.ps1", "*.exe", ""])
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=12,
)


def toml_value(value: Any) -> str:
    """Inline TOML for a generated value (strings as TOML basic strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        escaped = "".join(
            c
            if c.isprintable() and c not in '"\\'
            else f"\\u{ord(c):04X}"
            if ord(c) <= 0xFFFF
            else f"\\U{ord(c):08X}"
            for c in value
        )
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f'"{k}" = {toml_value(v)}' for k, v in value.items()) + "}"


DOCUMENTS = st.dictionaries(
    st.sampled_from([*KEYS, "getfile", "putfile", "runscript"]), VALUES, max_size=5
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=300))
def test_any_text_is_a_policy_or_a_configuration_error(text: str) -> None:
    try:
        parse_policy(text, SOURCE)
    except ConfigurationError as exc:
        assert str(exc).startswith(f"LRBOT_POLICY {SOURCE}: ")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=DOCUMENTS)
def test_any_toml_shaped_like_a_policy_is_a_policy_or_a_configuration_error(
    document: dict[str, Any],
) -> None:
    text = "\n".join(f'"{key}" = {toml_value(value)}' for key, value in document.items())
    try:
        policy = parse_policy(text, SOURCE)
    except ConfigurationError as exc:
        assert str(exc).startswith(f"LRBOT_POLICY {SOURCE}: ")
        assert "\n" not in str(exc) or "not valid TOML" in str(exc)
        return
    # What it accepted is usable: someone may request, and someone else must approve.
    assert policy.rules
    for kind_rule in policy.rules.values():
        assert kind_rule.requesters and kind_rule.approvers
        assert ANYONE not in kind_rule.approvers
        assert 1 <= kind_rule.approvals <= 5
        assert 0 < kind_rule.approval_minutes <= 7 * 24 * 60
