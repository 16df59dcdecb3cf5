"""The live response library and the result blobs behind download links (no locking: the
engine holds its lock around every call)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from commands.simulator.clock import iso
from commands.simulator.render import library_json
from commands.simulator.scenario import SimLibraryFile

__all__ = ["LINK_MARKER", "Blob", "BlobStore", "Library"]

# Every link's signature starts with this (``sig=LRBOTLINK…``): tests look for it in
# everything the bot writes down, where a usable result link must never appear.
LINK_MARKER = "LRBOTLINK"


@dataclass
class _Entry:
    file: SimLibraryFile
    created: float
    updated: float


class Library:
    """Library files by name (names compare without regard to case)."""

    def __init__(self, files: list[SimLibraryFile], now: float) -> None:
        self._entries = {
            f.file_name.casefold(): _Entry(f, now - 30 * 86400, now - 86400) for f in files
        }

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.casefold() in self._entries

    def wire(self) -> list[dict[str, Any]]:
        return [library_json(e.file, e.created, e.updated) for e in self._entries.values()]

    def delete(self, name: str) -> bool:
        """As ``DELETE /api/libraryfiles/{name}``; False when there was no such file."""
        return self._entries.pop(name.casefold(), None) is not None

    def replace(self, name: str, content: bytes, description: str | None, now: float) -> None:
        """Upload as OverrideIfExists would: same name, new content (so a new sha256)."""
        entry = self._entries.get(name.casefold())
        if entry is None:
            file = SimLibraryFile(file_name=name, content=content, description=description or "")
            self._entries[name.casefold()] = _Entry(file, now, now)
            return
        changes: dict[str, Any] = {"content": content}
        if description is not None:
            changes["description"] = description
        entry.file = entry.file.model_copy(update=changes)
        entry.updated = now


@dataclass(frozen=True)
class Blob:
    """A result behind a download link."""

    content: bytes
    signature: str
    expires: float


class BlobStore:
    """Results published under random names with a signature and an expiry, like SAS links."""

    def __init__(self) -> None:
        self._blobs: dict[str, Blob] = {}

    def publish(self, content: bytes, base_url: str, now: float, lifetime: float) -> str:
        """Store ``content`` and return its link."""
        name, signature = secrets.token_hex(16), f"{LINK_MARKER}{secrets.token_urlsafe(24)}"
        expires = now + lifetime
        self._blobs[name] = Blob(content, signature, expires)
        se = iso(expires)[:19] + "Z"
        return f"{base_url}/blob/{name}?sv=2020-08-04&sr=b&sp=r&se={se}&sig={signature}"

    def get(self, name: str, signature: str | None) -> Blob | None:
        """The blob if it exists and ``signature`` matches; expiry is the caller's check."""
        blob = self._blobs.get(name)
        if blob is None or signature is None:
            return None
        return blob if secrets.compare_digest(blob.signature, signature) else None
