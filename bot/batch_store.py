"""Batches in the store: one request for many devices, kept as one ordinary request per
device (so the tracker, its limits, the digest check and reconciliation treat each as any
other) plus a ``batches`` row with the shared message.

A decision on a batch is one transaction over every member: all of them move, or none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.records import RequestRecord, RequestState
from bot.store import (
    Store,
    Transition,
    _no_nul,
    _utc,
    approvals,
    batches,
    command_states,
    outbox,
    requests,
)

__all__ = ["BatchRecord", "BatchStore", "batch_digest"]

_DONE = frozenset(
    str(s)
    for s in (
        RequestState.FINISHED,
        RequestState.REJECTED,
        RequestState.WITHDRAWN,
        RequestState.EXPIRED,
        RequestState.REFUSED,
    )
)


def batch_digest(digests: Iterable[str]) -> str:
    """What one approval of the batch is bound to: every member's payload digest."""
    return hashlib.sha256("\n".join(sorted(digests)).encode()).hexdigest()


@dataclass(frozen=True)
class BatchRecord:
    id: str
    created_at: datetime
    requester: str
    channel: str
    digest: str
    message_ts: str | None = None
    finished_at: datetime | None = None


class BatchStore:
    """The batch operations, on the request store's database."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(
        self,
        batch: BatchRecord,
        members: list[tuple[RequestRecord, Transition]],
        first_items: Transition,
        now: datetime,
    ) -> None:
        """The batch, every member with its events, and the batch's outbox items, at once."""
        with self.store.engine.begin() as conn:
            conn.execute(
                batches.insert().values(
                    id=batch.id,
                    created_at=batch.created_at,
                    requester=batch.requester,
                    channel=batch.channel,
                    digest=batch.digest,
                )
            )
            for record, transition in members:
                conn.execute(requests.insert().values(**_no_nul(**record.to_row())))
                conn.execute(
                    command_states.insert(),
                    [
                        {"request_id": record.id, "position": p, "status": "Created"}
                        for p in range(1, len(record.commands) + 1)
                    ],
                )
                self.store._write_extras(conn, record.id, transition, now)
            self.store._write_extras(conn, batch.id, first_items, now)

    def get(self, batch_id: str) -> BatchRecord | None:
        with self.store.reader.connect() as conn:
            row = conn.execute(sa.select(batches).where(batches.c.id == batch_id)).mappings()
            found = row.first()
            if found is None:
                return None
            values = dict(found)
            values["created_at"] = _utc(values["created_at"])
            values["finished_at"] = _utc(values["finished_at"])
            return BatchRecord(**values)

    def members(self, batch_id: str) -> list[RequestRecord]:
        with self.store.reader.connect() as conn:
            return self._members(conn, batch_id)

    def set_message_ts(self, batch_id: str, ts: str) -> None:
        """The batch message is every member's message: their replies go to its thread."""
        with self.store.engine.begin() as conn:
            conn.execute(batches.update().where(batches.c.id == batch_id).values(message_ts=ts))
            conn.execute(
                requests.update().where(requests.c.batch_id == batch_id).values(message_ts=ts)
            )

    def transition_all(
        self,
        batch_id: str,
        build: Callable[[RequestRecord], Transition],
        batch_items: Transition,
        now: datetime,
        *,
        expect: RequestState,
        open_until: bool = True,
    ) -> list[RequestRecord] | None:
        """Move every member (each in state ``expect``, and unexpired when ``open_until``)
        with ``build(member)``, and queue ``batch_items``; None, and nothing changed, when
        any member is not so."""
        with self.store.engine.begin() as conn:
            members = self._locked(conn, batch_id, expect, now if open_until else None)
            if members is None:
                return None
            for record in members:
                self._apply(conn, record, build(record), now)
            self.store._write_extras(conn, batch_id, batch_items, now)
            return self._members(conn, batch_id)

    def approve_all(
        self,
        batch_id: str,
        user: str,
        now: datetime,
        build: Callable[[RequestRecord, bool], Transition],
        batch_items: Callable[[bool], Transition],
    ) -> tuple[str, list[RequestRecord]]:
        """``user``'s approval of every member: ``("approved" | "recorded" | "duplicate" |
        "closed", members)``, as ``Store.approve`` for one request."""
        with self.store.engine.begin() as conn:
            members = self._locked(conn, batch_id, RequestState.AWAITING_APPROVAL, now)
            if members is None:
                return "closed", self._members(conn, batch_id)
            if any(user in m.approvals for m in members):
                return "duplicate", members
            complete = False
            for record in members:
                conn.execute(
                    approvals.insert().values(
                        request_id=record.id, user=user, at=now, digest=record.digest or ""
                    )
                )
                given = (*record.approvals, user)
                complete = len(given) >= record.approvals_needed
                self._apply(
                    conn, record, build(record.with_changes(approvals=given), complete), now
                )
            self.store._write_extras(conn, batch_id, batch_items(complete), now)
            return ("approved" if complete else "recorded"), self._members(conn, batch_id)

    def claim_summary(self, batch_id: str, now: datetime) -> bool:
        """Queue the summary once, when every member has reached an end."""
        with self.store.engine.begin() as conn:
            row = conn.execute(
                sa.select(batches.c.finished_at).where(batches.c.id == batch_id).with_for_update()
            ).first()
            if row is None or row.finished_at is not None:
                return False
            states = conn.execute(
                sa.select(requests.c.state).where(requests.c.batch_id == batch_id)
            ).scalars()
            if any(str(s) not in _DONE for s in states):
                return False
            conn.execute(batches.update().where(batches.c.id == batch_id).values(finished_at=now))
            self.store._write_extras(conn, batch_id, Transition().send("batch_summary"), now)
            return True

    def results_posted(self, batch_id: str) -> dict[str, int]:
        """Each member's results delivered to the thread."""
        with self.store.reader.connect() as conn:
            rows = conn.execute(
                sa.select(outbox.c.request_id, sa.func.count())
                .select_from(outbox.join(requests, requests.c.id == outbox.c.request_id))
                .where(
                    (requests.c.batch_id == batch_id)
                    & (outbox.c.kind == "result")
                    & outbox.c.done_at.is_not(None)
                    & outbox.c.error.is_(None)
                )
                .group_by(outbox.c.request_id)
            ).all()
            return {str(r): int(n) for r, n in rows}

    # -- internals ------------------------------------------------------------------------

    def _members(self, conn: Connection, batch_id: str) -> list[RequestRecord]:
        ids = conn.execute(
            sa.select(requests.c.id)
            .where(requests.c.batch_id == batch_id)
            .order_by(requests.c.created_at, requests.c.id)
        ).scalars()
        return [r for r in (self.store._load(conn, i) for i in list(ids)) if r is not None]

    def _locked(
        self, conn: Connection, batch_id: str, expect: RequestState, open_at: datetime | None
    ) -> list[RequestRecord] | None:
        rows = conn.execute(
            sa.select(requests.c.id, requests.c.state, requests.c.expires_at)
            .where(requests.c.batch_id == batch_id)
            .with_for_update()
        ).all()
        if not rows:
            return None
        for row in rows:
            expires = _utc(row.expires_at)
            if row.state != str(expect) or (
                open_at is not None and expires is not None and expires <= open_at
            ):
                return None
        return self._members(conn, batch_id)

    def _apply(
        self, conn: Connection, record: RequestRecord, transition: Transition, now: datetime
    ) -> None:
        changes = _no_nul(**transition.changes, updated_at=now)
        conn.execute(requests.update().where(requests.c.id == record.id).values(**changes))
        self.store._write_extras(conn, record.id, transition, now)
