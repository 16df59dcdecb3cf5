"""Decoding live response results: bounded gunzip, RunScript JSON, NUL padding.

Pure functions over byte chunks and file objects, so they can be fuzzed: whatever the
input, they return a correct result or raise ``ResultError`` / ``ResultTooLarge``.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from commands.errors import ResultError, ResultTooLarge
from commands.wire import RunScriptOutput

__all__ = [
    "GZIP_MAGIC",
    "HASH_CAP_BYTES",
    "Decoded",
    "DownloadedResult",
    "decode_stream",
    "parse_runscript_output",
    "read_runscript_output",
]

GZIP_MAGIC = b"\x1f\x8b"
_PIECE = 64 * 1024  # most bytes one inflate step may produce: bounds memory, catches bombs early
# Defender's GetFile collects files of up to 3 GB: every real result is read whole, and a
# gzip bomb stops here (a few seconds of inflating and hashing) instead of running on.
HASH_CAP_BYTES = 4 * 1024**3


@dataclass(frozen=True)
class Decoded:
    """What ``decode_stream`` wrote: decoded size and SHA-256, and whether it was gzip."""

    size: int
    sha256: str
    compressed: bool
    raw_size: int


@dataclass(frozen=True)
class DownloadedResult:
    """A command's result on disk, decoded: the caller owns (and deletes) ``path``."""

    path: Path
    size: int
    sha256: str
    compressed: bool


class _Gunzip:
    """Streaming gunzip of one or more concatenated members, tolerating trailing NULs."""

    def __init__(self) -> None:
        self._inflater: Any = zlib.decompressobj(wbits=31)
        self._held = b""  # bytes between members, too few to tell what follows
        self._padding = False  # only NUL bytes may follow

    def feed(self, data: bytes) -> Generator[bytes, None, None]:
        data = self._held + data
        self._held = b""
        while data:
            if self._inflater is None and not self._next_member(data):
                return
            data = yield from self._inflate(data)

    def _next_member(self, data: bytes) -> bool:
        if self._padding or data.startswith(b"\x00"):
            if data.strip(b"\x00"):
                raise ResultError("the result has data after its gzip stream")
            self._padding = True
            return False
        if len(data) < len(GZIP_MAGIC):
            self._held = data
            return False
        if not data.startswith(GZIP_MAGIC):
            raise ResultError("the result has data after its gzip stream")
        self._inflater = zlib.decompressobj(wbits=31)
        return True

    def _inflate(self, data: bytes) -> Generator[bytes, None, bytes]:  # returns what is left
        while True:
            try:
                out = self._inflater.decompress(data, _PIECE)
            except zlib.error as exc:
                raise ResultError(f"the result is not valid gzip ({exc})") from None
            if out:
                yield out
            if self._inflater.eof:
                rest: bytes = self._inflater.unused_data
                self._inflater = None
                return rest
            data = self._inflater.unconsumed_tail
            if not data and len(out) < _PIECE:
                return b""

    def finish(self) -> None:
        if self._inflater is not None or self._held:
            raise ResultError("the result's gzip stream is truncated")


def _chunks_with_head(chunks: Iterable[bytes]) -> tuple[bytes, Iterator[bytes]]:
    """The first bytes (at least two, unless the stream is shorter) and the rest of the stream."""
    rest = iter(chunks)
    head = b""
    for chunk in rest:
        head += chunk
        if len(head) >= len(GZIP_MAGIC):
            break
    return head, rest


class Writable(Protocol):
    """Where decoded bytes go: a binary file or a ``BytesIO``."""

    def write(self, data: bytes, /) -> int: ...


def decode_stream(
    chunks: Iterable[bytes], out: Writable, *, max_bytes: int, cap_bytes: int = HASH_CAP_BYTES
) -> Decoded:
    """Write the decoded result to ``out``: gunzipped when it starts with the gzip magic.

    A result whose decoded size passes ``max_bytes`` is still read to its end through
    SHA-256, so the analyst can check a copy fetched elsewhere, but ``out`` gets no byte of
    it past the bound; then ``ResultTooLarge`` carries the decoded size and SHA-256.
    Reading stops, whatever the input, once ``cap_bytes`` (at least ``max_bytes``) raw or
    decoded bytes are passed: ``ResultTooLarge`` with ``size`` a lower bound and no SHA-256.
    Corrupt or truncated gzip raises ``ResultError``, over the bound or not: a SHA-256 of
    part of a file would mislead.
    """
    cap = max(cap_bytes, max_bytes)
    head, rest = _chunks_with_head(chunks)
    gunzip = _Gunzip() if head.startswith(GZIP_MAGIC) else None
    digest = hashlib.sha256()
    raw_size = size = 0
    for chunk in _prepend(head, rest):
        raw_size += len(chunk)
        if raw_size > cap:  # gzip only: plain bytes pass the decoded check first
            raise ResultTooLarge(max_bytes, size=size)
        pieces: Iterable[bytes] = gunzip.feed(chunk) if gunzip else (chunk,)
        for piece in pieces:
            size += len(piece)
            if size > cap:
                raise ResultTooLarge(max_bytes, size=cap)
            digest.update(piece)
            if size <= max_bytes:
                out.write(piece)
    if gunzip is not None:
        gunzip.finish()
    if size > max_bytes:
        raise ResultTooLarge(max_bytes, size=size, sha256=digest.hexdigest())
    return Decoded(size, digest.hexdigest(), gunzip is not None, raw_size)


def _prepend(head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if head:
        yield head
    for chunk in rest:
        if chunk:
            yield chunk


def _text(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # PowerShell's habit: UTF-16 with a BOM
        return data.decode("utf-16", errors="replace")
    return data.decode("utf-8-sig", errors="replace")


def parse_runscript_output(data: bytes) -> RunScriptOutput:
    """A RunScript result document, NUL padding removed from the document and its texts."""
    text = _text(data).strip(" \t\r\n\x00")
    try:
        document = json.loads(text, strict=False)  # strict=False: raw control characters in text
    except (ValueError, RecursionError):
        raise ResultError("the script result is not a JSON document") from None
    if not isinstance(document, dict):
        raise ResultError("the script result is not a JSON object")
    for key in ("script_output", "script_errors"):
        value = document.get(key)
        if value is None:
            document[key] = ""
        elif isinstance(value, str):
            document[key] = value.rstrip("\x00")
    try:
        return RunScriptOutput.model_validate(document)
    except ValidationError as exc:
        fields = ", ".join(str(e["loc"][0]) for e in exc.errors() if e.get("loc"))
        raise ResultError(f"the script result has unexpected values ({fields})") from None


def read_runscript_output(result: DownloadedResult) -> RunScriptOutput:
    """Parse a downloaded RunScript result (already decoded and size-bounded)."""
    try:
        data = result.path.read_bytes()
    except OSError as exc:
        raise ResultError(f"the downloaded result cannot be read: {exc.strerror}") from None
    return parse_runscript_output(data)
