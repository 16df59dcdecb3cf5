"""Fetching a result from its pre-signed link: plain GET, no credentials, bounded, decoded."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import httpx

from commands.errors import ResultError
from commands.results import DownloadedResult, decode_stream
from commands.retry import is_retryable_status

__all__ = ["RedactSignedUrls", "RetryableDownload", "download_client", "fetch_result"]


class RetryableDownload(Exception):
    """The storage answered with a status worth asking for a fresh link and trying again."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the result download answered {status}")
        self.status = status


class RedactSignedUrls(logging.Filter):
    """Hide the query of signed URLs in httpx's own request log (it logs every URL at INFO)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(_signed(a) for a in record.args):
            record.args = tuple(_redacted(a) if _signed(a) else a for a in record.args)
        return True


def _signed(value: object) -> bool:
    return isinstance(value, httpx.URL) and b"sig=" in value.query


def _redacted(value: object) -> str:
    assert isinstance(value, httpx.URL)
    return f"{value.copy_with(query=None)}?<signature redacted>"


def _guard_httpx_log() -> None:
    log = logging.getLogger("httpx")
    if not any(isinstance(f, RedactSignedUrls) for f in log.filters):
        log.addFilter(RedactSignedUrls())


def download_client(
    timeout: httpx.Timeout, user_agent: str, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """A client for result links: no auth, no redirects, and raw bytes (no transfer decoding).

    Also makes httpx's request log redact signed links (a logger filter, added once).
    """
    _guard_httpx_log()
    return httpx.Client(
        transport=transport,
        timeout=timeout,
        headers={"Accept-Encoding": "identity", "User-Agent": user_agent},
    )


def fetch_result(
    client: httpx.Client, link: str, *, max_bytes: int, directory: Path | None = None
) -> DownloadedResult:
    """Stream ``link`` into a temporary file in ``directory``, gunzipped when it is gzip.

    A result over ``max_bytes`` is read to its end all the same (never more than
    ``max_bytes`` of it on disk), for its size and SHA-256: see ``decode_stream``.
    Raises ``RetryableDownload`` (5xx, 429, or 403 for an expired link), ``ResultTooLarge``,
    ``ResultError`` or an ``httpx.TransportError``; a partial file is removed.
    """
    with client.stream("GET", link) as response:
        status = response.status_code
        if status != 200:
            if is_retryable_status(status) or status == 403:
                raise RetryableDownload(status)
            raise ResultError(f"the result download answered {status}")
        out = tempfile.NamedTemporaryFile(  # noqa: SIM115 - the caller owns the file
            dir=directory, prefix="lrbot-result-", delete=False
        )
        try:
            with out:
                decoded = decode_stream(response.iter_raw(), out, max_bytes=max_bytes)
        except BaseException:
            Path(out.name).unlink(missing_ok=True)
            raise
    return DownloadedResult(Path(out.name), decoded.size, decoded.sha256, decoded.compressed)
