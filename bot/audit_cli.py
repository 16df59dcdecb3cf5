"""``lrbot audit export`` and ``lrbot audit verify``: the audit trail from the command line.

They read the database alone, so an auditor can run them with ``LRBOT_DATABASE_URL`` and
no Slack or Defender settings.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TextIO

import sqlalchemy as sa

from bot.audit import Verification, export_rows, verify
from bot.db_cli import database_url
from bot.schema import SchemaError
from bot.store import Store
from commands.errors import ConfigurationError

__all__ = ["BadDate", "add_audit_parser", "parse_when", "verify_store"]


def _store() -> Store:
    url = database_url()
    _require_trail(url)
    try:
        return Store(url)
    except SchemaError as exc:  # the trail is there, in tables this lrbot does not read
        raise ConfigurationError(f"LRBOT_DATABASE_URL: {exc}") from None


def _require_trail(url: str) -> None:
    """A mistyped URL must not read as an empty, intact trail (opening the store would
    create one), so the database and its ``audit_log`` must already exist."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigurationError(f"LRBOT_DATABASE_URL: {url!r} is not a database URL") from None
    shown = parsed.render_as_string(hide_password=True)
    database = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and (
        database in ("", ":memory:") or not Path(database).is_file()
    ):
        raise ConfigurationError(f"LRBOT_DATABASE_URL: no database at {shown}")
    engine = sa.create_engine(parsed)
    try:
        with engine.connect() as conn:
            present = sa.inspect(conn).has_table("audit_log")
    except sa.exc.SQLAlchemyError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigurationError(f"LRBOT_DATABASE_URL: cannot open {shown}: {reason}") from None
    finally:
        engine.dispose()
    if not present:
        raise ConfigurationError(f"LRBOT_DATABASE_URL: {shown} has no audit trail")


class BadDate(ValueError):
    """A ``--since`` or ``--until`` that is not an ISO date or date-time."""


def parse_when(text: str) -> datetime:
    """An ISO date (midnight UTC) or date and time (UTC unless it names its offset)."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadDate(
            f"{text!r} is not an ISO date or date-time (2026-11-28 or 2026-11-28T10:00:00Z)"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def verify_store(store: Store) -> Verification:
    """The chain up to the head as it was when the check began, then whether any entry
    lies past the head: the bot may append meanwhile, and that is no break."""
    head = store.audit_head()
    result = verify(store.audit_entries(through=None if head is None else head.seq), head)
    if not result.ok:
        return result
    # The highest seq first, the head after: an append commits its entry and the head
    # together, so an entry the app wrote is never past a head read later.
    last = store.audit_last_seq()
    later = store.audit_head()
    if later is not None and last > later.seq:
        return Verification(
            ok=False,
            entries=result.entries,
            head_hash=result.head_hash,
            problem=f"the entry lies past the head (seq {later.seq}): added behind the app's"
            " back, or the head was set back",
            bad_seq=later.seq + 1,
        )
    return result


@contextmanager
def _output(path: str | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    with Path(path).open("w", encoding="utf-8", newline="") as out:
        yield out


def _export(args: argparse.Namespace) -> int:
    try:
        since = None if args.since is None else parse_when(args.since)
        until = None if args.until is None else parse_when(args.until)
    except BadDate as exc:
        print(f"lrbot: {exc}", file=sys.stderr)
        return 2
    store = _store()
    try:
        with _output(args.output) as out:
            export_rows(store.audit_entries(since, until), args.format, out)
    finally:
        store.close()
    return 0


def _verify(args: argparse.Namespace) -> int:
    store = _store()
    try:
        result = verify_store(store)
    finally:
        store.close()
    if result.ok:
        print(f"audit trail intact: {result.entries} entries, head {result.head_hash}")
        return 0
    print(f"audit trail BROKEN at entry seq {result.bad_seq}: {result.problem}")
    return 1


def add_audit_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``lrbot audit {export,verify}``."""
    audit = sub.add_parser("audit", help="export or verify the tamper-evident audit trail")
    verbs = audit.add_subparsers(dest="audit_command", required=True)
    export = verbs.add_parser("export", help="write the audit trail as JSON lines or CSV")
    export.add_argument("--since", help="from this ISO date or date-time (UTC unless given)")
    export.add_argument("--until", help="before this ISO date or date-time")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument("--output", help="a file to write (standard output otherwise)")
    export.set_defaults(handler=_export)
    check = verbs.add_parser("verify", help="check the hash chain; exit 1 if it is broken")
    check.set_defaults(handler=_verify)
