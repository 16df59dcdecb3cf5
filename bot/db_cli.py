"""``lrbot db current`` and ``lrbot db upgrade``: the database's schema from the command line.

Like ``lrbot audit``, they need ``LRBOT_DATABASE_URL`` alone (no Slack or Defender settings).
URLs are shown with any password hidden.

``current`` exits 0 when the schema is the one this lrbot needs and 1 otherwise; ``upgrade``
exits 0 once the schema is current and 2 when it refuses (the schema is newer than this
lrbot, or the tables made before migrations differ from what lrbot made then), as do both
when the database cannot be opened.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import sqlalchemy as sa
from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.schema import SchemaError, SchemaState, SchemaStatus, head
from bot.settings import BotSettings
from bot.store import schema_status, shown_url, upgrade_schema
from commands.errors import ConfigurationError

__all__ = ["add_db_parser", "database_url", "missing_sqlite_file"]


class _DatabaseSettings(BaseSettings):
    """``LRBOT_DATABASE_URL`` alone, with the bot's default: nothing else is needed here."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = Field(
        BotSettings.model_fields["database_url"].default,
        validation_alias=AliasChoices("LRBOT_DATABASE_URL"),
    )


def database_url() -> str:
    """``LRBOT_DATABASE_URL`` (environment or ``.env``), checked to be a database URL."""
    try:
        url = _DatabaseSettings().database_url
    except ValidationError as exc:
        raise ConfigurationError(f"LRBOT_DATABASE_URL: {exc.errors()[0]['msg']}") from None
    try:
        sa.make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigurationError(f"LRBOT_DATABASE_URL: {url!r} is not a database URL") from None
    return url


def missing_sqlite_file(url: str) -> bool:
    """A SQLite URL naming a file that does not exist (reading must not create it)."""
    parsed = sa.make_url(url)
    database = parsed.database or ""
    return (
        parsed.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and not Path(database).is_file()
    )


def _failed(url: str, exc: sa.exc.SQLAlchemyError) -> int:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    print(f"lrbot: database error on {shown_url(url)}: {reason}", file=sys.stderr)
    return 2


def _current(_args: argparse.Namespace) -> int:
    url = database_url()
    try:
        if missing_sqlite_file(url):  # reading must not create the file
            status = SchemaStatus(SchemaState.EMPTY, None, head())
        else:
            status = schema_status(url)
    except sa.exc.SQLAlchemyError as exc:
        return _failed(url, exc)
    print(f"database: {shown_url(url)}")
    print(f"schema: {status.state}: {status.describe()}")
    return 0 if status.state is SchemaState.CURRENT else 1


def _upgrade(_args: argparse.Namespace) -> int:
    url = database_url()
    try:
        before, after = upgrade_schema(url)
    except SchemaError as exc:
        print(f"lrbot: {exc}", file=sys.stderr)
        return 2
    except sa.exc.SQLAlchemyError as exc:
        return _failed(url, exc)
    print(f"database: {shown_url(url)}")
    match before.state:
        case SchemaState.CURRENT:
            print(f"schema: already at revision {after.revision}: nothing to do")
        case SchemaState.EMPTY:
            print(f"schema: created at revision {after.revision}")
        case SchemaState.LEGACY:
            print(
                "schema: the tables made before migrations were adopted and are now at"
                f" revision {after.revision}"
            )
        case _:
            print(f"schema: upgraded from revision {before.revision} to {after.revision}")
    return 0


def add_db_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``lrbot db {current,upgrade}``."""
    db = sub.add_parser("db", help="show where the database's schema stands, or upgrade it")
    verbs = db.add_subparsers(dest="db_command", required=True)
    current = verbs.add_parser(
        "current",
        aliases=["status"],
        help="where the schema stands; exit 0 when it is the one this lrbot needs, 1 otherwise",
    )
    current.set_defaults(handler=_current)
    upgrade = verbs.add_parser(
        "upgrade", help="apply this lrbot's migrations (back the database up first)"
    )
    upgrade.set_defaults(handler=_upgrade)
