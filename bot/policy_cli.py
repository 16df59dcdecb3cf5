"""``lrbot policy check``: explain what the policy decides for one person and one request.

The engineer on call asks "could U123 request runscript X on device Y, and who could approve
it?" and gets the same decisions the bot makes, each with the rule behind it. ``explain`` is
pure; the command reads the settings, the policy file and (with ``SLACK_BOT_TOKEN``) the
user groups, then prints the explanation. Exit 0: allowed; 1: refused (or it could never be
approved); 2: the configuration or the question is wrong.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.policy import ANYONE, Kind, MembersOf, Policy, kind_of
from commands.errors import CommandError, ConfigurationError
from commands.models import CommandSequence
from commands.syntax import format_command, parse_sequence

if TYPE_CHECKING:
    from bot.settings import BotSettings

__all__ = ["Explanation", "Membership", "add_policy_parser", "explain"]


@dataclass(frozen=True)
class Membership:
    """Slack user-group members, or a note that they could not be read."""

    members_of: MembersOf
    checked: bool
    why_unchecked: str = ""


@dataclass(frozen=True)
class Explanation:
    allowed: bool
    lines: tuple[str, ...]

    def __str__(self) -> str:
        return "\n".join(self.lines)


def _nobody(_group: str) -> frozenset[str]:
    return frozenset()


def explain(
    policy: Policy,
    user: str,
    commands: CommandSequence,
    membership: Membership,
    *,
    channel: str | None = None,
    device: str | None = None,
) -> Explanation:
    """The policy's decisions for ``user`` asking for ``commands``, line by line."""
    members_of = membership.members_of
    lines = [f"Policy: {policy.source}"]
    if not membership.checked:
        lines.append(
            f"User groups: not checked ({membership.why_unchecked}); a group counts as empty,"
            " as the bot counts a group it cannot read"
        )
    refusals: list[str] = []

    if channel is None:
        where = "any channel" if not policy.channels else "channels " + ", ".join(policy.channels)
        lines.append(f"Channel: not given (the policy allows {where})")
    else:
        decision = policy.may_use_channel(channel)
        if decision:
            why = f"{channel} is in channels" if policy.channels else "the policy allows any"
            lines.append(f"Channel {channel}: allowed ({why})")
        else:
            lines.append(f"Channel {channel}: {_verdict(False, decision.reason)}")
            refusals.append(decision.reason)

    lines.append(f"Requester {user}, {len(commands.commands)} command(s):")
    refused = policy.command_refusals(user, commands, members_of)
    for position, command in enumerate(commands.commands, start=1):
        kind = kind_of(command)
        if position in refused:
            reason = refused[position]
            refusals.append(f"command {position}: {reason}")
        else:
            reason = _why_listed(policy, user, kind, members_of)
        verdict = _verdict(position not in refused, reason)
        lines.append(f"  {position}. {format_command(command)} [{kind.verb}]: {verdict}")

    requirement = policy.requirement(commands)
    kinds = [k for k in requirement.kinds if k in policy.rules]
    lines.append(
        f"Approval: {requirement.approvals} distinct approver(s), within"
        f" {_minutes(requirement.approval_minutes)} of the request"
        f" (the strictest of {', '.join(k.value for k in requirement.kinds)})"
    )
    if kinds:
        if len(kinds) > 1:
            lines.append("  an approver must be in every one of these lists:")
        candidates: set[str] | None = None
        partial = False
        for kind in kinds:
            approvers = policy.rules[kind].approvers
            named, groups_text, people, unknown = _expand(approvers, membership)
            partial |= unknown
            label = "approvers" if policy.source.startswith("LRBOT_") else f"{kind}.approvers"
            lines.append(f"  {label}: {named}{groups_text}")
            candidates = people if candidates is None else candidates & people
        could = sorted((candidates or set()) - {user})
        excluded = f"; not {user}, who asked" if user in (candidates or set()) else ""
        more = " (and members of the groups that were not read)" if partial else ""
        lines.append(f"  who could approve: {', '.join(could) or 'nobody named'}{more}{excluded}")
        if not partial and len(could) < requirement.approvals:
            problem = (
                f"only {len(could)} person(s) could approve, but {requirement.approvals}"
                " approvals are needed: a request like this could never run"
            )
            lines.append(f"  PROBLEM: {problem}")
            refusals.append(problem)

    if device is not None:
        lines.append(
            f"Device {device}: the policy does not limit devices; the bot checks the device"
            " with Defender (onboarded, one action at a time) when the request is made"
        )
    if refusals:
        lines.append(f"Result: REFUSED ({len(refusals)} reason(s) above)")
    else:
        lines.append(
            f"Result: ALLOWED: {user} may request this; it runs after"
            f" {requirement.approvals} approval(s) by the people above"
        )
    return Explanation(allowed=not refusals, lines=tuple(lines))


def _verdict(allowed: bool, reason: str) -> str:
    # A refusal is quoted as the analyst would read it in Slack.
    return f"allowed ({reason})" if allowed else f'REFUSED, the analyst reads: "{reason}"'


def _minutes(value: float) -> str:
    return f"{value:g} minutes"


def _why_listed(policy: Policy, user: str, kind: Kind, members_of: MembersOf) -> str:
    requesters = policy.rules[kind].requesters
    key = "LRBOT_REQUESTERS" if policy.source.startswith("LRBOT_") else f"{kind}.requesters"
    if ANYONE in requesters:
        return f'anyone may request it: {key} is "*"'
    if user in requesters:
        return f"{user} is in {key}"
    groups = [g for g in requesters if g.startswith("S") and user in members_of(g)]
    return f"{user} is a member of {groups[0]}, in {key}"


def _expand(principals: Collection[str], membership: Membership) -> tuple[str, str, set[str], bool]:
    """Named principals, their groups' members (as text), the people, and whether unread."""
    people = {p for p in principals if not p.startswith("S")}
    groups = [p for p in principals if p.startswith("S")]
    texts = []
    for group in groups:
        if membership.checked:
            members = sorted(membership.members_of(group))
            people.update(members)
            texts.append(f"{group}: {', '.join(members) or 'no members'}")
        else:
            texts.append(f"{group}: members not read")
    groups_text = f" ({'; '.join(texts)})" if texts else ""
    return ", ".join(principals), groups_text, people, bool(groups) and not membership.checked


# -- the command ---------------------------------------------------------------------------


def _membership(settings: BotSettings) -> Membership:
    if settings.slack_bot_token is None:
        return Membership(_nobody, checked=False, why_unchecked="SLACK_BOT_TOKEN is not set")
    from slack_sdk import WebClient

    from bot.directory import Directory

    client = WebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=10,
    )
    return Membership(Directory(client, ttl_seconds=60).members, checked=True)


def _check(args: argparse.Namespace) -> int:
    from bot.policy_file import policy_from_settings
    from bot.settings import load_bot_settings

    settings = load_bot_settings()
    policy = policy_from_settings(settings)
    text = " ".join(args.commands)
    try:
        commands = parse_sequence(text)
    except CommandError as exc:
        raise ConfigurationError(f"the commands {text!r} do not parse: {exc}") from None
    if not commands.commands:
        raise ConfigurationError("no command given: for example  runscript Collect.ps1")
    explanation = explain(
        policy,
        args.user,
        commands,
        _membership(settings),
        channel=args.channel,
        device=args.device,
    )
    print(explanation)
    return 0 if explanation.allowed else 1


def _slack_id(prefixes: str, what: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        value = value.strip()
        if len(value) < 3 or value[0] not in prefixes or not value.isalnum() or not value.isupper():
            raise argparse.ArgumentTypeError(f"{value!r} is not {what}")
        return value

    return parse


def add_policy_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``lrbot policy check``."""
    policy = sub.add_parser("policy", help="explain the approval policy's decisions")
    verbs = policy.add_subparsers(dest="policy_command", required=True)
    check = verbs.add_parser(
        "check",
        help="could this person request these commands, and who could approve them?",
        description=(
            "Explains, with the rule behind each decision, whether USER may request the"
            ' COMMANDS (the /liveresponse syntax, e.g. \'runscript Collect.ps1 "-Full";'
            " getfile C:\\\\out.zip') and who could approve them. Exit 0 allowed, 1 refused,"
            " 2 configuration error. Reads LRBOT_POLICY (or LRBOT_REQUESTERS/LRBOT_APPROVERS);"
            " with SLACK_BOT_TOKEN set, user groups are read from Slack."
        ),
    )
    check.add_argument("--user", required=True, type=_slack_id("UW", "a Slack user id (U… or W…)"))
    check.add_argument("--channel", type=_slack_id("CG", "a Slack channel id (C… or G…)"))
    check.add_argument("--device", help="the device (noted: the policy does not limit devices)")
    check.add_argument("commands", nargs="+", metavar="COMMANDS", help="the commands, quoted")
    check.set_defaults(handler=_check)
