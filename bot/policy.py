"""Who may request, approve, withdraw and cancel: pure decisions, each with its reason.

Group membership comes in as a function, so the rules stay pure and testable; the bot
passes ``Directory.members`` (Slack user groups, cached).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from bot.records import RequestRecord

__all__ = ["Decision", "Policy"]

MembersOf = Callable[[str], Collection[str]]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


ALLOWED = Decision(True, "allowed")


@dataclass(frozen=True)
class Policy:
    """Requesters (empty: anyone) and approvers (Slack user ids ``U…``/``W…``, groups ``S…``)."""

    requesters: tuple[str, ...]
    approvers: tuple[str, ...]

    def _listed(self, user: str, principals: tuple[str, ...], members_of: MembersOf) -> bool:
        if user in principals:
            return True
        return any(p.startswith("S") and user in members_of(p) for p in principals)

    def may_request(self, user: str, members_of: MembersOf) -> Decision:
        if not self.requesters or self._listed(user, self.requesters, members_of):
            return ALLOWED
        return Decision(
            False,
            "you are not on the list of people who may request live response"
            " (LRBOT_REQUESTERS); ask your SOC lead to add you",
        )

    def is_approver(self, user: str, members_of: MembersOf) -> bool:
        return self._listed(user, self.approvers, members_of)

    def may_approve(self, user: str, request: RequestRecord, members_of: MembersOf) -> Decision:
        if user == request.requester:
            return Decision(
                False, "you asked for this run, so you cannot approve it: a second analyst must"
            )
        if not self.is_approver(user, members_of):
            return Decision(
                False,
                "you are not an approver for live response (LRBOT_APPROVERS); nothing was changed",
            )
        return ALLOWED

    def may_withdraw(self, user: str, request: RequestRecord) -> Decision:
        if user != request.requester:
            return Decision(False, f"only <@{request.requester}>, who asked, can withdraw it")
        return ALLOWED

    def may_cancel(self, user: str, request: RequestRecord, members_of: MembersOf) -> Decision:
        if user == request.requester or self.is_approver(user, members_of):
            return ALLOWED
        return Decision(
            False, "only the requester or an approver can cancel a run; nothing was changed"
        )
