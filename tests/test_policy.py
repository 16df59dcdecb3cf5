"""The policy's decisions, as the people they concern would read them.

Pure: group membership is a function here (the bot passes Slack's user groups, cached).
"""

from __future__ import annotations

from collections.abc import Collection

import pytest

from bot.policy import ANYONE, Kind, KindRule, Policy
from commands.models import CommandSequence, GetFile, PutFile, RunScript

ANA, LEE, MAY, BOB, EVE = "U0ANA0001", "U0LEE0001", "U0MAY0001", "U0BOB0001", "U0EVE0001"
LEADS = "S0LEADS01"
HUNTERS = "S0HUNT001"
GROUPS = {LEADS: {MAY}, HUNTERS: {BOB}}
CHANNEL, OTHER_CHANNEL = "C0SOC0001", "C0RANDOM1"
SOURCE = "/etc/lrbot/policy.toml"


def members_of(group: str) -> Collection[str]:
    return GROUPS.get(group, set())


def nobody_is_in_groups(group: str) -> Collection[str]:
    raise AssertionError(f"{group} should not have been looked up")


def seq(*commands: PutFile | RunScript | GetFile) -> CommandSequence:
    return CommandSequence(commands=commands)


GET = GetFile(path="C:\\Temp\\a.txt")
PUT = PutFile(file_name="tool.exe")
RUN = RunScript(script_name="collect.ps1", args="-Case 7")


def strict_policy() -> Policy:
    """Basic live response for the hunters, advanced for Ana alone; RunScript needs two."""
    return Policy(
        rules={
            Kind.GETFILE: KindRule(
                requesters=(ANA, HUNTERS), approvers=(LEE, EVE), approval_minutes=30
            ),
            Kind.PUTFILE: KindRule(
                requesters=(ANA,), approvers=(LEE, LEADS), allowed_files=("tool.exe", "*.msi")
            ),
            Kind.RUNSCRIPT: KindRule(
                requesters=(ANA,),
                approvers=(LEE, LEADS),
                approvals=2,
                approval_minutes=120,
                allowed_files=("collect*.ps1", "Triage.ps1"),
            ),
        },
        channels=(CHANNEL,),
        blocked=("*mimikatz*", "wipe.ps1"),
        source=SOURCE,
    )


# --- the simple policy (LRBOT_REQUESTERS / LRBOT_APPROVERS) ---------------------------------


def test_simple_policy_lets_anyone_request_everything_and_names_the_settings() -> None:
    policy = Policy.simple((), (LEE, LEADS), approval_minutes=45)

    assert policy.may_request(BOB, members_of)
    assert policy.command_refusals(BOB, seq(PUT, RUN, GET), members_of) == {}
    needs = policy.requirement(seq(PUT, RUN, GET))
    assert (needs.approvals, needs.approval_minutes) == (1, 45)
    assert policy.may_approve(LEE, ANA, seq(PUT, RUN, GET), members_of)
    assert policy.may_approve(MAY, ANA, seq(GET), members_of)  # through the group
    refused = policy.may_approve(BOB, ANA, seq(GET), members_of)
    assert not refused
    assert refused.reason == (
        "you are not an approver for live response (LRBOT_APPROVERS); nothing was changed"
    )
    assert policy.may_use_channel(OTHER_CHANNEL)  # no channels: any channel


def test_simple_policy_with_requesters_refuses_others_naming_the_setting() -> None:
    policy = Policy.simple((ANA, HUNTERS), (LEE,))

    assert policy.may_request(ANA, members_of)
    assert policy.may_request(BOB, members_of)
    refused = policy.may_request(EVE, members_of)
    assert not refused
    assert refused.reason == (
        "you are not on the list of people who may request live response"
        " (LRBOT_REQUESTERS); ask your SOC lead to add you"
    )


# --- requesting, per kind --------------------------------------------------------------------


def test_requesters_are_per_kind_users_groups_or_anyone() -> None:
    policy = strict_policy()

    # Ana is named for every kind; Bob is a hunter (a group), so GetFile only.
    assert policy.command_refusals(ANA, seq(PUT, RUN, GET), members_of) == {}
    assert policy.command_refusals(BOB, seq(GET), members_of) == {}
    assert policy.command_refusals(BOB, seq(PUT, RUN, GET), members_of) == {
        1: "you may not request PutFile (advanced live response):"
        f" you are not in putfile.requesters of {SOURCE}",
        2: "you may not request RunScript (advanced live response):"
        f" you are not in runscript.requesters of {SOURCE}",
    }
    # Opening the form needs one kind at least.
    assert policy.may_request(BOB, members_of)
    refused = policy.may_request(EVE, members_of)
    assert not refused and f"(requesters in {SOURCE})" in refused.reason

    anyone = Policy(rules={Kind.GETFILE: KindRule(requesters=(ANYONE,), approvers=(LEE,))})
    assert anyone.may_request(EVE, nobody_is_in_groups)
    assert anyone.command_refusals(EVE, seq(GET), nobody_is_in_groups) == {}


def test_a_kind_without_a_rule_is_refused_to_everyone() -> None:
    policy = Policy(
        rules={Kind.GETFILE: KindRule(requesters=(ANYONE,), approvers=(LEE,))}, source=SOURCE
    )

    assert policy.command_refusals(ANA, seq(PUT, GET), members_of) == {
        1: f"PutFile is not allowed by the policy ({SOURCE} has no [putfile])"
    }


def test_group_membership_is_asked_only_of_groups() -> None:
    asked: list[str] = []

    def recording(group: str) -> Collection[str]:
        asked.append(group)
        return members_of(group)

    policy = Policy(rules={Kind.GETFILE: KindRule(requesters=(ANA, "W0ENT0001"), approvers=(LEE,))})
    assert policy.may_request(EVE, recording).allowed is False
    assert asked == []  # U… and W… are people, not groups


@pytest.mark.parametrize(
    "script", ["mimikatz.ps1", "MiMiKaTz-x64.ps1", "x_mimikatz", "wipe.ps1", "WIPE.PS1"]
)
def test_blocked_scripts_are_refused_whatever_their_case(script: str) -> None:
    policy = Policy(
        rules={Kind.RUNSCRIPT: KindRule(requesters=(ANYONE,), approvers=(LEE,))},
        blocked=("*mimikatz*", "wipe.ps1"),
        source=SOURCE,
    )

    refusals = policy.command_refusals(ANA, seq(RunScript(script_name=script)), members_of)

    assert refusals == {
        1: f"{script} is blocked: the policy never allows it ({SOURCE}, blocked_scripts)"
    }


def test_blocked_applies_to_putfile_too_and_wins_over_allowed_files() -> None:
    policy = strict_policy()

    assert policy.command_refusals(ANA, seq(PutFile(file_name="mimikatz.msi")), members_of) == {
        1: f"mimikatz.msi is blocked: the policy never allows it ({SOURCE}, blocked_scripts)"
    }


@pytest.mark.parametrize(
    ("command", "allowed"),
    [
        (RunScript(script_name="collect.ps1"), True),
        (RunScript(script_name="Collect-Triage.PS1", args="-x"), True),
        (RunScript(script_name="triage.ps1"), True),
        (RunScript(script_name="other.ps1"), False),
        (RunScript(script_name="my-collect.ps1"), False),
        (PutFile(file_name="tool.exe"), True),
        (PutFile(file_name="TOOL.EXE"), True),
        (PutFile(file_name="setup.msi"), True),
        (PutFile(file_name="tool2.exe"), False),
    ],
)
def test_only_allowed_scripts_and_files(command: PutFile | RunScript, allowed: bool) -> None:
    refusals = strict_policy().command_refusals(ANA, seq(command), members_of)

    if allowed:
        assert refusals == {}
    elif isinstance(command, RunScript):
        assert refusals == {
            1: f"{command.script_name} is not among the RunScript files the policy allows"
            f" (runscript.scripts in {SOURCE})"
        }
    else:
        assert refusals == {
            1: f"{command.file_name} is not among the PutFile files the policy allows"
            f" (putfile.files in {SOURCE})"
        }


def test_getfile_paths_are_not_library_files() -> None:
    # A path that looks like a blocked name is a file on the device, not a script to run.
    policy = strict_policy()
    assert policy.command_refusals(ANA, seq(GetFile(path="C:\\x\\wipe.ps1")), members_of) == {}


def test_a_mixed_request_takes_the_most_approvals_and_the_shortest_lifetime() -> None:
    policy = strict_policy()

    mixed = policy.requirement(seq(PUT, RUN, GET))
    assert mixed.kinds == (Kind.PUTFILE, Kind.RUNSCRIPT, Kind.GETFILE)
    assert (mixed.approvals, mixed.approval_minutes) == (2, 30)
    run_only = policy.requirement(seq(RUN, RunScript(script_name="triage.ps1")))
    assert (run_only.kinds, run_only.approvals, run_only.approval_minutes) == (
        (Kind.RUNSCRIPT,),
        2,
        120,
    )
    put_only = policy.requirement(seq(PUT))
    assert (put_only.approvals, put_only.approval_minutes) == (1, 60)


# --- approving -------------------------------------------------------------------------------


def test_the_requester_never_approves_even_as_an_approver() -> None:
    refused = strict_policy().may_approve(LEE, LEE, seq(GET), members_of)

    assert not refused
    assert (
        refused.reason == "you asked for this run, so you cannot approve it: a second analyst must"
    )


def test_an_approver_must_approve_every_kind_in_the_request() -> None:
    policy = strict_policy()

    # Eve approves GetFile only; May (a lead) approves PutFile and RunScript only.
    assert policy.may_approve(EVE, ANA, seq(GET), members_of)
    refused = policy.may_approve(EVE, ANA, seq(RUN), members_of)
    assert not refused
    assert refused.reason == (
        f"you are not an approver for RunScript (approvers in {SOURCE}); nothing was changed"
    )
    refused = policy.may_approve(EVE, ANA, seq(PUT, RUN, GET), members_of)
    assert refused.reason == (
        "you are not an approver for PutFile and RunScript and GetFile"
        f" (approvers in {SOURCE}); nothing was changed"
    )
    assert policy.may_approve(MAY, ANA, seq(PUT, RUN), members_of)
    assert not policy.may_approve(MAY, ANA, seq(RUN, GET), members_of)
    assert policy.may_approve(LEE, ANA, seq(PUT, RUN, GET), members_of)


def test_one_approver_counts_once() -> None:
    policy = strict_policy()

    refused = policy.may_approve(LEE, ANA, seq(RUN), members_of, already=(LEE,))

    assert not refused
    assert refused.reason == "you have already approved this request; another approver is needed"
    assert policy.may_approve(MAY, ANA, seq(RUN), members_of, already=(LEE,))


def test_the_requester_is_told_so_before_anything_else() -> None:
    # Even a requester who has (somehow) approved already hears the real reason.
    refused = strict_policy().may_approve(LEE, LEE, seq(RUN), members_of, already=(LEE,))
    assert refused.reason.startswith("you asked for this run")


# --- withdrawing, cancelling, channels -------------------------------------------------------


def test_only_the_requester_withdraws() -> None:
    policy = strict_policy()

    assert policy.may_withdraw(ANA, ANA)
    refused = policy.may_withdraw(LEE, ANA)
    assert not refused and refused.reason == f"only <@{ANA}>, who asked, can withdraw it"


def test_the_requester_or_any_approver_may_cancel() -> None:
    policy = strict_policy()

    assert policy.may_cancel(BOB, BOB, members_of)  # the requester, though not an approver
    assert policy.may_cancel(EVE, ANA, members_of)  # approves GetFile only: still an approver
    assert policy.may_cancel(MAY, ANA, members_of)  # through the leads group
    refused = policy.may_cancel(BOB, ANA, members_of)
    assert not refused
    assert refused.reason == (
        "only the requester or an approver can cancel a run; nothing was changed"
    )


def test_channels_limit_where_requests_are_made() -> None:
    policy = strict_policy()

    assert policy.may_use_channel(CHANNEL)
    refused = policy.may_use_channel(OTHER_CHANNEL)
    assert not refused
    assert refused.reason == (
        f"live response is not requested in this channel; use <#{CHANNEL}>"
        f" (policy: channels in {SOURCE})"
    )
