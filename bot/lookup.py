"""Read-only lookups for the status commands and the App Home: whose requests, which are
running, which wait for a given approver, what ran on a device."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime

import sqlalchemy as sa

from bot.policy import MembersOf, Policy
from bot.records import RequestRecord, RequestState
from bot.store import Store, requests

__all__ = ["LIST_LIMIT", "REQUEST_ID", "Lookup", "looks_like_request_id"]

LIST_LIMIT = 30
# ``new_request_id``: ``lr-`` and 8 characters of Crockford's base32.
REQUEST_ID = re.compile(r"lr-[0-9abcdefghjkmnpqrstvwxyz]{8}")
_RUNNING = [
    RequestState.APPROVED,
    RequestState.SUBMITTING,
    RequestState.UNKNOWN,
    RequestState.PENDING,
    RequestState.IN_PROGRESS,
]


def looks_like_request_id(text: str) -> bool:
    """Meant as a request id (``lr-…``), whether well formed or not."""
    return text.lower().startswith("lr-")


class Lookup:
    """Queries over the store; each list is newest first and at most ``limit`` long."""

    def __init__(
        self,
        store: Store,
        policy: Policy,
        members_of: MembersOf,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.policy = policy
        self.members_of = members_of
        self.clock = clock

    def request(self, request_id: str) -> RequestRecord | None:
        return self.store.get(request_id.lower())

    def of_requester(self, user: str, limit: int = LIST_LIMIT) -> list[RequestRecord]:
        return self._newest(requests.c.requester == user, limit)

    def running(self, limit: int = LIST_LIMIT) -> list[RequestRecord]:
        return self._newest(requests.c.state.in_([str(s) for s in _RUNNING]), limit)

    def on_device(self, device: str, limit: int = LIST_LIMIT) -> list[RequestRecord]:
        """By machine id or host name, either case; a bare host name finds its FQDN too."""
        wanted = device.strip().lower()
        if not wanted:
            return []
        name = sa.func.lower(requests.c.machine_name)
        condition = (
            (sa.func.lower(requests.c.machine_id) == wanted)
            | (name == wanted)
            | name.startswith(wanted + ".", autoescape=True)
        )
        return self._newest(condition, limit)

    def awaiting(self, user: str, limit: int = LIST_LIMIT) -> list[RequestRecord]:
        """Open requests ``user`` may approve now: not their own, not yet approved by them,
        in every approver list their commands need (the same policy as the button)."""
        now = self.clock()
        condition = (
            (requests.c.state == str(RequestState.AWAITING_APPROVAL))
            & (requests.c.expires_at > now)
            & (requests.c.requester != user)
        )
        found = []
        for record in self._newest(condition, limit * 4):
            decision = self.policy.may_approve(
                user, record.requester, record.commands, self.members_of, record.approvals
            )
            if decision:
                found.append(record)
            if len(found) == limit:
                break
        return found

    def _newest(self, condition: sa.ColumnElement[bool], limit: int) -> list[RequestRecord]:
        with self.store.reader.connect() as conn:
            ids: Sequence[str] = (
                conn.execute(
                    sa.select(requests.c.id)
                    .where(condition)
                    .order_by(requests.c.created_at.desc(), requests.c.id.desc())
                    .limit(limit)
                )
                .scalars()
                .all()
            )
        return [r for r in (self.store.get(i) for i in ids) if r is not None]
