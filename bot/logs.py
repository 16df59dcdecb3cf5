"""Log lines: JSON (one object a line) or text, each naming what it is about.

The edges (a listener, a tracker step, an outbox delivery) say what they work on with
``about(request=…, user=…, device=…, action=…)``; every record logged inside carries those
fields, in both formats. Messages are written to say nothing secret (tokens, links, payloads);
the formatters add only these ids, the time, the level, the logger and the exception.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = [
    "FIELDS",
    "ContextThreadPool",
    "JsonFormatter",
    "TextFormatter",
    "about",
    "configure",
    "current",
]

# The ids a line may carry: the request, the Slack user, the device and Defender's action.
FIELDS = ("request_id", "user", "device_id", "action_id")
_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "lrbot_log_context", default=None
)


def current() -> dict[str, str]:
    """The ids the current thread (or task) works on."""
    return dict(_context.get() or {})


@contextlib.contextmanager
def about(
    *,
    request: str | None = None,
    user: str | None = None,
    device: str | None = None,
    action: str | None = None,
) -> Iterator[None]:
    """Within the block, log lines name these (added to any the caller already set)."""
    given = {"request_id": request, "user": user, "device_id": device, "action_id": action}
    merged = {**current(), **{k: str(v)[:100] for k, v in given.items() if v}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


class ContextThreadPool(ThreadPoolExecutor):
    """A pool whose tasks run with the submitter's context: Bolt runs listeners on a pool,
    and what the request's thread set with ``about`` holds in them too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._busy = 0
        self._idle = threading.Condition()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._idle:
            self._busy += 1
        try:
            future = super().submit(contextvars.copy_context().run, fn, *args, **kwargs)
        except BaseException:
            self._done()
            raise
        future.add_done_callback(lambda _: self._done())
        return future

    def _done(self) -> None:
        with self._idle:
            self._busy -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until no task is queued or running; True if none is."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, max(timeout, 0.0))


def _fields(record: logging.LogRecord) -> dict[str, str]:
    """The context's ids, overridden by any given with ``extra=`` on the call."""
    fields = current()
    for name in FIELDS:
        value = getattr(record, name, None)
        if value:
            fields[name] = str(value)[:100]
    return fields


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", request_id…, "exception"}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_fields(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The classic line, with the ids in brackets at its end."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        fields = _fields(record)
        if fields:
            text += " [" + " ".join(f"{k}={v}" for k, v in fields.items()) + "]"
        return text


def configure(level: str, form: str = "text", stream: TextIO | None = None) -> None:
    """Send every record at ``level`` and up to ``stream`` (stderr), as JSON or text.

    As ``logging.basicConfig``: a root logger that already has handlers (say, under a test
    runner) is left as it is."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(JsonFormatter() if form == "json" else TextFormatter())
        root.addHandler(handler)
        root.setLevel(level.upper())
    # httpx logs every request at INFO, URLs included; our client logs what matters itself.
    logging.getLogger("httpx").setLevel(logging.WARNING)
