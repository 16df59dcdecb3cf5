"""A batch request's life before Defender: created, approved, rejected or withdrawn as one.

Each member is an ordinary request (``Lifecycle`` expires and cancels it, the tracker runs
it); what is the batch's own is here: one message, one decision for every member in one
transaction, the same policy as for a single request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from bot import views
from bot.batch_store import BatchRecord, BatchStore, batch_digest
from bot.ids import DIGEST_IN_BUTTON
from bot.intake import Accepted
from bot.lifecycle import (
    Lifecycle,
    Outcome,
    approval_step,
    change_transition,
    creation,
    new_request_id,
)
from bot.records import CANCELLABLE, RequestRecord, RequestState
from bot.store import Transition

__all__ = ["BatchLifecycle", "new_batch_id"]

log = logging.getLogger(__name__)


def new_batch_id() -> str:
    """``lb-`` and 8 base32 characters: told apart from a request's ``lr-`` at a glance."""
    return "lb-" + new_request_id()[3:]


class BatchLifecycle:
    """Batches, on top of the single-request lifecycle's policy, directory and clock."""

    def __init__(self, lifecycle: Lifecycle, batches: BatchStore) -> None:
        self.lifecycle = lifecycle
        self.batches = batches

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.lifecycle.clock

    def create(self, user: str, channel: str, accepted: list[Accepted]) -> BatchRecord:
        """Store the batch and one request per device; the outbox posts the one message."""
        now = self.clock()
        batch_id = new_batch_id()
        members: list[tuple[RequestRecord, Transition]] = []
        for position, item in enumerate(accepted):
            # A microsecond apart: the members keep the order the analyst named them in.
            at = now + timedelta(microseconds=position)
            record = self.lifecycle.new_record(user, channel, item, at, batch_id=batch_id)
            # One approval window for the whole batch.
            record = record.with_changes(
                expires_at=members[0][0].expires_at if members else record.expires_at
            )
            members.append((record, creation(record)))
        batch = BatchRecord(
            id=batch_id,
            created_at=now,
            requester=user,
            channel=channel,
            digest=batch_digest(r.digest or "" for r, _ in members),
        )
        self.batches.create(batch, members, Transition().send("post_batch"), now)
        log.info(
            "batch %s by %s for %d machines (%d commands)",
            batch_id,
            user,
            len(members),
            len(accepted[0].commands),
            extra={"request_id": batch_id},
        )
        return batch

    def decide(self, batch_id: str, user: str, approve: bool, digest: str | None = None) -> Outcome:
        """Approve or reject every member at once; ``digest`` is the clicked button's."""
        batch = self.batches.get(batch_id)
        members = self.batches.members(batch_id) if batch else []
        if batch is None or not members:
            return Outcome(False, "That batch is not known to this bot; nothing was changed.")
        first = members[0]
        if not approve and user == first.requester:
            return Outcome(False, "To take back your own batch, use Withdraw.")
        decision = self.lifecycle.policy.may_approve(
            user,
            first.requester,
            first.commands,
            self.lifecycle.directory.members,
            already=first.approvals if approve else (),
        )
        if not decision:
            log.info("refused decision on batch %s by %s: %s", batch_id, user, decision.reason)
            return Outcome(False, views.sentence(decision.reason))
        if approve and (
            not digest or len(digest) < DIGEST_IN_BUTTON or not batch.digest.startswith(digest)
        ):
            log.warning("approval of batch %s by %s was for another payload", batch_id, user)
            return Outcome(
                False,
                f"Batch {batch_id} changed after this message was shown to you; nothing was"
                " approved. Look at the request again.",
            )
        if approve:
            return self._approve(batch_id, user)
        return self._close(batch_id, user, RequestState.REJECTED, "rejected")

    def withdraw(self, batch_id: str, user: str) -> Outcome:
        members = self.batches.members(batch_id)
        if not members:
            return Outcome(False, "That batch is not known to this bot; nothing was changed.")
        decision = self.lifecycle.policy.may_withdraw(user, members[0].requester)
        if not decision:
            return Outcome(False, views.sentence(decision.reason))
        return self._close(batch_id, user, RequestState.WITHDRAWN, "withdrawn")

    def cancel(self, batch_id: str, user: str) -> Outcome:
        """Cancel every member still queued or running, each as a single run is cancelled."""
        members = self.batches.members(batch_id)
        outcomes = [self.lifecycle.cancel(m.id, user) for m in members if m.state in CANCELLABLE]
        if not outcomes:
            return Outcome(False, f"Batch {batch_id} has no run left to cancel.")
        if any(o.ok for o in outcomes):
            return Outcome(True)
        return outcomes[0]

    def _close(self, batch_id: str, user: str, state: RequestState, kind: str) -> Outcome:
        now = self.clock()
        changes: dict[str, Any] = {"state": state, "decided_by": user, "decided_at": now}

        def build(record: RequestRecord) -> Transition:
            return change_transition(
                record,
                changes,
                (kind, user, {"batch_id": batch_id}),
                None,
                now,
                update_message=False,
            )

        # One reply for the batch, as the first member will read once decided.
        sample = self.batches.members(batch_id)[0].with_changes(**changes)
        said = views.reply_decision(sample)
        items = Transition().send("batch_reply", text=said.text, blocks=said.blocks)
        items.send("update_batch")
        moved = self.batches.transition_all(
            batch_id, build, items, now, expect=RequestState.AWAITING_APPROVAL
        )
        if moved is None:
            return self._closed(batch_id)
        log.info("batch %s %s by %s", batch_id, kind, user)
        return Outcome(True)

    def _approve(self, batch_id: str, user: str) -> Outcome:
        now = self.clock()
        shown: list[RequestRecord] = []

        def build(record: RequestRecord, complete: bool) -> Transition:
            changes, event = approval_step(record, user, complete, now, batch_id=batch_id)
            shown.append(record.with_changes(**changes))
            return change_transition(record, changes, event, None, now, update_message=False)

        def items(complete: bool) -> Transition:
            said = views.reply_approval(shown[0], user)
            return (
                Transition()
                .send("batch_reply", text=said.text, blocks=said.blocks)
                .send("update_batch")
            )

        outcome, _ = self.batches.approve_all(batch_id, user, now, build, items)
        if outcome == "duplicate":
            return Outcome(
                False, "You have already approved this batch; another approver is needed."
            )
        if outcome == "closed":
            return self._closed(batch_id)
        log.info("batch %s: approval by %s (%s)", batch_id, user, outcome)
        if outcome == "approved":
            self.lifecycle.wake_tracker()
        return Outcome(True)

    def _closed(self, batch_id: str) -> Outcome:
        self.lifecycle.expire_due()
        members = self.batches.members(batch_id)
        if members and members[0].state is RequestState.EXPIRED:
            return Outcome(False, f"Batch {batch_id} has expired; ask for a new one.")
        return Outcome(False, f"Batch {batch_id} was already decided; nothing was changed.")
