"""A database as lrbot made it before migrations: ``create_all`` of the tables it had then."""

from __future__ import annotations

import sqlalchemy as sa

from bot.store import metadata

# Tables added by later revisions, which a database from before migrations never had.
LATER = frozenset({"leases", "api_calls", "batches"})
# Columns (and their indexes) later revisions added to the baseline's tables.
LATER_COLUMNS = {("requests", "batch_id"): "ix_requests_batch_id"}


def create_legacy_tables(engine: sa.Engine) -> None:
    metadata.create_all(engine, tables=[t for t in metadata.sorted_tables if t.name not in LATER])
    with engine.begin() as conn:
        for (table, column), index in LATER_COLUMNS.items():
            conn.execute(sa.text(f"DROP INDEX {index}"))
            conn.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN {column}"))
