"""The database's schema migrations (alembic), shipped inside the package; see ``bot.schema``."""
