"""Delivers what the bot owes Slack, in order, until Slack has it.

Items are written by state changes (see ``bot.store``); this worker posts the request
message, rewrites it, replies in its thread, direct-messages the requester (``notify``) and
fetches command results from Defender into the thread. A rate limit waits for
``Retry-After``, a Slack or network failure backs off and tries again, and nothing behind a
waiting item overtakes it, so a thread always reads in the order things happened.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path, PureWindowsPath
from typing import Any, Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import views
from bot.batch_delivery import BatchDelivery
from bot.links import WorkspaceLinks
from bot.logs import about
from bot.metrics import Metrics
from bot.notify import NOTIFY
from bot.records import OutboxItem, RequestRecord, RequestState
from bot.store import Store
from bot.views.thread import DEFAULT_LARGE_RESULT_NOTE
from commands.errors import DefenderError, NotFound, ResultError, ResultTooLarge
from commands.models import Command, GetFile, RunScript
from commands.results import DownloadedResult, read_runscript_output

__all__ = ["Deliverer", "ResultSource"]

log = logging.getLogger(__name__)

# Slack refused the blocks: the same facts as plain text are better than nothing.
_BLOCK_ERRORS = frozenset({"invalid_blocks", "invalid_blocks_format", "msg_blocks_too_long"})
_MAX_BACKOFF = 300.0


class ResultSource(Protocol):
    def download_result(
        self, action_id: str, index: int, *, max_bytes: int, directory: Path | None = None
    ) -> DownloadedResult: ...


class _Retry(Exception):
    def __init__(self, seconds: float, reason: str, *, whole_outbox: bool = True) -> None:
        super().__init__(reason)
        self.seconds = seconds
        # Slack's limits are the workspace's: every item waits. A wait on Defender (a
        # result) holds up only the thread it belongs to.
        self.whole_outbox = whole_outbox


class Deliverer:
    """The outbox worker."""

    def __init__(
        self,
        store: Store,
        slack: WebClient,
        results: ResultSource,
        *,
        clock: Callable[[], datetime],
        results_dir: Path,
        max_result_bytes: int,
        inline_output_chars: int,
        large_result_note: str = DEFAULT_LARGE_RESULT_NOTE,
        idle_seconds: float = 5.0,
        metrics: Metrics | None = None,
        notify_requester: bool = True,
    ) -> None:
        self.store = store
        self.notify_requester = notify_requester
        self.links = WorkspaceLinks(slack)
        self.metrics = metrics
        self.slack = slack
        self.results = results
        self.clock = clock
        self.results_dir = results_dir
        self.max_result_bytes = max_result_bytes
        self.inline_output_chars = inline_output_chars
        self.large_result_note = large_result_note
        self.idle_seconds = idle_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Result items whose output reply is in the thread while their file upload is not:
        # a retry of the item must not post that reply again.
        self._replied: set[int] = set()
        # Result items (and what came of them) already in the audit trail.
        self._audited: set[tuple[int, str]] = set()
        # Batch requests' message, thread and summary (bot/batch_delivery.py), when wired.
        self.batches: BatchDelivery | None = None

    def start(self) -> None:
        self.results_dir.mkdir(parents=True, exist_ok=True)
        if self._thread is not None:  # stopped a moment ago: let that pass end first
            self._thread.join()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="outbox", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if not self._thread.is_alive():  # a zero wait only asks it to stop
                self._thread = None

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.deliver_due()
                idle = self._idle()
            except Exception:
                log.exception("outbox pass failed; trying again shortly")
                idle = self.idle_seconds
            self._wake.wait(idle)
            self._wake.clear()

    def _idle(self) -> float:
        upcoming = self.store.next_outbox_time()
        if upcoming is None:
            return self.idle_seconds
        return min(self.idle_seconds, max(0.05, (upcoming - self.clock()).total_seconds()))

    def deliver_due(self) -> int:
        """Deliver every due item in order; returns how many were delivered."""
        delivered = 0
        while not self._stop.is_set():
            items = self.store.due_outbox(self.clock())
            if not items:
                return delivered
            waiting: set[str] = set()
            for position, item in enumerate(items):
                if self._stop.is_set():
                    return delivered  # stopping: the rest stays in the outbox for the next start
                if item.request_id in waiting:
                    continue
                if item.kind == "update_request" and _superseded(item, items[position + 1 :]):
                    self.store.outbox_done(item.id, self.clock())
                    continue
                try:
                    with about(request=item.request_id):
                        self._deliver(item)
                except _Retry as retry:
                    log.info(
                        "outbox item %d (%s of %s) waits %.1f s: %s",
                        item.id,
                        item.kind,
                        item.request_id,
                        retry.seconds,
                        retry,
                    )
                    self.store.outbox_retry(
                        item.id, self.clock() + timedelta(seconds=retry.seconds), str(retry)
                    )
                    if retry.whole_outbox:
                        return delivered
                    waiting.add(item.request_id)
                    continue
                delivered += 1
        return delivered

    # -- one item -----------------------------------------------------------------------

    def _deliver(self, item: OutboxItem) -> None:
        if self.batches is not None and self.batches.owns(item):
            self._deliver_batch(self.batches, item)
            return
        record = self.store.get(item.request_id)
        if record is None:
            self._give_up(item, "request not found")
            return
        if item.kind not in ("post_request", NOTIFY) and record.message_ts is None:
            self._give_up(item, "the request message was never posted")
            return
        with about(user=record.requester, device=record.machine_id, action=record.action_id):
            self._deliver_to(record, item)

    def _deliver_to(self, record: RequestRecord, item: OutboxItem) -> None:
        try:
            if item.kind == "post_request":
                self._post_request(record)
            elif item.kind == "update_request" and record.batch_id and self.batches:
                self.batches.update_for(record, self._updater())
            elif item.kind == "update_request":
                message = views.request_message(record, self.clock())
                self._call(
                    self.slack.chat_update,
                    channel=record.channel,
                    ts=record.message_ts,
                    text=message.text,
                    blocks=message.blocks,
                )
            elif item.kind == "reply":
                self._reply(record, item.payload["text"], item.payload.get("blocks"))
            elif item.kind == "result":
                self._result(record, item)
            elif item.kind == NOTIFY:
                self._notify(record, RequestState(item.payload["state"]))
            else:
                self._give_up(item, f"unknown outbox item kind {item.kind!r}")
                return
        except _Permanent as exc:
            self._give_up(item, str(exc))
            return
        self._replied.discard(item.id)
        self._audited -= {(item.id, "result"), (item.id, "result_error")}
        now = self.clock()
        self.store.outbox_done(item.id, now)
        if self.metrics is not None and item.kind == "reply" and item.created_at is not None:
            self.metrics.status_replied((now - item.created_at).total_seconds())
        if self.batches is not None:
            self.batches.after(record)

    def _updater(self) -> Callable[..., Any]:
        return partial(self._call, self.slack.chat_update)

    def _deliver_batch(self, batches: BatchDelivery, item: OutboxItem) -> None:
        try:
            problem = batches.deliver(
                item, partial(self._call, self.slack.chat_postMessage), self._updater()
            )
        except _Permanent as exc:
            problem = str(exc)
        if problem is not None:
            self._give_up(item, problem)
            return
        self.store.outbox_done(item.id, self.clock())
        if item.kind == "batch_summary" and self.notify_requester:
            # After the summary is marked posted: a retry of this DM must not post it again.
            # So the DM is tried once; the summary in the thread says the same.
            message = batches.summary_dm(item, self.links.workspace_url())
            batch = batches.batches.get(item.request_id)
            if message is not None and batch is not None:
                try:
                    self._dm(batch.requester, message)
                except (_Permanent, _Retry) as exc:
                    log.warning("batch %s: the requester's DM was not sent: %s", batch.id, exc)

    def _post_request(self, record: RequestRecord) -> None:
        if record.message_ts is not None:
            return  # posted before a crash: never post it twice
        message = views.request_message(record, self.clock())
        response = self._call(
            self.slack.chat_postMessage,
            channel=record.channel,
            text=message.text,
            blocks=message.blocks,
        )
        self.store.set_message_ts(record.id, str(response["ts"]))

    def _notify(self, record: RequestRecord, state: RequestState) -> None:
        """A direct message to the requester (unless ``LRBOT_NOTIFY_REQUESTER`` is off)."""
        if not self.notify_requester:
            return
        # A batch's requester hears of its decision once and of its end once, not per device.
        batched = record.batch_id is not None and self.batches is not None
        if batched and self.batches is not None and not self.batches.tells(record, state):
            return
        self._dm(record.requester, views.requester_dm(record, state, self.links.workspace_url()))

    def _dm(self, user: str, message: views.Message) -> None:
        opened = self._call(self.slack.conversations_open, users=user)
        self._call(
            self.slack.chat_postMessage,
            channel=str(opened["channel"]["id"]),
            text=message.text,
            blocks=message.blocks,
        )

    def _reply(self, record: RequestRecord, text: str, blocks: list[dict[str, Any]] | None) -> None:
        if record.batch_id is not None:
            text, blocks = BatchDelivery.reply_for(record, text, blocks)
        self._call(
            self.slack.chat_postMessage,
            channel=record.channel,
            thread_ts=record.message_ts,
            text=text,
            blocks=blocks,
        )

    def _result(self, record: RequestRecord, item: OutboxItem) -> None:
        assert record.action_id is not None
        position = int(item.payload["position"])
        command = record.commands.commands[position - 1]
        try:
            result = self.results.download_result(
                record.action_id,
                position - 1,
                max_bytes=self.max_result_bytes,
                directory=self.results_dir,
            )
        except ResultTooLarge as exc:
            # Nothing of it goes to Slack: its name, size and SHA-256, and where to get it.
            name = _result_name(record, command, position)
            log.info(
                "request %s: result %d not posted, over %d bytes: size=%s sha256=%s",
                record.id,
                position,
                exc.limit_bytes,
                exc.size,
                exc.sha256,
            )
            self._audit_result(
                record,
                item.id,
                position,
                "result_error",
                reason=f"over {exc.limit_bytes} bytes: not uploaded",
                file_name=name,
                size=exc.size,
                sha256=exc.sha256,
            )
            note = views.large_result_note(self.large_result_note, record, position, name)
            message = views.reply_result_too_large(
                record, position, name, exc.size, exc.sha256, exc.limit_bytes, note
            )
            self._reply(record, message.text, message.blocks)
            return
        except (ResultError, NotFound) as exc:
            log.warning("request %s: result %d unreadable: %s", record.id, position, exc)
            self._audit_result(record, item.id, position, "result_error", reason=str(exc))
            message = views.reply_result_error(record, position, str(exc))
            self._reply(record, message.text, message.blocks)
            return
        except DefenderError as exc:
            raise _Retry(
                _backoff(item.attempts), f"result download failed: {exc}", whole_outbox=False
            ) from None
        self._audit_result(
            record,
            item.id,
            position,
            "result",
            file_name=_result_name(record, command, position),
            sha256=result.sha256,
            size=result.size,
        )
        try:
            if isinstance(command, GetFile):
                self._upload(
                    record,
                    result.path,
                    _result_name(record, command, position),
                    views.result_file_comment(record, position, result.size, result.sha256),
                )
            else:
                self._runscript(record, item.id, position, result)
        finally:
            result.path.unlink(missing_ok=True)

    def _runscript(
        self, record: RequestRecord, item_id: int, position: int, result: DownloadedResult
    ) -> None:
        try:
            output = read_runscript_output(result)
        except ResultError as exc:
            self._audit_result(record, item_id, position, "result_error", reason=str(exc))
            message = views.reply_result_error(record, position, str(exc))
            self._reply(record, message.text, message.blocks)
            return
        message = views.reply_runscript_result(
            record, position, output, result.size, result.sha256, self.inline_output_chars
        )
        if item_id not in self._replied:
            self._reply(record, message.text, message.blocks)
            self._replied.add(item_id)
        if len(output.script_output) > self.inline_output_chars:
            path = result.path.with_suffix(".txt")
            path.write_text(output.script_output, encoding="utf-8")
            try:
                self._upload(
                    record,
                    path,
                    f"{record.id}-command-{position}-output.txt",
                    views.result_file_comment(record, position, result.size, result.sha256),
                )
            finally:
                path.unlink(missing_ok=True)

    def _audit_result(
        self, record: RequestRecord, item_id: int, position: int, kind: str, **detail: Any
    ) -> None:
        """A result in the audit trail, once per item: a retry downloads it again."""
        if (item_id, kind) in self._audited:
            return
        self.store.audit(
            record.id,
            kind,
            None,
            self.clock(),
            action_id=record.action_id,
            position=position,
            **detail,
        )
        self._audited.add((item_id, kind))

    def _upload(self, record: RequestRecord, path: Path, filename: str, comment: str) -> None:
        self._call(
            self.slack.files_upload_v2,
            channel=record.channel,
            thread_ts=record.message_ts,
            file=str(path),
            filename=filename,
            title=filename,
            initial_comment=comment,
        )

    def _call(self, method: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return method(**kwargs)
        except SlackApiError as exc:
            error = str(exc.response.get("error", ""))
            status = exc.response.status_code
            if status == 429 or error == "ratelimited":
                raise _Retry(_retry_after(exc.response.headers), "Slack rate limit") from None
            if status >= 500 or error in {
                "internal_error",
                "fatal_error",
                "service_unavailable",
                "request_timeout",
            }:
                raise _Retry(_backoff(1), f"Slack error {status} {error}") from None
            if error in _BLOCK_ERRORS and kwargs.get("blocks"):
                log.warning("Slack refused blocks (%s); sending the text alone", error)
                return self._call(method, **{k: v for k, v in kwargs.items() if k != "blocks"})
            raise _Permanent(f"Slack refused {method.__name__}: {error}") from None
        except OSError as exc:  # connection refused or reset, timeouts, DNS
            raise _Retry(_backoff(1), f"Slack unreachable: {exc}") from None

    def _give_up(self, item: OutboxItem, reason: str) -> None:
        log.error(
            "outbox item %d (%s of %s) dropped: %s", item.id, item.kind, item.request_id, reason
        )
        self._replied.discard(item.id)
        self._audited -= {(item.id, "result"), (item.id, "result_error")}
        self.store.outbox_done(item.id, self.clock(), error=reason)


class _Permanent(Exception):
    """Slack refused the call for a reason retrying will not change."""


def _result_name(record: RequestRecord, command: Command, position: int) -> str:
    """What a result is called: GetFile's file name, or RunScript's output."""
    if isinstance(command, GetFile):
        return PureWindowsPath(command.path).name or f"{record.id}-{position}"
    if isinstance(command, RunScript):
        return f"output of {command.script_name}"
    return f"{record.id}-command-{position}"


def _superseded(item: OutboxItem, later: list[OutboxItem]) -> bool:
    # Updates render the current state: a later update of the same message makes this one moot.
    return any(o.kind == "update_request" and o.request_id == item.request_id for o in later)


def _retry_after(headers: Any) -> float:
    try:
        value = headers.get("Retry-After") or headers.get("retry-after")
        return max(0.5, float(value))
    except (TypeError, ValueError, AttributeError):
        return 5.0


def _backoff(attempts: int) -> float:
    return random.uniform(0.5, min(_MAX_BACKOFF, 2.0 ** min(attempts + 1, 9)))  # noqa: S311
