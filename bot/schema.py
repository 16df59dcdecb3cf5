"""Where a database's schema stands against the migrations this lrbot ships, and upgrading it.

The migrations live in ``bot/migrations`` and run through alembic, configured here in code
(no ``alembic.ini``), on a connection the caller opened. A database is in one of five states:

- ``empty``: none of lrbot's tables; a fresh install, which ``Store`` migrates itself;
- ``current``: at the head revision this lrbot ships;
- ``behind``: at an older revision this lrbot knows: ``lrbot db upgrade`` brings it up;
- ``ahead``: at a revision this lrbot does not know: a newer lrbot migrated it;
- ``legacy``: tables made by ``create_all`` before migrations, with no revision recorded.
  ``lrbot db upgrade`` adopts them (stamps the baseline revision) when their tables and
  columns are exactly the baseline's, and otherwise refuses, naming the difference.

An upgrade runs in the caller's one transaction, so it commits whole or not at all. Two
processes starting at once do not both migrate: on PostgreSQL the upgrade first takes a
transaction-scoped advisory lock (``LOCK_KEY``), on SQLite the transaction already holds
the database's write lock (``BEGIN IMMEDIATE``); either way the state is read again under
the lock, and the second process finds the first one's work done.
"""

from __future__ import annotations

import enum
import functools
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

__all__ = [
    "BASELINE",
    "LOCK_KEY",
    "MIGRATIONS",
    "SchemaError",
    "SchemaState",
    "SchemaStatus",
    "alembic_config",
    "head",
    "legacy_differences",
    "read_status",
    "upgrade",
]

MIGRATIONS = str(Path(__file__).parent / "migrations")
BASELINE = "0001"  # the schema of ``create_all`` before migrations
# pg_advisory_xact_lock's key for upgrades: the bytes of "lrbot-db" as a (positive) bigint.
LOCK_KEY = int.from_bytes(b"lrbot-db", "big")

UPGRADE = "run `lrbot db upgrade`"

log = logging.getLogger(__name__)
# alembic narrates every step at INFO, the scratch run of ``baseline_columns`` included,
# which reads as if a refused database had been migrated: lrbot says what it did itself.
logging.getLogger("alembic").setLevel(logging.WARNING)


class SchemaError(Exception):
    """The database's schema is not one this lrbot can run on (or upgrade)."""


class SchemaState(enum.StrEnum):
    EMPTY = "empty"
    CURRENT = "current"
    BEHIND = "behind"
    AHEAD = "ahead"
    LEGACY = "legacy"


@dataclass(frozen=True)
class SchemaStatus:
    """A database's state; ``revision`` is its recorded one (None: empty or legacy)."""

    state: SchemaState
    revision: str | None
    head: str

    def describe(self) -> str:
        """One line for ``lrbot db current``."""
        match self.state:
            case SchemaState.CURRENT:
                return f"the database schema is at revision {self.head}: up to date"
            case SchemaState.EMPTY:
                return (
                    "the database has no lrbot tables yet: `lrbot db upgrade` (or the first"
                    f" `lrbot serve`) creates them at revision {self.head}"
                )
        return self.refusal()

    def refusal(self) -> str:
        """Why this lrbot will not run on the database, and what to do."""
        match self.state:
            case SchemaState.BEHIND:
                return (
                    f"the database schema is at revision {self.revision}"
                    f" (this lrbot needs {self.head}): {UPGRADE}"
                )
            case SchemaState.AHEAD:
                return (
                    f"the database schema is at revision {self.revision}, which this lrbot"
                    f" does not know (it needs {self.head}): a newer lrbot upgraded it; run"
                    " that version, or restore the backup taken before the upgrade"
                )
            case SchemaState.LEGACY:
                return (
                    "the database's tables were made before schema migrations (no revision"
                    f" recorded; this lrbot needs {self.head}): {UPGRADE}"
                )
        return self.describe()


def alembic_config(connection: Connection | None = None, location: str = MIGRATIONS) -> Config:
    """alembic's configuration, in code: the migrations in ``location`` (the packaged ones;
    the tests add revisions in a copy), run on ``connection``."""
    config = Config(attributes={"connection": connection})
    config.set_main_option("script_location", location)
    return config


@functools.cache
def _scripts(location: str) -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(location=location))


def head(location: str = MIGRATIONS) -> str:
    """The newest revision this lrbot ships."""
    found = _scripts(location).get_current_head()
    assert found is not None, f"{location} has no revision"
    return found


# alembic keeps its running migration in module globals (``alembic.context``): two threads
# migrating at once (stores opened together) would run in each other's context.
_ALEMBIC = threading.RLock()


@functools.cache
def _known(location: str) -> frozenset[str]:
    return frozenset(script.revision for script in _scripts(location).walk_revisions())


@functools.cache
def baseline_columns() -> dict[str, frozenset[str]]:
    """Each table's column names as the baseline revision makes them: what a database made
    before migrations must have, exactly, to be adopted. Read from the revision itself, run
    on a scratch in-memory database, so there is no second copy of it to drift."""
    scratch = sa.create_engine("sqlite://")
    try:
        with scratch.begin() as conn, _ALEMBIC:
            command.upgrade(alembic_config(conn), BASELINE)
            return _columns(conn, exclude=("alembic_version",))
    finally:
        scratch.dispose()


def _columns(conn: Connection, *, exclude: Sequence[str] = ()) -> dict[str, frozenset[str]]:
    inspector = sa.inspect(conn)
    return {
        table: frozenset(column["name"] for column in inspector.get_columns(table))
        for table in inspector.get_table_names()
        if table not in exclude
    }


def read_status(conn: Connection, location: str = MIGRATIONS) -> SchemaStatus:
    """Where the database's schema stands; reads only."""
    target = head(location)
    revisions = MigrationContext.configure(conn).get_current_heads()
    if revisions:
        unknown = [r for r in revisions if r not in _known(location)]
        shown = ", ".join(unknown or revisions)
        if unknown:
            return SchemaStatus(SchemaState.AHEAD, shown, target)
        if revisions == (target,):
            return SchemaStatus(SchemaState.CURRENT, target, target)
        return SchemaStatus(SchemaState.BEHIND, shown, target)
    present = set(sa.inspect(conn).get_table_names())
    if present & set(baseline_columns()):
        return SchemaStatus(SchemaState.LEGACY, None, target)
    return SchemaStatus(SchemaState.EMPTY, None, target)


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        # Held until this transaction ends: a second replica waits here, then finds the
        # schema the first one made.
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(LOCK_KEY)))


def legacy_differences(conn: Connection) -> list[str]:
    """How a database made before migrations differs from the baseline (empty: none)."""
    found = _columns(conn)
    problems = []
    for table, expected in sorted(baseline_columns().items()):
        if table not in found:
            problems.append(f"table {table} is missing")
            continue
        problems += [f"column {table}.{c} is missing" for c in sorted(expected - found[table])]
        problems += [f"column {table}.{c} is unexpected" for c in sorted(found[table] - expected)]
    return problems


def upgrade(
    conn: Connection, *, fresh_only: bool = False, location: str = MIGRATIONS
) -> tuple[SchemaStatus, SchemaStatus]:
    """Bring the schema to the head, inside the caller's transaction; (before, after).

    ``fresh_only``: migrate an empty database, accept a current one, refuse anything else
    (how ``Store`` opens a database). Raises ``SchemaError`` when it will not upgrade.
    """
    _lock(conn)
    before = read_status(conn, location)
    state = before.state
    if state is SchemaState.CURRENT:
        return before, before
    if state is SchemaState.AHEAD or (fresh_only and state is not SchemaState.EMPTY):
        raise SchemaError(before.refusal())
    config = alembic_config(conn, location)
    if state is SchemaState.LEGACY:
        problems = legacy_differences(conn)
        if problems:
            raise SchemaError(
                "the database's tables were made before schema migrations, and differ from"
                f" what lrbot made then ({'; '.join(problems)}): not adopting them at"
                f" revision {BASELINE}"
            )
        with _ALEMBIC:
            command.stamp(config, BASELINE)
    with _ALEMBIC:
        command.upgrade(config, "head")
    after = read_status(conn, location)
    was = f"revision {before.revision}" if before.revision else f"{before.state}, no revision"
    log.info(
        "%s: schema upgraded from %s to revision %s",
        conn.engine.url.render_as_string(hide_password=True),
        was,
        after.revision,
    )
    return before, after
