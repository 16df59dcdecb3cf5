"""The leak guard: no secret, token or result link in anything the bot writes down.

Every credential the tests hand out is recognisable by a marker (``MARKERS``): the Slack
tokens and signing secret here and in ``tests.helpers.bot``, the Defender client secret in
``tests.helpers.defender``, and what the simulator mints itself: access tokens start with
``TOKEN_MARKER``, a result link's signature with ``LINK_MARKER`` (``sig=LRBOTLINK…``).

While a guard is active (``guarding()``; autouse in ``tests/e2e`` and ``tests/crash``), a
handler on the root logger sees every record at DEBUG and above, and the harnesses register
what else they create (``watch_slack``, ``watch_database``, ``watch_directory``,
``watch_output``). ``check()`` then scans:

* each log record: the formatted message, exception and stack text;
* everything the fake Slack recorded: each call's parameters, raw body (uploaded file bytes
  included) and headers, except the bot token in ``Authorization``, where it belongs; Slack
  must also never see a result link (``/blob/``, ``sig=``) or Defender's address at all;
* every file under the registered directories (data dir, results, SQLite and its WAL,
  process logs);
* every value of every column of every table of the registered databases, by reflection,
  so a table added later (an audit log, say) is covered without a change here;
* the output of processes the tests started.

A finding names the secret and where it was, with a little context around it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from bot.logs import JsonFormatter
from bot.sandbox import FakeSlack
from commands.simulator import LINK_MARKER, TOKEN_MARKER

__all__ = [
    "MARKERS",
    "Finding",
    "LeakGuard",
    "current",
    "guarding",
    "watch_database",
    "watch_directory",
    "watch_output",
    "watch_slack",
]

# What each kind of secret carries, wherever the tests hand one out.
SLACK_BOT = "LRBOTSLACKBOT"
SLACK_APP = "LRBOTSLACKAPP"
SIGNING = "LRBOTSIGNING"
CLIENT_SECRET = "LRBOTCLIENTSECRET"
MARKERS: dict[str, str] = {
    SLACK_BOT: "the Slack bot token",
    SLACK_APP: "the Slack app token",
    SIGNING: "the Slack signing secret",
    CLIENT_SECRET: "the Defender client secret",
    TOKEN_MARKER: "a Defender access token (from the simulator)",
    LINK_MARKER: "a result download link's signature",
    "PRIVATE KEY-----": "a private key (PEM)",
}
# Slack sees none of these at all: a result link, even unsigned, or Defender's address.
_LINK_SHAPES = {"/blob/": "a result download link (/blob/)", "sig=": "a signed link (sig=)"}
_CONTEXT = 60
_MAX_FILE = 64 * 1024 * 1024


@dataclass(frozen=True)
class Finding:
    """One secret found somewhere it must not be."""

    secret: str
    where: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.secret} in {self.where}: …{self.excerpt}…"


def _excerpt(text: str, at: int, length: int) -> str:
    start, end = max(0, at - _CONTEXT), min(len(text), at + length + _CONTEXT)
    return text[start:end].replace("\n", "⏎")


class LeakGuard:
    """The secrets to look for, what to look in, and what was found (thread-safe)."""

    def __init__(self) -> None:
        self._needles: dict[str, str] = dict(MARKERS)
        self._lock = threading.Lock()
        self._log_findings: list[Finding] = []
        self._log_records = 0
        self._slack: list[tuple[FakeSlack, tuple[str, ...]]] = []
        self._databases: list[str] = []
        self._directories: list[Path] = []
        self._outputs: list[tuple[str, Callable[[], str], Path | None]] = []
        self.handler = _ScanningHandler(self)

    # -- what to look for and where -----------------------------------------------------

    def add_secret(self, name: str, value: str) -> None:
        """Look for ``value`` too (a secret without one of the markers, or a full value)."""
        if value:
            with self._lock:
                self._needles[value] = name

    def watch_slack(self, slack: FakeSlack, *, forbidden: tuple[str, ...] = ()) -> None:
        """Scan what ``slack`` recorded; ``forbidden``: more text Slack must never see (say,
        Defender's host and port)."""
        with self._lock:
            self._slack.append((slack, forbidden))

    def watch_database(self, url: str) -> None:
        with self._lock:
            if url not in self._databases:
                self._databases.append(url)

    def watch_directory(self, path: Path) -> None:
        with self._lock:
            if path not in self._directories:
                self._directories.append(path)

    def watch_output(self, name: str, read: Callable[[], str], path: Path | None = None) -> None:
        """A process's stdout/stderr, read when the guard checks; ``path``, the file it goes
        to, is then reported as this output rather than as a file."""
        with self._lock:
            self._outputs.append((name, read, path))

    # -- scanning -----------------------------------------------------------------------

    def scan_text(
        self, text: str, where: str, extra: dict[str, str] | None = None
    ) -> list[Finding]:
        """Every needle in ``text`` (the first place each occurs)."""
        with self._lock:
            needles = dict(self._needles)
        needles.update(extra or {})
        found = []
        for needle, name in needles.items():
            at = text.find(needle)
            if at >= 0:
                found.append(Finding(name, where, _excerpt(text, at, len(needle))))
        return found

    def _record(self, record: logging.LogRecord, text: str) -> None:
        where = f"log record {record.name} {record.levelname} ({record.pathname}:{record.lineno})"
        found = self.scan_text(text, where)
        with self._lock:
            self._log_records += 1
            self._log_findings.extend(found)

    @property
    def log_records(self) -> int:
        """How many log records the guard has seen (to show that it was listening)."""
        with self._lock:
            return self._log_records

    def scan_logs(self) -> list[Finding]:
        with self._lock:
            return list(self._log_findings)

    def scan_slack(self) -> list[Finding]:
        found: list[Finding] = []
        for slack, forbidden in list(self._slack):
            extra = dict(_LINK_SHAPES)
            extra.update({text: f"Defender's address ({text})" for text in forbidden})
            for number, call in enumerate(slack.calls()):
                where = f"Slack call {number} {call.method}"
                params = json.dumps(call.params, ensure_ascii=False)
                found += self.scan_text(params, f"{where} parameters", extra)
                body = call.body.decode("utf-8", "replace")
                found += self.scan_text(body, f"{where} body", extra)
                headers = {k: v for k, v in call.headers.items() if k.lower() != "authorization"}
                found += self.scan_text(json.dumps(headers), f"{where} headers", extra)
        return found

    def scan_files(self) -> list[Finding]:
        found: list[Finding] = []
        outputs = {path for _, _, path in self._outputs if path is not None}
        for directory in list(self._directories):
            if not directory.exists():
                continue
            for path in sorted(p for p in directory.rglob("*") if p.is_file()):
                if path in outputs:
                    continue
                with contextlib.suppress(OSError):
                    data = path.read_bytes()[:_MAX_FILE]
                    text = data.decode("utf-8", "replace")
                    found += self.scan_text(text, f"file {path}")
        return found

    def scan_databases(self) -> list[Finding]:
        found: list[Finding] = []
        for url in list(self._databases):
            engine = sa.create_engine(url)
            try:
                metadata = sa.MetaData()
                metadata.reflect(engine)
                with engine.connect() as connection:
                    for table in metadata.sorted_tables:
                        for number, row in enumerate(connection.execute(sa.select(table))):
                            for column, value in row._mapping.items():
                                if value is None:
                                    continue
                                text = (
                                    value.decode("utf-8", "replace")
                                    if isinstance(value, bytes)
                                    else str(value)
                                )
                                where = f"database table {table.name} row {number} column {column}"
                                found += self.scan_text(text, where)
            except sa.exc.OperationalError:
                continue  # never created: nothing to leak
            finally:
                engine.dispose()
        return found

    def scan_outputs(self) -> list[Finding]:
        found: list[Finding] = []
        for name, read, _ in list(self._outputs):
            found += self.scan_text(read(), f"output of {name}")
        return found

    def findings(self) -> list[Finding]:
        """Everything found so far, in every place."""
        return (
            self.scan_logs()
            + self.scan_slack()
            + self.scan_files()
            + self.scan_databases()
            + self.scan_outputs()
        )

    def forget_logs(self) -> None:
        """Drop what the log scan found (for the guard's own tests, which plant leaks)."""
        with self._lock:
            self._log_findings.clear()

    def forget_all(self) -> None:
        """Stop watching everything registered so far, and drop log findings."""
        with self._lock:
            self._log_findings.clear()
            self._slack.clear()
            self._databases.clear()
            self._directories.clear()
            self._outputs.clear()

    def check(self) -> None:
        """Fail with every finding, one per line."""
        found = self.findings()
        if found:
            lines = "\n".join(f"  {f}" for f in found[:50])
            more = f"\n  … and {len(found) - 50} more" if len(found) > 50 else ""
            raise AssertionError(f"{len(found)} secret(s) leaked:\n{lines}{more}")


class _ScanningHandler(logging.Handler):
    """Scans each record as it is emitted (nothing is kept but what was found)."""

    def __init__(self, guard: LeakGuard) -> None:
        super().__init__(logging.DEBUG)
        self.guard = guard
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            # And the line ``lrbot serve`` writes by default: the context's ids included.
            text += "\n" + _JSON.format(record)
        except Exception as exc:  # noqa: BLE001 - a broken record must not hide the rest
            text = f"{record.msg!r} {record.args!r} ({exc!r})"
        self.guard._record(record, text)


_JSON = JsonFormatter()


_active: LeakGuard | None = None


def current() -> LeakGuard | None:
    """The active guard, if a test runs under one."""
    return _active


@contextlib.contextmanager
def guarding() -> Iterator[LeakGuard]:
    """A guard listening to every logger at DEBUG for the duration; levels restored after.

    Loggers set to a higher level are lowered too: what a deployment might log at DEBUG
    must not leak either. Loggers that do not propagate get the handler themselves.
    """
    global _active
    guard = LeakGuard()
    manager = logging.root.manager
    loggers = [logging.root] + [
        logger for logger in manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    levels = {logger: logger.level for logger in loggers}
    extra_handlers: list[logging.Logger] = []
    for logger in loggers:
        if logger.level > logging.DEBUG:
            logger.setLevel(logging.DEBUG)
        if logger is not logging.root and not logger.propagate:
            logger.addHandler(guard.handler)
            extra_handlers.append(logger)
    logging.root.setLevel(logging.DEBUG)
    logging.root.addHandler(guard.handler)
    previous, _active = _active, guard
    try:
        yield guard
    finally:
        _active = previous
        logging.root.removeHandler(guard.handler)
        for logger in extra_handlers:
            logger.removeHandler(guard.handler)
        for logger, level in levels.items():
            logger.setLevel(level)


def watch_slack(slack: FakeSlack, *, forbidden: tuple[str, ...] = ()) -> None:
    """Register with the active guard, if any (no guard: nothing to do)."""
    if _active is not None:
        _active.watch_slack(slack, forbidden=forbidden)


def watch_database(url: str) -> None:
    if _active is not None:
        _active.watch_database(url)


def watch_directory(path: Path) -> None:
    if _active is not None:
        _active.watch_directory(path)


def watch_output(name: str, read: Callable[[], str], path: Path | None = None) -> None:
    if _active is not None:
        _active.watch_output(name, read, path)
