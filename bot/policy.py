"""Who may request, approve, withdraw and cancel what: pure decisions, each with its reason.

The rules mirror Defender's own roles: GetFile is basic live response, PutFile and
RunScript are advanced. Each kind has its requesters, its approvers, how many distinct
approvers it needs and how long an approval stays open; RunScript and PutFile can be
limited to named library files, and some names can be blocked outright. A request mixing
kinds takes the strictest of them: every kind's requesters and approvers, the most
approvals and the shortest lifetime.

Group membership comes in as a function, so the rules stay pure and testable; the bot
passes ``Directory.members`` (Slack user groups, cached).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from commands.models import Command, CommandSequence, GetFile, PutFile, RunScript

__all__ = [
    "ANYONE",
    "Decision",
    "Kind",
    "KindRule",
    "Policy",
    "Requirement",
    "kind_of",
]

MembersOf = Callable[[str], Collection[str]]
ANYONE = "*"


class Kind(StrEnum):
    GETFILE = "getfile"
    PUTFILE = "putfile"
    RUNSCRIPT = "runscript"

    @property
    def verb(self) -> str:
        return {"getfile": "GetFile", "putfile": "PutFile", "runscript": "RunScript"}[self.value]

    @property
    def defender_role(self) -> str:
        return "basic" if self is Kind.GETFILE else "advanced"


def kind_of(command: Command) -> Kind:
    if isinstance(command, GetFile):
        return Kind.GETFILE
    if isinstance(command, PutFile):
        return Kind.PUTFILE
    assert isinstance(command, RunScript)
    return Kind.RUNSCRIPT


def _library_name(command: Command) -> str | None:
    if isinstance(command, PutFile):
        return command.file_name
    if isinstance(command, RunScript):
        return command.script_name
    return None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


ALLOWED = Decision(True, "allowed")


@dataclass(frozen=True)
class KindRule:
    """One kind of command: who asks, who approves, how many approvers, for how long."""

    requesters: tuple[str, ...]  # Slack users U…/W…, groups S…, or "*" for anyone
    approvers: tuple[str, ...]
    approvals: int = 1
    approval_minutes: float = 60.0
    # Library files this kind may use (case-insensitive globs); only PutFile and RunScript.
    allowed_files: tuple[str, ...] = (ANYONE,)


@dataclass(frozen=True)
class Requirement:
    """What one request needs before it may run."""

    kinds: tuple[Kind, ...]
    approvals: int
    approval_minutes: float


@dataclass(frozen=True)
class Policy:
    """The whole policy: a rule per kind (a kind without one is refused to everyone)."""

    rules: Mapping[Kind, KindRule]
    channels: tuple[str, ...] = ()  # empty: any channel
    blocked: tuple[str, ...] = ()  # library file names never run or put (globs)
    source: str = "settings"
    _setting: str = field(default="LRBOT_POLICY", repr=False)

    @classmethod
    def simple(
        cls,
        requesters: tuple[str, ...],
        approvers: tuple[str, ...],
        approval_minutes: float = 60.0,
    ) -> Policy:
        """The default policy from LRBOT_REQUESTERS (empty: anyone) and LRBOT_APPROVERS."""
        rule = KindRule(
            requesters=requesters or (ANYONE,),
            approvers=approvers,
            approval_minutes=approval_minutes,
        )
        return cls(
            rules=dict.fromkeys(Kind, rule),
            source="LRBOT_REQUESTERS/LRBOT_APPROVERS",
            _setting="LRBOT_REQUESTERS",
        )

    # -- membership -----------------------------------------------------------------------

    @staticmethod
    def listed(user: str, principals: Collection[str], members_of: MembersOf) -> bool:
        if ANYONE in principals or user in principals:
            return True
        return any(p.startswith("S") and user in members_of(p) for p in principals)

    # -- requesting -----------------------------------------------------------------------

    def may_use_channel(self, channel: str) -> Decision:
        if not self.channels or channel in self.channels:
            return ALLOWED
        where = ", ".join(f"<#{c}>" for c in self.channels[:5])
        return Decision(
            False,
            f"live response is not requested in this channel; use {where}"
            f" (policy: channels in {self.source})",
        )

    def may_request(self, user: str, members_of: MembersOf) -> Decision:
        """May this person request anything at all (opening the form)?"""
        if any(self.listed(user, r.requesters, members_of) for r in self.rules.values()):
            return ALLOWED
        return Decision(
            False,
            "you are not on the list of people who may request live response"
            f" ({self._where('requesters')}); ask your SOC lead to add you",
        )

    def command_refusals(
        self, user: str, commands: CommandSequence, members_of: MembersOf
    ) -> dict[int, str]:
        """For each command this person may not request (position from 1), the reason."""
        refusals: dict[int, str] = {}
        for position, command in enumerate(commands.commands, start=1):
            kind = kind_of(command)
            rule = self.rules.get(kind)
            name = _library_name(command)
            if rule is None:
                refusals[position] = (
                    f"{kind.verb} is not allowed by the policy ({self.source} has no [{kind}])"
                )
            elif not self.listed(user, rule.requesters, members_of):
                refusals[position] = (
                    f"you may not request {kind.verb} ({kind.defender_role} live response):"
                    f" you are not in {kind}.requesters of {self.source}"
                )
            elif name is not None and _matches(name, self.blocked):
                refusals[position] = (
                    f"{name} is blocked: the policy never allows it ({self.source},"
                    " blocked_scripts)"
                )
            elif name is not None and not _matches(name, rule.allowed_files):
                key = "scripts" if kind is Kind.RUNSCRIPT else "files"
                refusals[position] = (
                    f"{name} is not among the {kind.verb} files the policy allows"
                    f" ({kind}.{key} in {self.source})"
                )
        return refusals

    def requirement(self, commands: CommandSequence) -> Requirement:
        """The strictest of the kinds in the request. Call after ``command_refusals``."""
        kinds = tuple(dict.fromkeys(kind_of(c) for c in commands.commands))
        rules = [self.rules[k] for k in kinds if k in self.rules]
        return Requirement(
            kinds=kinds,
            approvals=max((r.approvals for r in rules), default=1),
            approval_minutes=min((r.approval_minutes for r in rules), default=60.0),
        )

    # -- deciding -------------------------------------------------------------------------

    def approvers_for(self, kinds: Collection[Kind]) -> list[tuple[str, ...]]:
        """Each kind's approver list: an approver must be in every one of them."""
        return [self.rules[k].approvers if k in self.rules else () for k in kinds]

    def may_approve_kinds(self, user: str, kinds: Collection[Kind], members_of: MembersOf) -> bool:
        return all(
            self.listed(user, approvers, members_of) for approvers in self.approvers_for(kinds)
        )

    def is_approver(self, user: str, members_of: MembersOf) -> bool:
        """An approver of any kind (who may, for example, cancel a run)."""
        return any(self.listed(user, r.approvers, members_of) for r in self.rules.values())

    def may_approve(
        self,
        user: str,
        requester: str,
        commands: CommandSequence,
        members_of: MembersOf,
        already: Collection[str] = (),
    ) -> Decision:
        if user == requester:
            return Decision(
                False, "you asked for this run, so you cannot approve it: a second analyst must"
            )
        kinds = self.requirement(commands).kinds
        if not self.may_approve_kinds(user, kinds, members_of):
            names = (
                "live response"
                if self._setting == "LRBOT_REQUESTERS"
                else " and ".join(k.verb for k in kinds)
            )
            return Decision(
                False,
                f"you are not an approver for {names} ({self._where('approvers')});"
                " nothing was changed",
            )
        if user in already:
            return Decision(
                False, "you have already approved this request; another approver is needed"
            )
        return ALLOWED

    def may_withdraw(self, user: str, requester: str) -> Decision:
        if user != requester:
            return Decision(False, f"only <@{requester}>, who asked, can withdraw it")
        return ALLOWED

    def may_cancel(self, user: str, requester: str, members_of: MembersOf) -> Decision:
        if user == requester or self.is_approver(user, members_of):
            return ALLOWED
        return Decision(
            False, "only the requester or an approver can cancel a run; nothing was changed"
        )

    def _where(self, key: str) -> str:
        if self._setting == "LRBOT_REQUESTERS":
            return "LRBOT_APPROVERS" if key == "approvers" else "LRBOT_REQUESTERS"
        return f"{key} in {self.source}"


def _matches(name: str, patterns: Collection[str]) -> bool:
    # Windows file names are case-insensitive, so the library's are too.
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, p.lower()) for p in patterns)
