"""alembic's environment: migrations run on the connection ``bot.schema`` hands over.

``bot.schema`` opens the transaction (and on PostgreSQL takes the migration lock) before
alembic starts, so every revision of one upgrade commits together or not at all. There is
no ``alembic.ini``: ``bot.schema.alembic_config`` builds the configuration in code.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("lrbot's migrations run through `lrbot db upgrade` (bot.schema)")

# No target metadata: a revision states its own operations, and never changes afterwards.
context.configure(connection=connection)
with context.begin_transaction():
    context.run_migrations()
