"""Persistence with SQLAlchemy Core: requests, command states, events, the Slack outbox and
the audit trail.

Every state change goes through ``Store.transition``: one conditional UPDATE (the row must
still be in an expected state, which makes a decision atomic even when two clicks race or
Slack delivers one twice), plus its events and its outbox items, in one transaction. What
the process promised to tell Slack is therefore stored with the change that caused it.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bot import schema
from bot.audit import GENESIS, AuditEntry, AuditHead, canonical, entry_hash, scrub
from bot.notify import NOTIFY, notice
from bot.records import CommandState, OutboxItem, RequestRecord, RequestState
from bot.schema import SchemaError, SchemaState, SchemaStatus

__all__ = ["Store", "Tallies", "Transition", "schema_status", "shown_url", "upgrade_schema"]

log = logging.getLogger(__name__)

# What the code expects; the database gets it through migrations (bot/migrations), whose
# result a test compares with this.
metadata = sa.MetaData()

requests = sa.Table(
    "requests",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("requester", sa.String(32), nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("machine_id", sa.String(40), nullable=False),
    sa.Column("machine_name", sa.String(255), nullable=False),
    sa.Column("machine", sa.JSON, nullable=False),
    sa.Column("commands", sa.JSON, nullable=False),
    sa.Column("justification", sa.Text, nullable=False),
    sa.Column("ticket", sa.String(200)),
    sa.Column("state", sa.String(32), nullable=False, index=True),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("decided_by", sa.String(32)),
    sa.Column("decided_at", sa.DateTime(timezone=True)),
    sa.Column("message_ts", sa.String(32)),
    sa.Column("action_id", sa.String(64), index=True),
    sa.Column("action_status", sa.String(32)),
    sa.Column("submitted_at", sa.DateTime(timezone=True)),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("cancelled_by", sa.String(32)),
    sa.Column("note", sa.Text),
    sa.Column("digest", sa.String(64)),
    sa.Column("library", sa.JSON),
    sa.Column("approvals_needed", sa.Integer, nullable=False, default=1),
    # A member of a batch (bot/batches.py): its message is the batch's, its replies its thread.
    sa.Column("batch_id", sa.String(32), index=True),
)

# One request for many devices: its members are ordinary requests sharing ``batch_id``.
batches = sa.Table(
    "batches",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("requester", sa.String(32), nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("message_ts", sa.String(32)),
    # When the summary was queued: every member had reached an end.
    sa.Column("finished_at", sa.DateTime(timezone=True)),
)

# One row per distinct approver, with the payload digest they approved: a request needing
# two approvals is approved when two different people have approved the same payload.
approvals = sa.Table(
    "approvals",
    metadata,
    sa.Column("request_id", sa.ForeignKey("requests.id"), primary_key=True),
    sa.Column("user", sa.String(32), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
)

command_states = sa.Table(
    "command_states",
    metadata,
    sa.Column("request_id", sa.ForeignKey("requests.id"), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("errors", sa.Text),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(32), nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(64)),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("detail", sa.JSON),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("done_at", sa.DateTime(timezone=True), index=True),
    sa.Column("error", sa.Text),
)

# The audit trail: appended to, never changed by the app (see bot/audit.py, docs/audit.md).
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("seq", sa.Integer, nullable=False, unique=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("request_id", sa.String(32), index=True),
    sa.Column("actor", sa.String(64)),  # None: the bot itself
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("action_id", sa.String(64)),
    sa.Column("detail", sa.Text, nullable=False),  # the canonical JSON text, as hashed
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# One row (id 1): the chain's tip. Appenders lock it, so they take seq numbers in turn.
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# Work one replica does for the fleet (the tracker and the outbox), held for a while and
# renewed; see bot/leases.py. Times are epoch seconds from each replica's wall clock.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    # Processes with the same host key share one process table (same kernel and PID
    # namespace), so one can tell for certain whether the other is still running.
    sa.Column("host_key", sa.String(200), nullable=False),
    sa.Column("acquired_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

# Calls to Defender's non-run endpoints in the last hour, for the fleet's API budget.
api_calls = sa.Table(
    "api_calls",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False, index=True),
)

_ACTIVE_STATES = (RequestState.PENDING, RequestState.IN_PROGRESS)


@dataclass
class Transition:
    """What one state change writes besides the request row."""

    changes: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str | None, dict[str, Any]]] = field(default_factory=list)
    outbox: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    commands: dict[int, tuple[str, str | None]] = field(default_factory=dict)

    def event(self, kind: str, actor: str | None = None, **detail: Any) -> Transition:
        self.events.append((kind, actor, detail))
        return self

    def send(self, kind: str, **payload: Any) -> Transition:
        self.outbox.append((kind, payload))
        return self


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything we store is UTC. PostgreSQL hands back
    # aware ones in the session's time zone, which the views would print as they are.
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _no_nul(**values: Any) -> dict[str, Any]:
    # PostgreSQL's text refuses NUL (SQLite keeps it): a NUL in a justification or in a
    # Defender error would fail every write of that request. JSON columns escape it anyway.
    return {k: v.replace("\x00", "\ufffd") if isinstance(v, str) else v for k, v in values.items()}


def _as_utc(value: datetime) -> datetime:
    return (_utc(value) or value).astimezone(UTC)


_READ_ONLY = "lrbot_read_only"


_WAL_WAIT_SECONDS = 30.0  # as long as any other statement waits for a lock


def _use_wal(dbapi_connection: Any) -> None:
    """Put the database file in WAL mode (a property of the file, so usually it already is).

    Switching needs the file to itself, and SQLite answers "database is locked" at once
    rather than through its busy wait when another connection holds it, as when several
    processes open a new database together: so wait here, in short steps, for it.
    """
    deadline = time.monotonic() + _WAL_WAIT_SECONDS
    while True:
        mode = dbapi_connection.execute("PRAGMA journal_mode").fetchone()
        if mode and str(mode[0]).lower() == "wal":
            return
        try:
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def _make_engine(url: str) -> Engine:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            # Plain postgresql:// would mean psycopg2, which is not installed.
            parsed = parsed.set(drivername="postgresql+psycopg")
        # READ COMMITTED is enough: each decision is one conditional UPDATE, which
        # PostgreSQL re-checks against the committed row after waiting for its lock.
        return sa.create_engine(parsed, pool_pre_ping=True, isolation_level="READ COMMITTED")
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    database = url.split("///", 1)[-1]
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, open transactions, and open writes as writers
        # (BEGIN IMMEDIATE): a reader upgraded to a writer fails at once under WAL.
        dbapi_connection.isolation_level = None
        _use_wal(dbapi_connection)
        dbapi_connection.execute("PRAGMA foreign_keys=ON")

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # Reads take no lock: under WAL they see a snapshot, neither waiting for a writer nor
        # holding one up. Taking the write lock for them queued every click's lookup behind
        # the outbox's and the tracker's writes, and SQLite's busy wait sleeps in steps.
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def shown_url(url: str) -> str:
    """The database URL as it may be printed or logged: any password hidden."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "(not a database URL)"


def schema_status(url: str) -> SchemaStatus:
    """Where the schema of the database at ``url`` stands; reads only."""
    engine = _make_engine(url)
    try:
        with engine.execution_options(**{_READ_ONLY: True}).connect() as conn:
            return schema.read_status(conn)
    finally:
        engine.dispose()


def upgrade_schema(url: str) -> tuple[SchemaStatus, SchemaStatus]:
    """``lrbot db upgrade``: the schema before and after, in one transaction."""
    engine = _make_engine(url)
    try:
        with engine.begin() as conn:
            return schema.upgrade(conn)
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Tallies:
    """What the metrics read from the store at a scrape."""

    states: dict[str, int]  # requests by state
    final_statuses: dict[str, int]  # finished runs by Defender's final status
    events: dict[str, int]  # events by kind (the event log is append-only)
    approved_notes: list[str | None]  # why each approved run waits, if it says
    outbox_pending: int


class Store:
    """The bot's database: opening it migrates a fresh one and refuses a stale one
    (``SchemaError``)."""

    def __init__(self, url: str) -> None:
        self.engine = _make_engine(url)
        # Transactions that only read: ``engine.begin()`` for anything that writes.
        self._reader = self.engine.execution_options(**{_READ_ONLY: True})
        try:
            self._open_schema()
            self._init_audit_head()
        except BaseException:
            self.engine.dispose()
            raise

    def close(self) -> None:
        self.engine.dispose()

    @property
    def reader(self) -> Engine:
        """For transactions that only read: on SQLite they take no write lock."""
        return self._reader

    # -- requests -------------------------------------------------------------------------

    def create(self, record: RequestRecord, transition: Transition, now: datetime) -> None:
        """Store a new request with its commands, events and first outbox items."""
        row = _no_nul(**record.to_row())
        with self.engine.begin() as conn:
            conn.execute(requests.insert().values(**row))
            conn.execute(
                command_states.insert(),
                [
                    {"request_id": record.id, "position": p, "status": "Created"}
                    for p in range(1, len(record.commands) + 1)
                ],
            )
            self._write_extras(conn, record.id, transition, now)

    def get(self, request_id: str) -> RequestRecord | None:
        with self._reader.connect() as conn:
            return self._load(conn, request_id)

    def transition(
        self,
        request_id: str,
        transition: Transition,
        now: datetime,
        *,
        expect: Iterable[RequestState] | None = None,
        where: sa.ColumnElement[bool] | None = None,
    ) -> RequestRecord | None:
        """Apply a change if the request is in one of ``expect``; None when it was not."""
        condition = requests.c.id == request_id
        if expect is not None:
            condition = condition & requests.c.state.in_([str(s) for s in expect])
        if where is not None:
            condition = condition & where
        with self.engine.begin() as conn:
            changes = _no_nul(**transition.changes, updated_at=now)
            result = conn.execute(requests.update().where(condition).values(**changes))
            if result.rowcount != 1:
                return None
            for position, (status, errors) in transition.commands.items():
                conn.execute(
                    command_states.update()
                    .where(
                        (command_states.c.request_id == request_id)
                        & (command_states.c.position == position)
                    )
                    .values(**_no_nul(status=status, errors=errors))
                )
            self._write_extras(conn, request_id, transition, now)
            return self._load(conn, request_id)

    def approve(
        self,
        request_id: str,
        user: str,
        now: datetime,
        build: Callable[[RequestRecord, bool], Transition],
    ) -> tuple[str, RequestRecord | None]:
        """Record ``user``'s approval of an open request, and approve the request when it has
        all the distinct approvals it needs.

        ``build(record, complete)`` gives the transition to write, from the request as it
        will be with this approval. Returns ``("approved" | "recorded" | "duplicate" |
        "closed", record)``. The request row is locked first, so two approvers finishing at
        once on PostgreSQL cannot both see one approval and leave the request waiting.
        """
        with self.engine.begin() as conn:
            row = (
                conn.execute(
                    sa.select(requests.c.state, requests.c.expires_at, requests.c.digest)
                    .where(requests.c.id == request_id)
                    .with_for_update()
                )
                .mappings()
                .first()
            )
            if row is None:
                return "closed", None
            expires_at = _utc(row["expires_at"])
            if row["state"] != str(RequestState.AWAITING_APPROVAL) or (
                expires_at is not None and expires_at <= now
            ):
                return "closed", self._load(conn, request_id)
            record = self._load(conn, request_id)
            assert record is not None
            if user in record.approvals:
                return "duplicate", record
            conn.execute(
                approvals.insert().values(
                    request_id=request_id, user=user, at=now, digest=row["digest"] or ""
                )
            )
            given = (*record.approvals, user)
            complete = len(given) >= record.approvals_needed
            transition = build(record.with_changes(approvals=given), complete)
            changes = {**transition.changes, "updated_at": now}
            conn.execute(requests.update().where(requests.c.id == request_id).values(**changes))
            self._write_extras(conn, request_id, transition, now)
            return ("approved" if complete else "recorded"), self._load(conn, request_id)

    def approval_digests(self, request_id: str) -> dict[str, str]:
        """Each approver's user id and the payload digest they approved."""
        with self._reader.connect() as conn:
            rows = conn.execute(
                sa.select(approvals.c.user, approvals.c.digest).where(
                    approvals.c.request_id == request_id
                )
            )
            return {str(user): str(digest) for user, digest in rows}

    def in_states(
        self, states: Sequence[RequestState], *, expired_by: datetime | None = None
    ) -> list[RequestRecord]:
        """Requests in the given states (whose approval expired by then), oldest first."""
        condition: sa.ColumnElement[bool] = requests.c.state.in_([str(s) for s in states])
        if expired_by is not None:
            condition = condition & (requests.c.expires_at <= expired_by)
        with self._reader.connect() as conn:
            ids = conn.execute(
                sa.select(requests.c.id)
                .where(condition)
                .order_by(requests.c.created_at, requests.c.id)
            ).scalars()
            return [r for r in (self._load(conn, i) for i in list(ids)) if r is not None]

    def request_ids(self, states: Sequence[RequestState]) -> list[str]:
        """The ids alone of the requests in the given states, oldest first (one query)."""
        with self._reader.connect() as conn:
            ids = conn.execute(
                sa.select(requests.c.id)
                .where(requests.c.state.in_([str(s) for s in states]))
                .order_by(requests.c.created_at, requests.c.id)
            ).scalars()
            return list(ids)

    def count_submitted_since(self, since: datetime) -> int:
        with self._reader.connect() as conn:
            count = conn.execute(
                sa.select(sa.func.count())
                .select_from(requests)
                .where(requests.c.submitted_at >= since)
            ).scalar_one()
            return int(count)

    def submitted_since(self, since: datetime) -> list[datetime]:
        """When the runs submitted at or after ``since`` were submitted, oldest first."""
        with self._reader.connect() as conn:
            times = conn.execute(
                sa.select(requests.c.submitted_at)
                .where(requests.c.submitted_at >= since)
                .order_by(requests.c.submitted_at)
            ).scalars()
            return [t for t in (_utc(v) for v in times) if t is not None]

    def count_active(self) -> int:
        with self._reader.connect() as conn:
            count = conn.execute(
                sa.select(sa.func.count())
                .select_from(requests)
                .where(
                    requests.c.state.in_(
                        [str(s) for s in (*_ACTIVE_STATES, RequestState.SUBMITTING)]
                    )
                )
            ).scalar_one()
            return int(count)

    def ping(self) -> None:
        """Raise unless the database answers a query on the bot's own tables."""
        with self._reader.connect() as conn:
            conn.execute(sa.select(requests.c.id).limit(1)).all()

    def tallies(self) -> Tallies:
        """Counts for the metrics, in one read: a handful of grouped queries."""
        with self._reader.connect() as conn:
            states = conn.execute(
                sa.select(requests.c.state, sa.func.count()).group_by(requests.c.state)
            ).all()
            finals = conn.execute(
                sa.select(requests.c.action_status, sa.func.count())
                .where(requests.c.state == str(RequestState.FINISHED))
                .group_by(requests.c.action_status)
            ).all()
            kinds = conn.execute(
                sa.select(events.c.kind, sa.func.count()).group_by(events.c.kind)
            ).all()
            notes = conn.execute(
                sa.select(requests.c.note).where(requests.c.state == str(RequestState.APPROVED))
            ).scalars()
            pending = conn.execute(
                sa.select(sa.func.count()).select_from(outbox).where(outbox.c.done_at.is_(None))
            ).scalar_one()
            return Tallies(
                states={str(k): int(n) for k, n in states},
                final_statuses={str(k or "unknown"): int(n) for k, n in finals},
                events={str(k): int(n) for k, n in kinds},
                approved_notes=list(notes),
                outbox_pending=int(pending),
            )

    def events_of(self, request_id: str) -> list[dict[str, Any]]:
        with self._reader.connect() as conn:
            rows = conn.execute(
                sa.select(events).where(events.c.request_id == request_id).order_by(events.c.id)
            ).mappings()
            return [dict(r) for r in rows]

    # -- audit trail ----------------------------------------------------------------------

    def audit(
        self, request_id: str | None, kind: str, actor: str | None, now: datetime, **detail: Any
    ) -> None:
        """Append one audit entry in its own transaction (for what changes no request row,
        such as a downloaded result); the action id comes from ``detail`` or the request."""
        with self.engine.begin() as conn:
            _append_audit(conn, request_id, kind, actor, now, detail)

    def audit_head(self) -> AuditHead | None:
        with self._reader.connect() as conn:
            row = conn.execute(sa.select(audit_head).where(audit_head.c.id == 1)).first()
            return None if row is None else AuditHead(seq=row.seq, hash=row.hash)

    def audit_last_seq(self) -> int:
        """The highest seq in ``audit_log`` (0 when empty), whatever the head says."""
        with self._reader.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(audit_log.c.seq))).scalar() or 0)

    def audit_entries(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        through: int | None = None,
        chunk: int = 500,
    ) -> Iterator[AuditEntry]:
        """Entries in seq order (``since <= at < until``, seq up to ``through``), read
        ``chunk`` at a time: a long trail is never held in memory, nor a read transaction
        open while it is written out."""
        condition: sa.ColumnElement[bool] = sa.true()
        if through is not None:
            condition = condition & (audit_log.c.seq <= through)
        # Stored in UTC, and SQLite compares the text: bounds must be UTC too.
        if since is not None:
            condition = condition & (audit_log.c.at >= _as_utc(since))
        if until is not None:
            condition = condition & (audit_log.c.at < _as_utc(until))
        after = None
        while True:
            page = condition if after is None else condition & (audit_log.c.seq > after)
            with self._reader.connect() as conn:
                rows = conn.execute(
                    sa.select(audit_log).where(page).order_by(audit_log.c.seq).limit(chunk)
                ).all()
            for row in rows:
                yield AuditEntry(
                    seq=row.seq,
                    at=_utc(row.at) or row.at,
                    request_id=row.request_id,
                    actor=row.actor,
                    kind=row.kind,
                    action_id=row.action_id,
                    detail=row.detail,
                    prev_hash=row.prev_hash,
                    hash=row.hash,
                )
            if len(rows) < chunk:
                return
            after = rows[-1].seq

    # -- outbox ---------------------------------------------------------------------------

    def due_outbox(self, now: datetime, limit: int = 500) -> list[OutboxItem]:
        """Undelivered items in creation order, except those behind a waiting item of their
        own request: a thread reads in order, and one request's wait holds up no other (nor
        does a waiting DM hold up its request's thread)."""
        with self._reader.connect() as conn:
            rows = conn.execute(
                sa.select(outbox)
                .where(outbox.c.done_at.is_(None))
                .order_by(outbox.c.id)
                .limit(limit)
            ).mappings()
            items = []
            waiting: set[str] = set()  # requests whose thread waits
            waiting_dm: set[str] = set()  # requests whose requester's DM waits
            for row in rows:
                item = OutboxItem(
                    id=row["id"],
                    request_id=row["request_id"],
                    kind=row["kind"],
                    payload=row["payload"],
                    attempts=row["attempts"],
                    not_before=_utc(row["not_before"]) or now,
                    created_at=_utc(row["created_at"]),
                )
                # A DM is not in the thread: its wait holds up the request's later DMs only,
                # while a DM still follows its thread (it links there).
                dm = item.kind == NOTIFY
                held = item.request_id in waiting or (dm and item.request_id in waiting_dm)
                if held or item.not_before > now:
                    (waiting_dm if dm else waiting).add(item.request_id)
                    continue
                items.append(item)
            return items

    def outbox_done(self, item_id: int, now: datetime, error: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                outbox.update()
                .where(outbox.c.id == item_id)
                .values(**_no_nul(done_at=now, error=error, attempts=outbox.c.attempts + 1))
            )

    def outbox_retry(self, item_id: int, not_before: datetime, error: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                outbox.update()
                .where(outbox.c.id == item_id)
                .values(
                    **_no_nul(not_before=not_before, error=error, attempts=outbox.c.attempts + 1)
                )
            )

    def next_outbox_time(self) -> datetime | None:
        with self._reader.connect() as conn:
            value = conn.execute(
                sa.select(sa.func.min(outbox.c.not_before)).where(outbox.c.done_at.is_(None))
            ).scalar_one_or_none()
            return _utc(value)

    def set_message_ts(self, request_id: str, ts: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(requests.update().where(requests.c.id == request_id).values(message_ts=ts))

    # -- internals ------------------------------------------------------------------------

    def _write_extras(
        self, conn: Connection, request_id: str, transition: Transition, now: datetime
    ) -> None:
        if transition.events:
            conn.execute(
                events.insert(),
                [
                    {
                        "request_id": request_id,
                        "at": now,
                        "actor": actor,
                        "kind": kind,
                        "detail": json.loads(json.dumps(detail, default=str)),
                    }
                    for kind, actor, detail in transition.events
                ],
            )
            for kind, actor, detail in transition.events:
                _append_audit(conn, request_id, kind, actor, now, detail)
        outbox_items = list(transition.outbox)
        told = notice(transition.changes, transition.events)
        if told is not None:
            outbox_items.append((NOTIFY, {"state": str(told)}))
        if outbox_items:
            conn.execute(
                outbox.insert(),
                [
                    {
                        "request_id": request_id,
                        "kind": kind,
                        "payload": payload,
                        "created_at": now,
                        "not_before": now,
                        "attempts": 0,
                    }
                    for kind, payload in outbox_items
                ],
            )

    def _open_schema(self) -> None:
        """A fresh database gets the schema (the first start of a new install); any other
        must already be at this lrbot's revision: ``SchemaError`` says what to do."""
        with self._reader.connect() as conn:
            found = schema.read_status(conn)
        if found.state is SchemaState.CURRENT:
            return
        if found.state is not SchemaState.EMPTY:
            raise SchemaError(found.refusal())
        with self.engine.begin() as conn:
            schema.upgrade(conn, fresh_only=True)  # re-checked under the migration lock

    def _init_audit_head(self) -> None:
        if self.audit_head() is not None:
            return  # no write lock for a reader such as ``lrbot audit verify``
        with self.engine.begin() as conn:
            if conn.execute(sa.select(audit_head.c.id)).first() is not None:
                return
            try:
                with conn.begin_nested():
                    conn.execute(audit_head.insert().values(id=1, seq=0, hash=GENESIS))
            except sa.exc.IntegrityError:
                pass  # another replica created it first

    def _load(self, conn: Connection, request_id: str) -> RequestRecord | None:
        row = (
            conn.execute(sa.select(requests).where(requests.c.id == request_id)).mappings().first()
        )
        if row is None:
            return None
        states = conn.execute(
            sa.select(command_states)
            .where(command_states.c.request_id == request_id)
            .order_by(command_states.c.position)
        ).mappings()
        approvers = conn.execute(
            sa.select(approvals.c.user)
            .where(approvals.c.request_id == request_id)
            .order_by(approvals.c.at, approvals.c.user)
        ).scalars()
        values = {k: _utc(v) if isinstance(v, datetime) else v for k, v in row.items()}
        return RequestRecord.from_row(
            values,
            [CommandState(status=s["status"], errors=s["errors"]) for s in states],
            tuple(str(a) for a in approvers),
        )


def _append_audit(
    conn: Connection,
    request_id: str | None,
    kind: str,
    actor: str | None,
    now: datetime,
    detail: dict[str, Any],
) -> None:
    """Chain one entry onto the head, inside the caller's transaction."""
    action_id = detail.get("action_id")
    if action_id is None and request_id is not None:
        # The row as this transaction left it: a submission's own event already sees it.
        action_id = conn.execute(
            sa.select(requests.c.action_id).where(requests.c.id == request_id)
        ).scalar_one_or_none()
    # Locks the head on PostgreSQL until commit; SQLite writers already hold the database.
    head = conn.execute(
        sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
    ).one()
    seq = head.seq + 1
    at = _as_utc(now)
    text = canonical(scrub(detail))
    action = None if action_id is None else str(action_id)
    digest = entry_hash(seq, at, request_id, actor, kind, action, text, head.hash)
    conn.execute(
        audit_log.insert().values(
            seq=seq,
            at=at,
            request_id=request_id,
            actor=actor,
            kind=kind,
            action_id=action,
            detail=text,
            prev_hash=head.hash,
            hash=digest,
        )
    )
    moved = conn.execute(
        audit_head.update()
        .where((audit_head.c.id == 1) & (audit_head.c.seq == head.seq))
        .values(seq=seq, hash=digest)
    )
    if moved.rowcount != 1:  # the lock should make this impossible: never fork the chain
        raise RuntimeError(f"audit head moved during an append (seq {seq})")
