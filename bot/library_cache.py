"""The live response library as the modal's file picker shows it: cached, and filtered.

Slack gives an ``external_select`` 3 seconds to get its options, and an analyst types a
letter at a time: the listing is fetched at most once a minute and filtered here. The
picker is a convenience only; a submission reads the library afresh (``bot.intake``), so a
file that vanished since it was picked is caught there.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from commands.wire import LibraryFile

__all__ = ["LibraryCache", "library_options", "option_text"]

log = logging.getLogger(__name__)

OPTION_TEXT_MAX = 75  # Slack's limit for an option's text
OPTION_VALUE_MAX = 150  # and for its value
MAX_OPTIONS = 100  # and for the number of options in one answer


class LibraryCache:
    """The library listing, re-read when older than ``ttl_seconds``."""

    def __init__(
        self,
        load: Callable[[], list[LibraryFile]],
        ttl_seconds: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._files: list[LibraryFile] | None = None
        self._at = 0.0
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="library")
        self._pending: Future[list[LibraryFile]] | None = None

    def within(self, seconds: float) -> list[LibraryFile]:
        """The listing, or after ``seconds`` what was read last (nothing, the first time):
        Slack drops an options answer after 3 s. A slow read goes on and refreshes the
        cache for the analyst's next keystroke."""
        with self._lock:
            if self._files is not None and self._monotonic() - self._at < self._ttl:
                return self._files
            stale = self._files or []
            if self._pending is None or self._pending.done():
                self._pending = self._reader.submit(self.files)
            pending = self._pending
        try:
            return pending.result(timeout=seconds)
        except FutureTimeout:
            log.warning(
                "the library listing took over %.1f s: the picker shows the last one", seconds
            )
            return stale

    def files(self) -> list[LibraryFile]:
        with self._lock:
            if self._files is not None and self._monotonic() - self._at < self._ttl:
                return self._files
        # Loaded outside the lock: two concurrent misses cost two calls, never a stall.
        files = sorted(self._load(), key=lambda f: f.file_name.casefold())
        with self._lock:
            self._files, self._at = files, self._monotonic()
        return files


def option_text(file: LibraryFile) -> str:
    """The file name, then its description and its parameters' description, within 75."""
    details = " · ".join(
        " ".join(part.split())
        for part in (file.description, file.parameters_description)
        if part and part.strip()
    )
    text = f"{file.file_name} — {details}" if details else file.file_name
    return text if len(text) <= OPTION_TEXT_MAX else text[: OPTION_TEXT_MAX - 1] + "…"


def library_options(files: Iterable[LibraryFile], typed: str) -> list[dict[str, Any]]:
    """The options whose name or description holds ``typed`` (any case), at most 100."""
    needle = typed.strip().casefold()
    options: list[dict[str, Any]] = []
    for file in files:
        if len(file.file_name) > OPTION_VALUE_MAX:
            continue  # no option value could carry it: type it in the value box instead
        haystack = " ".join(
            p for p in (file.file_name, file.description, file.parameters_description) if p
        ).casefold()
        if needle and needle not in haystack:
            continue
        options.append(
            {
                "text": {"type": "plain_text", "text": option_text(file)},
                "value": file.file_name,
            }
        )
        if len(options) == MAX_OPTIONS:
            break
    return options
