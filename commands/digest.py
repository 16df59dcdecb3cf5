"""The payload digest an approval is bound to.

An approver approves one exact run: this device, these commands in this order with these
arguments, and the library files they use with the content they had when the request was
made. The digest is a SHA-256 over a canonical JSON form of all of it, so changing any part
(an argument, the order, a library file replaced with ``OverrideIfExists``) changes it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from commands.models import CommandSequence

__all__ = ["LibraryChange", "library_changes", "payload_digest"]

# Bumped if the canonical form ever changes, so old and new digests never collide.
_VERSION = 1


def payload_digest(
    machine_id: str, commands: CommandSequence, library: Mapping[str, str | None]
) -> str:
    """Hex SHA-256 of the device id, the ordered commands and the library files' hashes."""
    document = {
        "v": _VERSION,
        "machine_id": machine_id.lower(),
        # The exact parameters Defender will receive, in order.
        "commands": [{"type": c.kind, "params": c.params()} for c in commands.commands],
        "library": {
            name: (sha or "").lower()
            for name, sha in sorted(library.items())
            if name in commands.library_files()
        },
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class LibraryChange:
    """A library file whose content is not what was approved (``now`` None: it is gone)."""

    name: str
    approved: str | None
    now: str | None

    def describe(self) -> str:
        if self.now is None:
            return f"{self.name} is no longer in the library (approved sha256 {self.approved})"
        return f"{self.name} changed: approved sha256 {self.approved}, now {self.now}"


def library_changes(
    approved: Mapping[str, str | None], current: Mapping[str, str | None]
) -> list[LibraryChange]:
    """The files whose hash now differs from the approved one, in name order."""
    changes = []
    for name in sorted(approved):
        was = (approved[name] or "").lower() or None
        if name not in current:
            changes.append(LibraryChange(name, was, None))
            continue
        now = (current[name] or "").lower() or None
        if now != was or now is None:
            changes.append(LibraryChange(name, was, now or "unknown"))
    return changes
