"""What the outbox delivers for a batch: its one message, its own replies, its summary, and
its members' replies and message updates redirected to the batch's message and thread."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot.batch_store import BatchRecord, BatchStore
from bot.records import OutboxItem, RequestRecord, RequestState
from bot.views.batch import batch_message, batch_summary, member_reply
from bot.views.common import Message
from bot.views.notify import batch_dm

__all__ = ["BATCH_ITEMS", "BatchDelivery"]

log = logging.getLogger(__name__)

_DECISIONS = frozenset({RequestState.APPROVED, RequestState.REJECTED, RequestState.EXPIRED})
_UNDECIDED_ENDS = frozenset({RequestState.REJECTED, RequestState.WITHDRAWN, RequestState.EXPIRED})
BATCH_ITEMS = frozenset({"post_batch", "update_batch", "batch_reply", "batch_summary"})

Call = Callable[..., Any]


class BatchDelivery:
    """The batch half of ``outbox.Deliverer``; Slack calls go through the deliverer's
    ``call(method, **kwargs)``, which owns retries and rate limits."""

    def __init__(self, batches: BatchStore, clock: Callable[[], datetime]) -> None:
        self.batches = batches
        self.clock = clock
        # What each batch message last showed: most member changes (a command's progress)
        # do not change it, and 20 devices' rewrites would eat Slack's chat.update limit.
        self._shown: dict[str, str] = {}

    def owns(self, item: OutboxItem) -> bool:
        return item.kind in BATCH_ITEMS

    def deliver(self, item: OutboxItem, post: Call, update: Call) -> str | None:
        """Deliver a batch item; the reason it cannot ever be, or None when done."""
        batch = self.batches.get(item.request_id)
        members = self.batches.members(item.request_id) if batch else []
        if batch is None or not members:
            return "batch not found"
        if item.kind == "post_batch":
            if batch.message_ts is not None:
                return None  # posted before a crash: never post it twice
            message = batch_message(batch.id, batch.digest, members, self.clock())
            answer = post(channel=batch.channel, text=message.text, blocks=message.blocks)
            self.batches.set_message_ts(batch.id, str(answer["ts"]))
            return None
        if batch.message_ts is None:
            return "the batch message was never posted"
        if item.kind == "update_batch":
            self._rewrite(batch, members, update)
            # A decision that ends every member (a rejection) gives them no items of their own.
            self.after(members[0])
            return None
        if item.kind == "batch_summary":
            self._shown.pop(batch.id, None)  # the last word: keep nothing for it
            message = batch_summary(members, self.batches.results_posted(batch.id))
        else:
            message = Message(text=item.payload["text"], blocks=item.payload.get("blocks") or [])
        post(
            channel=batch.channel,
            thread_ts=batch.message_ts,
            text=message.text,
            blocks=message.blocks,
        )
        return None

    def tells(self, record: RequestRecord, state: RequestState) -> bool:
        """Whether a member's change is DMed to the requester: the batch's decision once
        (its first device's), and no device's end (the batch's end is, once, after its
        summary: ``summary_dm``)."""
        if state not in _DECISIONS or record.batch_id is None:
            return False
        members = self.batches.members(record.batch_id)
        return bool(members) and members[0].id == record.id

    def summary_dm(self, item: OutboxItem, workspace: str | None) -> Message | None:
        """The requester's DM once a batch's summary is posted, if anything ran."""
        batch = self.batches.get(item.request_id)
        if batch is None:
            return None
        members = self.batches.members(batch.id)
        if all(m.state in _UNDECIDED_ENDS for m in members):
            return None  # rejected, withdrawn or expired: the decision's DM said nothing ran
        return batch_dm(batch.id, members, batch.message_ts, workspace)

    def update_for(self, record: RequestRecord, update: Call) -> None:
        """A member's message rewrite is the batch message's."""
        assert record.batch_id is not None
        batch = self.batches.get(record.batch_id)
        if batch is None or batch.message_ts is None:
            return
        self._rewrite(batch, self.batches.members(batch.id), update)

    def _rewrite(self, batch: BatchRecord, members: list[RequestRecord], update: Call) -> None:
        message = batch_message(batch.id, batch.digest, members, self.clock())
        shown = json.dumps([message.text, message.blocks], sort_keys=True)
        if self._shown.get(batch.id) == shown:
            return
        update(channel=batch.channel, ts=batch.message_ts, text=message.text, blocks=message.blocks)
        self._shown[batch.id] = shown

    @staticmethod
    def reply_for(
        record: RequestRecord, text: str, blocks: list[dict[str, Any]] | None
    ) -> tuple[str, list[dict[str, Any]] | None]:
        said = member_reply(record, text, blocks)
        return said.text, said.blocks

    def after(self, record: RequestRecord) -> None:
        """Once a member has ended, the summary may be due (queued once, by one replica)."""
        if (
            record.batch_id is not None
            and record.state.is_closed
            and self.batches.claim_summary(record.batch_id, self.clock())
        ):
            log.info("batch %s: every device's run has ended; summary queued", record.batch_id)
