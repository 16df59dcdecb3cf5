"""Defender's API budget for the whole fleet: the call times kept in the shared database.

Defender counts its 100 calls a minute and 1,500 an hour per application, not per
process, so replicas on one PostgreSQL database record every call to a non-run endpoint in
``api_calls`` and take room from it in turn. A lone process on SQLite keeps the same
accounting in memory (``commands.budget.MemoryLedger``), which is exact there and cheaper.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.store import Store, api_calls
from commands.budget import HOUR, wait_for_room

__all__ = ["StoreLedger"]

# The advisory lock that puts takers in turn on PostgreSQL (a count cannot be locked).
_LOCK_KEY = 0x6C72626F74  # "lrbot"


class StoreLedger:
    """A ``CallLedger`` in the database; times are epoch seconds from each host's clock."""

    def __init__(self, store: Store, wall: Callable[[], float] = time.time) -> None:
        self.store = store
        self.wall = wall
        self._postgres = store.engine.dialect.name == "postgresql"

    def now(self) -> float:
        return self.wall()

    def take(self, now: float, windows: Sequence[tuple[float, int]]) -> float:
        longest = max(seconds for seconds, _ in windows)
        with self.store.engine.begin() as conn:
            if self._postgres:
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_KEY)))
            # SQLite: the transaction began as a writer (BEGIN IMMEDIATE), which is the turn.
            conn.execute(api_calls.delete().where(api_calls.c.at <= now - HOUR))
            times = _times_since(conn, now - longest)
            wait = max(
                wait_for_room([t for t in times if t + seconds > now], allowed, now, seconds)
                for seconds, allowed in windows
            )
            if wait <= 0.0:
                conn.execute(api_calls.insert().values(at=now))
            return wait

    def recent(self, now: float, seconds: float) -> list[float]:
        with self.store.reader.connect() as conn:
            return _times_since(conn, now - seconds)


def _times_since(conn: Connection, since: float) -> list[float]:
    """The recorded call times after ``since``, oldest first."""
    query = sa.select(api_calls.c.at).where(api_calls.c.at > since).order_by(api_calls.c.at)
    return [float(t) for t in conn.execute(query).scalars()]
