"""The request record and its states: what the store keeps and the views show."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from commands.models import CommandSequence

__all__ = ["CANCELLABLE", "CommandState", "OutboxItem", "RequestRecord", "RequestState"]


class RequestState(StrEnum):
    """Where a request is in its life."""

    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"  # waiting to be submitted
    SUBMITTING = "submitting"  # POST in flight
    UNKNOWN = "submit_unknown"  # POST outcome unknown: reconcile before anything else
    PENDING = "pending"  # Defender's action is Pending (queued on the device)
    IN_PROGRESS = "in_progress"
    FINISHED = "finished"  # Defender reported a final status (``action_status``)
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    REFUSED = "refused"  # Defender refused the submission

    @property
    def is_open(self) -> bool:
        """Still waiting for a decision."""
        return self is RequestState.AWAITING_APPROVAL

    @property
    def is_running(self) -> bool:
        """Approved and not yet at an end."""
        return self in _RUNNING

    @property
    def is_closed(self) -> bool:
        return not (self.is_open or self.is_running)


_RUNNING = frozenset(
    {
        RequestState.APPROVED,
        RequestState.SUBMITTING,
        RequestState.UNKNOWN,
        RequestState.PENDING,
        RequestState.IN_PROGRESS,
    }
)


@dataclass(frozen=True)
class CommandState:
    """Defender's ``commandStatus`` for one command, and its errors as text."""

    status: str = "Created"
    errors: str | None = None


@dataclass(frozen=True)
class RequestRecord:
    """One live response request, from the modal to Defender's final word."""

    id: str
    created_at: datetime
    updated_at: datetime
    requester: str
    channel: str
    machine_id: str
    machine_name: str
    machine: dict[str, Any]
    commands: CommandSequence
    justification: str
    ticket: str | None
    state: RequestState
    expires_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    message_ts: str | None = None
    action_id: str | None = None
    action_status: str | None = None
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancelled_by: str | None = None
    note: str | None = None
    # What the approvals are bound to: the payload digest (commands.digest) and the sha256
    # of each library file the commands use, as Defender reported them at request time.
    digest: str | None = None
    library: dict[str, str | None] = field(default_factory=dict)
    approvals_needed: int = 1
    batch_id: str | None = None  # a member of a batch request (bot/batches.py)
    command_states: tuple[CommandState, ...] = field(default_factory=tuple)
    # Who approved so far, in order (the last one completed the approval).
    approvals: tuple[str, ...] = field(default_factory=tuple)

    @property
    def approvers(self) -> tuple[str, ...]:
        """Everyone who approved; ``decided_by`` alone for requests from before approvals."""
        if self.approvals:
            return self.approvals
        if self.decided_by and self.state not in _UNAPPROVED:
            return (self.decided_by,)
        return ()

    def to_row(self) -> dict[str, Any]:
        row = {k: getattr(self, k) for k in _COLUMNS}
        row["commands"] = self.commands.model_dump(mode="json")
        row["state"] = str(self.state)
        return row

    @classmethod
    def from_row(
        cls, row: dict[str, Any], states: list[CommandState], approvals: tuple[str, ...] = ()
    ) -> RequestRecord:
        values = {k: row[k] for k in _COLUMNS}
        values["commands"] = CommandSequence.model_validate(row["commands"])
        values["state"] = RequestState(row["state"])
        values["library"] = dict(row.get("library") or {})
        values["approvals_needed"] = int(row.get("approvals_needed") or 1)
        return cls(**values, command_states=tuple(states), approvals=approvals)

    def with_changes(self, **changes: Any) -> RequestRecord:
        return replace(self, **changes)


_COLUMNS = tuple(
    name
    for name in RequestRecord.__dataclass_fields__
    if name not in {"command_states", "approvals"}
)
_UNAPPROVED = frozenset(
    {
        RequestState.AWAITING_APPROVAL,
        RequestState.REJECTED,
        RequestState.WITHDRAWN,
        RequestState.EXPIRED,
    }
)


@dataclass(frozen=True)
class OutboxItem:
    """A Slack call the bot owes: post the request, update it, reply in its thread, upload."""

    id: int
    request_id: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    not_before: datetime
    created_at: datetime | None = None  # when the change it reports was stored


# Where Cancel may stop a run: approved and not yet ended (a submission in flight included:
# the lifecycle cancels at Defender once the action is known).
CANCELLABLE = (
    RequestState.APPROVED,
    RequestState.SUBMITTING,
    RequestState.UNKNOWN,
    RequestState.PENDING,
    RequestState.IN_PROGRESS,
)
