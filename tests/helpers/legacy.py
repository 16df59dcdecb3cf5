"""A database as lrbot made it before migrations: ``create_all`` of the tables it had then."""

from __future__ import annotations

import sqlalchemy as sa

from bot.store import metadata

# Tables added by later revisions, which a database from before migrations never had.
LATER = frozenset({"leases", "api_calls"})


def create_legacy_tables(engine: sa.Engine) -> None:
    metadata.create_all(engine, tables=[t for t in metadata.sorted_tables if t.name not in LATER])
