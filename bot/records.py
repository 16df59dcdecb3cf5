"""The request record and its states: what the store keeps and the views show."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from commands.models import CommandSequence

__all__ = ["CommandState", "OutboxItem", "RequestRecord", "RequestState"]


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
    command_states: tuple[CommandState, ...] = field(default_factory=tuple)

    def to_row(self) -> dict[str, Any]:
        row = {k: getattr(self, k) for k in _COLUMNS}
        row["commands"] = self.commands.model_dump(mode="json")
        row["state"] = str(self.state)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any], states: list[CommandState]) -> RequestRecord:
        values = {k: row[k] for k in _COLUMNS}
        values["commands"] = CommandSequence.model_validate(row["commands"])
        values["state"] = RequestState(row["state"])
        return cls(**values, command_states=tuple(states))

    def with_changes(self, **changes: Any) -> RequestRecord:
        return replace(self, **changes)


_COLUMNS = tuple(
    name for name in RequestRecord.__dataclass_fields__ if name not in {"command_states"}
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
