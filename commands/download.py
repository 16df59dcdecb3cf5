"""Fetching a result from its pre-signed link: plain GET, no credentials, bounded, decoded."""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx

from commands.errors import ResultError, ResultTooLarge
from commands.results import DownloadedResult, decode_stream
from commands.retry import is_retryable_status

__all__ = ["RetryableDownload", "download_client", "fetch_result"]


class RetryableDownload(Exception):
    """The storage answered with a status worth asking for a fresh link and trying again."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the result download answered {status}")
        self.status = status


def download_client(
    timeout: httpx.Timeout, user_agent: str, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """A client for result links: no auth, no redirects, and raw bytes (no transfer decoding)."""
    return httpx.Client(
        transport=transport,
        timeout=timeout,
        headers={"Accept-Encoding": "identity", "User-Agent": user_agent},
    )


def fetch_result(
    client: httpx.Client, link: str, *, max_bytes: int, directory: Path | None = None
) -> DownloadedResult:
    """Stream ``link`` into a temporary file in ``directory``, gunzipped when it is gzip.

    Raises ``RetryableDownload`` (5xx, 429, or 403 for an expired link), ``ResultTooLarge``,
    ``ResultError`` or an ``httpx.TransportError``; a partial file is removed.
    """
    with client.stream("GET", link) as response:
        status = response.status_code
        if status != 200:
            if is_retryable_status(status) or status == 403:
                raise RetryableDownload(status)
            raise ResultError(f"the result download answered {status}")
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > max_bytes:
            raise ResultTooLarge(max_bytes)
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
