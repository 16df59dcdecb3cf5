"""Schema migrations on SQLite and PostgreSQL: the migrated schema is the code's metadata,
each state a database can be in is told apart, ``lrbot db current``/``upgrade`` say and do
what an operator needs, and two processes starting at once migrate once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bot import schema
from bot.schema import SchemaError, SchemaState
from bot.store import Store, metadata, schema_status, upgrade_schema
from tests.helpers.legacy import LATER, LATER_COLUMNS, create_legacy_tables

T = TypeVar("T")

UPGRADE_HINT = "run `lrbot db upgrade`"
HEAD = schema.head()  # the revision this lrbot ships
NEWER = "9999"

# A newer lrbot's next revision: one more column, as issue 6's leases will add.
NEXT_REVISION = '''"""A newer lrbot's revision (tests only)."""

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("lease_owner", sa.String(64)))


def downgrade() -> None:
    op.drop_column("outbox", "lease_owner")
'''


@pytest.fixture(scope="module")
def newer(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The migrations a newer lrbot would ship: the packaged ones, then revision 9999."""
    root = tmp_path_factory.mktemp("newer") / "migrations"
    shutil.copytree(schema.MIGRATIONS, root, ignore=shutil.ignore_patterns("__pycache__"))
    text = NEXT_REVISION.format(revision=NEWER, down=HEAD)
    (root / "versions" / f"{NEWER}_lease_owner.py").write_text(text)
    return str(root)


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    """A plain engine on the test's database, for what the test itself sets up and reads."""
    made = sa.create_engine(database_url)
    yield made
    made.dispose()


def status_in(engine: sa.Engine, location: str = schema.MIGRATIONS) -> schema.SchemaStatus:
    with engine.connect() as conn:
        return schema.read_status(conn, location)


def make_legacy(engine: sa.Engine) -> None:
    """A database as lrbot made it before migrations: ``metadata.create_all``, and a row."""
    create_legacy_tables(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, 'genesis')"))


def columns(engine: sa.Engine, table: str) -> set[str]:
    with engine.connect() as conn:
        return {c["name"] for c in sa.inspect(conn).get_columns(table)}


def lrbot(cwd: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command line, with ``LRBOT_DATABASE_URL`` alone of our settings."""
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "LRBOT_", "DEFENDER_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env={**clean, "LRBOT_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
    )


# -- the migrations make the schema the code expects -------------------------------------


def test_the_migrated_schema_is_the_metadata_and_a_second_upgrade_changes_nothing(
    database_url: str, engine: sa.Engine
) -> None:
    before, after = upgrade_schema(database_url)
    assert (before.state, after.state, after.revision) == (
        SchemaState.EMPTY,
        SchemaState.CURRENT,
        schema.head(),
    )
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        tables = sorted(sa.inspect(conn).get_table_names())

    again = upgrade_schema(database_url)

    assert [s.state for s in again] == [SchemaState.CURRENT, SchemaState.CURRENT]
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        assert sorted(sa.inspect(conn).get_table_names()) == tables
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [
            (schema.head(),)
        ]


def test_the_baseline_is_what_create_all_made(database_url: str, engine: sa.Engine) -> None:
    """A database made before migrations is adopted as the baseline, so the baseline must be
    exactly what ``create_all`` made then (tables, columns, types, keys, indexes)."""
    make_legacy(engine)
    with engine.connect() as conn:
        assert schema.legacy_differences(conn) == []
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    # Only the tables later revisions add (and their index) are missing.
    assert differences
    later = {*LATER, *(column for _, column in LATER_COLUMNS)}
    assert all(any(name in repr(d) for name in later) for d in differences), differences


# -- the five states -----------------------------------------------------------------------


def test_an_empty_database_is_migrated_by_the_store_and_then_current(
    database_url: str, engine: sa.Engine
) -> None:
    assert status_in(engine) == schema.SchemaStatus(SchemaState.EMPTY, None, schema.head())

    Store(database_url).close()

    assert status_in(engine) == schema.SchemaStatus(
        SchemaState.CURRENT, schema.head(), schema.head()
    )
    assert status_in(engine).describe() == f"the database schema is at revision {HEAD}: up to date"


def test_behind_is_upgraded_to_the_newer_head(
    database_url: str, engine: sa.Engine, newer: str
) -> None:
    Store(database_url).close()  # at the revision this lrbot ships
    found = status_in(engine, newer)
    assert (found.state, found.revision, found.head) == (SchemaState.BEHIND, HEAD, NEWER)
    assert found.refusal() == (
        f"the database schema is at revision {HEAD} (this lrbot needs {NEWER}):"
        " run `lrbot db upgrade`"
    )
    with engine.begin() as conn, pytest.raises(SchemaError, match=f"needs {NEWER}"):
        schema.upgrade(conn, fresh_only=True, location=newer)  # how a Store opens it

    with engine.begin() as conn:
        before, after = schema.upgrade(conn, location=newer)

    assert (before.state, after.state, after.revision) == (
        SchemaState.BEHIND,
        SchemaState.CURRENT,
        NEWER,
    )
    assert "lease_owner" in columns(engine, "outbox")


def test_ahead_a_newer_lrbot_migrated_it_and_this_one_refuses_to_touch_it(
    database_url: str, engine: sa.Engine, newer: str, tmp_path: Path
) -> None:
    Store(database_url).close()
    with engine.begin() as conn:
        schema.upgrade(conn, location=newer)  # the newer lrbot's `lrbot db upgrade`

    found = status_in(engine)
    assert (found.state, found.revision) == (SchemaState.AHEAD, NEWER)
    with pytest.raises(SchemaError) as refused:
        Store(database_url)
    assert str(refused.value) == (
        f"the database schema is at revision {NEWER}, which this lrbot does not know (it needs"
        f" {HEAD}): a newer lrbot upgraded it; run that version, or restore the backup taken"
        " before the upgrade"
    )

    current = lrbot(tmp_path, database_url, "db", "current")
    upgraded = lrbot(tmp_path, database_url, "db", "upgrade")

    assert current.returncode == 1 and "schema: ahead: " in current.stdout
    assert upgraded.returncode == 2
    assert upgraded.stderr.strip().splitlines()[-1] == f"lrbot: {refused.value}"
    assert status_in(engine, newer).state is SchemaState.CURRENT  # untouched


def test_legacy_is_refused_by_the_store_and_adopted_by_db_upgrade_with_its_data(
    database_url: str, engine: sa.Engine, tmp_path: Path
) -> None:
    make_legacy(engine)
    assert status_in(engine) == schema.SchemaStatus(SchemaState.LEGACY, None, schema.head())
    with pytest.raises(SchemaError, match=r"made before schema migrations .* run `lrbot db"):
        Store(database_url)

    shown = lrbot(tmp_path, database_url, "db", "current")
    upgraded = lrbot(tmp_path, database_url, "db", "upgrade")

    assert shown.returncode == 1
    assert shown.stdout.splitlines()[1] == (
        "schema: legacy: the database's tables were made before schema migrations (no"
        f" revision recorded; this lrbot needs {HEAD}): {UPGRADE_HINT}"
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.splitlines()[1] == (
        f"schema: the tables made before migrations were adopted and are now at revision {HEAD}"
    )
    assert status_in(engine).state is SchemaState.CURRENT
    store = Store(database_url)
    head = store.audit_head()
    store.close()
    assert head is not None and head.hash == "genesis"  # the rows are the same rows


def test_legacy_tables_that_differ_from_the_baseline_are_not_adopted(
    database_url: str, engine: sa.Engine, tmp_path: Path
) -> None:
    make_legacy(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE approvals"))
        conn.execute(sa.text("ALTER TABLE outbox ADD COLUMN claimed_by VARCHAR(64)"))

    upgraded = lrbot(tmp_path, database_url, "db", "upgrade")

    assert upgraded.returncode == 2
    assert upgraded.stderr.strip().splitlines()[-1] == (
        "lrbot: the database's tables were made before schema migrations, and differ from what"
        " lrbot made then (table approvals is missing; column outbox.claimed_by is"
        f" unexpected): not adopting them at revision {schema.BASELINE}"
    )
    assert status_in(engine).state is SchemaState.LEGACY  # nothing stamped, nothing made
    with engine.connect() as conn:
        assert not sa.inspect(conn).has_table("approvals")


# -- the command line ----------------------------------------------------------------------


def test_db_current_and_upgrade_on_a_new_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "data" / "lrbot.sqlite3"
    url = f"sqlite:///{path}"

    before = lrbot(tmp_path, url, "db", "current")

    assert before.returncode == 1
    assert before.stdout.splitlines() == [
        f"database: {url}",
        "schema: empty: the database has no lrbot tables yet: `lrbot db upgrade` (or the first"
        f" `lrbot serve`) creates them at revision {HEAD}",
    ]
    assert not path.exists()  # looking created nothing

    first = lrbot(tmp_path, url, "db", "upgrade")
    second = lrbot(tmp_path, url, "db", "upgrade")
    after = lrbot(tmp_path, url, "db", "status")

    assert first.returncode == 0 and first.stdout.splitlines()[1] == (
        f"schema: created at revision {HEAD}"
    )
    assert second.returncode == 0 and second.stdout.splitlines()[1] == (
        f"schema: already at revision {HEAD}: nothing to do"
    )
    assert after.returncode == 0 and after.stdout.splitlines()[1] == (
        f"schema: current: the database schema is at revision {HEAD}: up to date"
    )


def test_db_commands_on_postgresql_never_show_the_password(
    postgres_url: str, tmp_path: Path
) -> None:
    # The test cluster trusts loopback, so any password is accepted, and must not be shown.
    url = postgres_url.replace("://lrbot@", "://lrbot:pg-s3cret-pw@")

    upgraded = lrbot(tmp_path, url, "db", "upgrade")
    current = lrbot(tmp_path, url, "db", "current")
    nowhere = "postgresql+psycopg://lrbot:pg-s3cret-pw@127.0.0.1:1/lrbot"  # nothing listens
    unreachable = lrbot(tmp_path, nowhere, "db", "current")

    assert upgraded.returncode == 0, upgraded.stderr
    assert current.returncode == 0
    assert current.stdout.splitlines()[0] == f"database: {url.replace('pg-s3cret-pw', '***')}"
    assert unreachable.returncode == 2
    assert unreachable.stderr.startswith("lrbot: database error on postgresql+psycopg://lrbot:***@")
    for done in (upgraded, current, unreachable):
        assert "pg-s3cret-pw" not in done.stdout + done.stderr


# -- two processes at once -----------------------------------------------------------------


def wait_for(predicate: Callable[[], T], what: str, timeout: float = 20.0) -> T:
    deadline = time.monotonic() + timeout
    while not (found := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)
    return found


def test_on_postgresql_an_upgrade_waits_for_the_migration_lock(postgres_url: str) -> None:
    """Two replicas starting at once: the second waits on the advisory lock, then finds the
    schema the first made, instead of creating the same tables again."""
    waiting = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    dsn = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with (
        psycopg.connect(dsn, autocommit=True) as holder,
        ThreadPoolExecutor(2) as pool,
    ):
        holder.execute("SELECT pg_advisory_lock(%s)", (schema.LOCK_KEY,))
        replicas = [pool.submit(upgrade_schema, postgres_url) for _ in range(2)]
        wait_for(lambda: holder.execute(waiting).fetchone() == (2,), "both replicas to wait")
        assert schema_status(postgres_url).state is SchemaState.EMPTY  # nobody went ahead
        holder.execute("SELECT pg_advisory_unlock(%s)", (schema.LOCK_KEY,))
        results = sorted(
            (before.state, after.state)
            for before, after in (replica.result(60) for replica in replicas)
        )

    assert results == [
        (SchemaState.CURRENT, SchemaState.CURRENT),
        (SchemaState.EMPTY, SchemaState.CURRENT),
    ]


def test_stores_opened_at_once_on_an_empty_database_all_open(database_url: str) -> None:
    barrier = threading.Barrier(3)

    def open_store() -> Store:
        barrier.wait(10)
        return Store(database_url)

    with ThreadPoolExecutor(3) as pool:
        opened = [future.result(90) for future in [pool.submit(open_store) for _ in range(3)]]
    for store in opened:
        store.close()

    assert schema_status(database_url).state is SchemaState.CURRENT
