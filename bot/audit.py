"""The audit trail's hash chain: hashing an entry, checking the chain, exporting it.

Each entry's hash covers its own fields and the previous entry's hash, and the store keeps
the newest hash (the head) apart from the entries: changing an entry breaks its hash,
deleting or inserting one breaks the links, and cutting off the newest ones no longer
reaches the head. Pure functions over rows; ``bot.store`` writes and reads them.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

__all__ = [
    "COLUMNS",
    "GENESIS",
    "AuditEntry",
    "AuditHead",
    "Verification",
    "canonical",
    "entry_hash",
    "export_rows",
    "scrub",
    "verify",
]

GENESIS = "0" * 64
COLUMNS = ("seq", "at", "request_id", "actor", "kind", "action_id", "detail", "prev_hash", "hash")

# A link carries its credential in the query (a SAS ``sig=``); an error text may quote one.
_URL = re.compile(r"\b(https?://[^\s?#\"'<>]*)[?#][^\s\"'<>]*", re.IGNORECASE)
_BEARER = re.compile(r"\b(bearer)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_SLACK_TOKEN = re.compile(r"\bxox[a-z]-[A-Za-z0-9-]+")


@dataclass(frozen=True)
class AuditEntry:
    """One row of ``audit_log`` as it was hashed (``at`` in UTC, ``detail`` canonical JSON)."""

    seq: int
    at: datetime
    request_id: str | None
    actor: str | None
    kind: str
    action_id: str | None
    detail: str
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class AuditHead:
    """The chain's tip as the store keeps it: seq 0 and ``GENESIS`` before the first entry."""

    seq: int
    hash: str


@dataclass(frozen=True)
class Verification:
    """What ``verify`` found; ``problem`` names the first bad entry and what is wrong."""

    ok: bool
    entries: int
    head_hash: str
    problem: str | None = None
    bad_seq: int | None = None


def canonical(value: Any) -> str:
    """The one JSON text of a value: sorted keys, no spaces, UTF-8 as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def iso_utc(at: datetime) -> str:
    """``at`` as hashed: UTC with microseconds, so a stored and a reread time agree."""
    if at.tzinfo is None:  # SQLite returns naive datetimes; every stored time is UTC
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def entry_hash(
    seq: int,
    at: datetime,
    request_id: str | None,
    actor: str | None,
    kind: str,
    action_id: str | None,
    detail: str,
    prev_hash: str,
) -> str:
    """sha256 (hex) of the canonical JSON list of an entry's fields and its predecessor's hash."""
    fields = [seq, iso_utc(at), request_id, actor, kind, action_id, detail, prev_hash]
    return hashlib.sha256(canonical(fields).encode("utf-8")).hexdigest()


def scrub(value: Any) -> Any:
    """``value`` without what must never be kept: a link's query (its signature), a bearer
    or Slack token. Errors quoted in an event may carry them."""
    if isinstance(value, str):
        value = _URL.sub(r"\1?<redacted>", value)
        value = _BEARER.sub(r"\1 <redacted>", value)
        return _SLACK_TOKEN.sub("<redacted>", value)
    if isinstance(value, Mapping):
        return {str(k): scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def verify(rows: Iterable[AuditEntry], head: AuditHead | None) -> Verification:
    """Walk the chain in seq order (streaming) and stop at the first entry that is wrong."""
    prev = GENESIS
    count = 0
    for row in rows:
        expected = count + 1
        if row.seq > expected:
            return _broken(
                count,
                prev,
                expected,
                f"the entry is missing (the next is seq {row.seq}): entries were deleted",
            )
        if row.seq < expected:
            return _broken(count, prev, row.seq, "seq appears twice: an entry was inserted")
        if row.prev_hash != prev:
            return _broken(
                count,
                prev,
                row.seq,
                "prev_hash does not match the entry before it: an entry was deleted or inserted",
            )
        computed = entry_hash(
            row.seq,
            row.at,
            row.request_id,
            row.actor,
            row.kind,
            row.action_id,
            row.detail,
            row.prev_hash,
        )
        if computed != row.hash:
            return _broken(count, prev, row.seq, "hash mismatch: the entry was changed")
        prev, count = row.hash, count + 1
    if head is None:
        return _broken(count, prev, count + 1, "the chain's head record is missing")
    if head.seq > count:
        return _broken(
            count,
            prev,
            count + 1,
            f"the entry is missing (the head is at seq {head.seq}): the newest were deleted",
        )
    if head.seq < count:
        return _broken(
            count,
            prev,
            head.seq + 1,
            f"the entry lies past the head (seq {head.seq}): added behind the app's back,"
            " or the head was set back",
        )
    if head.hash != prev:
        return _broken(
            count, prev, count, "the head's hash differs from the entry's: one of them was changed"
        )
    return Verification(ok=True, entries=count, head_hash=prev)


def _broken(entries: int, head_hash: str, seq: int, problem: str) -> Verification:
    return Verification(
        ok=False, entries=entries, head_hash=head_hash, problem=problem, bad_seq=seq
    )


def as_record(entry: AuditEntry) -> dict[str, Any]:
    """An entry for export: ``at`` in ISO 8601 UTC, ``detail`` as the exact hashed text."""
    return {
        "seq": entry.seq,
        "at": iso_utc(entry.at),
        "request_id": entry.request_id,
        "actor": entry.actor,
        "kind": entry.kind,
        "action_id": entry.action_id,
        "detail": entry.detail,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


def export_rows(rows: Iterable[AuditEntry], fmt: Literal["jsonl", "csv"], out: TextIO) -> int:
    """Write entries one by one as JSON lines or CSV (with a header); returns how many.

    ``detail`` stays the hashed text, so an export can be checked against its hashes.
    """
    count = 0
    if fmt == "jsonl":
        for entry in rows:
            out.write(canonical(as_record(entry)) + "\n")
            count += 1
        return count
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for entry in rows:
            writer.writerow(as_record(entry))
            count += 1
        return count
    raise ValueError(f"unknown export format {fmt!r}")
