"""The request's life before Defender: created, approved, rejected, withdrawn, expired, cancelled.

Each operation checks the policy, then makes one atomic transition in the store whose
outbox items tell Slack about it. A second click, or Slack's retry of the same click,
finds the request already moved on and changes nothing.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bot import views
from bot.directory import Directory
from bot.ids import DIGEST_IN_BUTTON, Block
from bot.intake import Accepted, machine_card
from bot.policy import Policy
from bot.records import CANCELLABLE, RequestRecord, RequestState
from bot.store import Store, Transition, requests
from commands.digest import payload_digest
from commands.errors import DefenderError
from commands.wire import MachineAction

__all__ = [
    "Lifecycle",
    "Outcome",
    "change_transition",
    "creation",
    "defender_comment",
    "new_request_id",
]

log = logging.getLogger(__name__)

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford's base32: no i, l, o, u
MAX_COMMENT = 1000


def new_request_id() -> str:
    """A short id people can read out: ``lr-`` and 8 base32 characters (40 random bits)."""
    return "lr-" + "".join(secrets.choice(_ALPHABET) for _ in range(8))


def defender_comment(record: RequestRecord, requester: str, approvers: str) -> str:
    """The action's Comment: Defender records the app as requestor, so name the people here."""
    ticket = f" | ticket {record.ticket}" if record.ticket else ""
    text = (
        f"lrbot {record.id} | requested by {requester} | approved by {approvers}{ticket}"
        f" | reason: {' '.join(record.justification.split())}"
    )
    return text if len(text) <= MAX_COMMENT else text[: MAX_COMMENT - 1] + "…"


def change_transition(
    record: RequestRecord,
    changes: dict[str, Any],
    event: tuple[str, str | None, dict[str, Any]],
    reply: Callable[[RequestRecord], views.Message] | None,
    now: datetime,
    *,
    update_message: bool = True,
) -> Transition:
    """What one change writes: its event, its thread reply (rendered from the request as it
    will be) and, if the message shows it, the rewrite of the request message."""
    transition = Transition(dict(changes))
    transition.events.append(event)
    if reply is not None:
        message = reply(record.with_changes(**changes, updated_at=now))
        transition.send("reply", text=message.text, blocks=message.blocks)
    if update_message or reply is not None:
        transition.send("update_request")
    return transition


def creation(record: RequestRecord) -> Transition:
    """A new request's events: what was asked, and what intake found (for the audit trail)."""
    batch = {"batch_id": record.batch_id} if record.batch_id else {}
    playbook = record.machine.get("playbook")  # {"name": …, "params": {…}}, if one was used
    from_playbook = {"playbook": playbook} if playbook else {}
    return (
        Transition()
        .event(
            "requested",
            record.requester,
            machine_id=record.machine_id,
            commands=record.commands.model_dump(mode="json"),
            library=record.library,
            justification=record.justification,
            ticket=record.ticket,
            digest=record.digest,
            approvals_needed=record.approvals_needed,
            **batch,
            **from_playbook,
        )
        # Intake checked the device and the library: what it found.
        .event("validated", None, machine_id=record.machine_id, library=record.library)
    )


def approval_step(
    record: RequestRecord, user: str, complete: bool, now: datetime, **detail: Any
) -> tuple[dict[str, Any], tuple[str, str, dict[str, Any]]]:
    """One approval's changes and event: the request approved once it has all it needs
    (``complete``), else one more approval recorded. ``detail`` joins the event."""
    event = (
        "approved" if complete else "approval",
        user,
        {
            "digest": record.digest,
            "approvals": len(record.approvals),
            "needed": record.approvals_needed,
            **detail,
        },
    )
    changes: dict[str, Any] = {}
    if complete:
        changes = {"state": RequestState.APPROVED, "decided_by": user, "decided_at": now}
    return changes, event


@dataclass(frozen=True)
class Outcome:
    """What to tell the person who clicked (ephemerally) when it did not go through."""

    ok: bool
    message: str = ""


class Canceller:
    """Defender's cancel, as the lifecycle needs it."""

    def cancel_action(self, action_id: str, comment: str) -> MachineAction:  # pragma: no cover
        raise NotImplementedError


class Lifecycle:
    """Requests from creation to submission-ready, and their cancellation."""

    def __init__(
        self,
        store: Store,
        policy: Policy,
        directory: Directory,
        defender: Canceller,
        *,
        clock: Callable[[], datetime],
        wake_tracker: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.directory = directory
        self.defender = defender
        self.clock = clock
        self.wake_tracker = wake_tracker
        # Requests whose cancel is being asked of Defender right now, in this process.
        self._cancelling: set[str] = set()
        self._cancelling_lock = threading.Lock()

    def may_request(self, user: str, channel: str | None = None) -> Outcome:
        """May this person open the request form (here)?"""
        if channel is not None:
            where = self.policy.may_use_channel(channel)
            if not where:
                return Outcome(False, views.sentence(where.reason))
        decision = self.policy.may_request(user, self.directory.members)
        return Outcome(decision.allowed, views.sentence(decision.reason))

    def refusals(self, user: str, channel: str, accepted: Accepted) -> dict[str, str]:
        """The policy's objections to a valid request, under the fields that caused them."""
        errors: dict[str, str] = {}
        where = self.policy.may_use_channel(channel)
        if not where:
            errors[str(Block.DEVICE)] = views.sentence(where.reason)
        refused = self.policy.command_refusals(user, accepted.commands, self.directory.members)
        for position, reason in refused.items():
            block = (
                accepted.sources[position - 1]
                if position <= len(accepted.sources)
                else str(Block.COMMANDS_TEXT)
            )
            message = views.sentence(f"Command {position}: {reason}")
            errors[block] = f"{errors[block]} {message}" if block in errors else message
        if errors:
            log.info("policy refused a request by %s: %s", user, errors)
        return errors

    def create(self, user: str, channel: str, accepted: Accepted) -> RequestRecord:
        """Store a valid request; the outbox posts it for approval."""
        now = self.clock()
        record = self.new_record(user, channel, accepted, now)
        transition = creation(record).send("post_request")
        self.store.create(record, transition, now)
        log.info(
            "request %s by %s for machine %s (%d commands)",
            record.id,
            user,
            record.machine_id,
            len(record.commands),
            extra={"request_id": record.id, "device_id": record.machine_id},
        )
        return record

    def new_record(
        self,
        user: str,
        channel: str,
        accepted: Accepted,
        now: datetime,
        *,
        batch_id: str | None = None,
    ) -> RequestRecord:
        """The request as first stored: awaiting approval under the policy's requirement."""
        needs = self.policy.requirement(accepted.commands)
        library = dict(accepted.library)
        return RequestRecord(
            id=new_request_id(),
            created_at=now,
            updated_at=now,
            requester=user,
            channel=channel,
            machine_id=accepted.machine.id,
            machine_name=accepted.machine.name,
            machine=machine_card(
                accepted.machine, accepted.active_action, accepted.preflight, accepted.playbook
            ),
            commands=accepted.commands,
            justification=accepted.justification,
            ticket=accepted.ticket,
            state=RequestState.AWAITING_APPROVAL,
            expires_at=now + timedelta(minutes=needs.approval_minutes),
            digest=payload_digest(accepted.machine.id, accepted.commands, library),
            library=library,
            approvals_needed=needs.approvals,
            batch_id=batch_id,
        )

    def _find(self, request_id: str) -> RequestRecord | Outcome:
        record = self.store.get(request_id)
        if record is None:
            return Outcome(False, "That request is not known to this bot; nothing was changed.")
        return record

    def _closed_message(self, record: RequestRecord) -> Outcome:
        if record.state is RequestState.EXPIRED or (
            record.state.is_open and record.expires_at <= self.clock()
        ):
            return Outcome(False, f"Request {record.id} has expired; ask for a new one.")
        who = f" by <@{record.decided_by}>" if record.decided_by else ""
        state = str(record.state).replace("_", " ")
        return Outcome(False, f"Request {record.id} was already decided{who} ({state}).")

    def _apply(
        self,
        record: RequestRecord,
        changes: dict[str, Any],
        event: tuple[str, str | None, dict[str, Any]],
        reply: Callable[[RequestRecord], views.Message] | None,
        *,
        expect: Iterable[RequestState],
        where: sa.ColumnElement[bool] | None = None,
    ) -> RequestRecord | None:
        """One atomic change with its event, its thread reply and the message rewrite."""
        now = self.clock()
        transition = change_transition(record, changes, event, reply, now)
        return self.store.transition(record.id, transition, now, expect=expect, where=where)

    def decide(
        self, request_id: str, user: str, approve: bool, digest: str | None = None
    ) -> Outcome:
        """Approve or reject. A rejection, or the last approval needed, decides it once.

        ``digest`` is the payload digest on the button that was clicked: an approval counts
        only for the exact payload its approver saw.
        """
        found = self._find(request_id)
        if isinstance(found, Outcome):
            return found
        if not approve and user == found.requester:
            return Outcome(False, "To take back your own request, use Withdraw.")
        decision = self.policy.may_approve(
            user,
            found.requester,
            found.commands,
            self.directory.members,
            already=found.approvals if approve else (),
        )
        if not decision:
            log.info("refused decision on %s by %s: %s", found.id, user, decision.reason)
            return Outcome(False, views.sentence(decision.reason))
        # The button carries the digest's first DIGEST_IN_BUTTON characters, always: a click
        # without them, or with fewer, did not come from this request's message.
        if (
            approve
            and found.digest
            and (
                not digest or len(digest) < DIGEST_IN_BUTTON or not found.digest.startswith(digest)
            )
        ):
            log.warning("approval of %s by %s was for another payload", found.id, user)
            return Outcome(
                False,
                f"Request {found.id} changed after this message was shown to you; nothing was"
                " approved. Look at the request again.",
            )
        if approve:
            return self._approve(found, user)
        now = self.clock()
        updated = self._apply(
            found,
            {"state": RequestState.REJECTED, "decided_by": user, "decided_at": now},
            ("rejected", user, {}),
            views.reply_decision,
            expect=[RequestState.AWAITING_APPROVAL],
            where=requests.c.expires_at > now,
        )
        if updated is None:
            self.expire_due()
            return self._closed_message(self.store.get(found.id) or found)
        log.info("request %s rejected by %s", found.id, user)
        return Outcome(True)

    def _approve(self, found: RequestRecord, user: str) -> Outcome:
        now = self.clock()

        def build(record: RequestRecord, complete: bool) -> Transition:
            changes, event = approval_step(record, user, complete, now)
            return change_transition(
                record, changes, event, lambda r: views.reply_approval(r, user), now
            )

        outcome, record = self.store.approve(found.id, user, now, build)
        if outcome == "duplicate":
            return Outcome(
                False, "You have already approved this request; another approver is needed."
            )
        if outcome == "closed" or record is None:
            self.expire_due()
            return self._closed_message(self.store.get(found.id) or found)
        log.info(
            "request %s: approval by %s (%d of %d)%s",
            found.id,
            user,
            len(record.approvals),
            record.approvals_needed,
            ", approved" if outcome == "approved" else "",
        )
        if outcome == "approved":
            self.wake_tracker()
        return Outcome(True)

    def withdraw(self, request_id: str, user: str) -> Outcome:
        found = self._find(request_id)
        if isinstance(found, Outcome):
            return found
        decision = self.policy.may_withdraw(user, found.requester)
        if not decision:
            return Outcome(False, views.sentence(decision.reason))
        updated = self._apply(
            found,
            {"state": RequestState.WITHDRAWN, "decided_by": user, "decided_at": self.clock()},
            ("withdrawn", user, {}),
            views.reply_decision,
            expect=[RequestState.AWAITING_APPROVAL],
        )
        if updated is None:
            return self._closed_message(self.store.get(found.id) or found)
        return Outcome(True)

    def cancel(self, request_id: str, user: str) -> Outcome:
        """Cancel a run that was approved: at Defender if it was submitted, here otherwise."""
        found = self._find(request_id)
        if isinstance(found, Outcome):
            return found
        decision = self.policy.may_cancel(user, found.requester, self.directory.members)
        if not decision:
            return Outcome(False, views.sentence(decision.reason))
        if found.state not in CANCELLABLE:
            return Outcome(False, f"Request {found.id} is not running; there is nothing to cancel.")
        if found.state is RequestState.APPROVED:
            # Not yet at Defender: it ends here, and the tracker will never submit it.
            now = self.clock()
            updated = self._apply(
                found,
                {
                    "state": RequestState.FINISHED,
                    "action_status": "Cancelled",
                    "cancelled_by": user,
                    "finished_at": now,
                },
                ("cancelled", user, {"submitted": False}),
                lambda r: views.reply_cancelled(r, user),
                expect=[RequestState.APPROVED],
            )
            if updated is not None:
                return Outcome(True)
            found = self.store.get(found.id) or found
        updated = self._apply(
            found,
            {"cancelled_by": user},
            ("cancel_requested", user, {}),
            None,
            expect=CANCELLABLE,
            where=requests.c.cancelled_by.is_(None),
        )
        if updated is None:
            return Outcome(False, f"Request {found.id} is already being cancelled or has ended.")
        if updated.action_id and updated.state in (RequestState.PENDING, RequestState.IN_PROGRESS):
            return self.cancel_at_defender(updated, user)
        self.wake_tracker()  # the tracker cancels it as soon as it knows the action id
        return Outcome(True)

    def cancel_in_flight(self, request_id: str) -> bool:
        """Whether Defender is being asked to cancel this request's action right now.

        Defender applies a cancel before it answers: meanwhile a poll may already see the
        action final. The tracker leaves that final word for a later poll, so the thread
        says who cancelled before it says how the run ended.
        """
        with self._cancelling_lock:
            return request_id in self._cancelling

    def cancel_at_defender(self, record: RequestRecord, user: str) -> Outcome:
        """Ask Defender to cancel; its final status arrives through the tracker's poll."""
        with self._cancelling_lock:
            self._cancelling.add(record.id)
        try:
            return self._cancel_at_defender(record, user)
        finally:
            with self._cancelling_lock:
                self._cancelling.discard(record.id)
            self.wake_tracker()  # the final status it held back, if any

    def _cancel_at_defender(self, record: RequestRecord, user: str) -> Outcome:
        assert record.action_id is not None
        comment = f"lrbot {record.id} | cancelled by {self.directory.display_name(user)}"
        try:
            action = self.defender.cancel_action(record.action_id, comment)
        except DefenderError as exc:
            log.warning("cancel of %s (action %s) failed: %s", record.id, record.action_id, exc)
            # The run goes on: the message must not name a canceller, and a retry must work.
            self._apply(
                record,
                {"cancelled_by": None},
                ("cancel_failed", user, {"error": str(exc)}),
                None,
                expect=list(RequestState),
                where=requests.c.cancelled_by == user,
            )
            return Outcome(False, f"Defender did not cancel the run: {exc}")
        log.info("request %s: action %s cancelled by %s", record.id, record.action_id, user)
        self._apply(
            record,
            {},
            ("cancelled", user, {"action_id": record.action_id}),
            # Defender's answer to the cancel, not the status our last poll saw.
            lambda r: views.reply_cancelled(r.with_changes(action_status=action.status), user),
            expect=list(RequestState),
        )
        return Outcome(True)

    def expire_due(self) -> list[RequestRecord]:
        """Close every request whose approval window has passed."""
        now = self.clock()
        expired = []
        for record in self.store.in_states([RequestState.AWAITING_APPROVAL], expired_by=now):
            updated = self._apply(
                record,
                {"state": RequestState.EXPIRED},
                ("expired", None, {}),
                views.reply_expired,
                expect=[RequestState.AWAITING_APPROVAL],
            )
            if updated is not None:
                log.info("request %s expired", record.id)
                expired.append(updated)
        return expired
