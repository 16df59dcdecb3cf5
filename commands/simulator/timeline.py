"""How a live response action progresses: a pure function of timestamps and the clock.

Nothing runs in the background. When an action is created its commands are planned
(duration, outcome, result); every read projects the plan onto the current time:

    Pending (until the machine is online, plus pending_seconds; TimeOut past the queue limit)
    → InProgress: each command Created → InProgress → Completed in turn
    → Succeeded, or Failed / TimeOut at the first command that does not complete
    (Cancelled at any point before that, when someone cancels).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "TIMEOUT_HRESULT",
    "ActionRecord",
    "ActionView",
    "CommandView",
    "Plan",
    "Timing",
    "first_online",
    "project",
]

Outcome = Literal["Completed", "Failed", "TimeOut"]
FINAL = frozenset({"Succeeded", "Failed", "TimeOut", "Cancelled"})
TIMEOUT_HRESULT = -2147023436  # 0x800705B4, ERROR_TIMEOUT


@dataclass(frozen=True)
class Plan:
    """What one command will do, decided when the action is created."""

    type: str
    params: tuple[tuple[str, str], ...]
    seconds: float
    outcome: Outcome = "Completed"
    error: str | None = None
    hresult: int = 0
    result: bytes | None = None  # what the download link serves once Completed


@dataclass
class ActionRecord:
    """One action as stored: the request, its plan, and a cancellation if any."""

    id: str
    machine_id: str
    computer_dns_name: str
    requestor: str
    comment: str
    created: float
    plans: tuple[Plan, ...]
    cancelled_at: float | None = None
    cancellation_requestor: str | None = None
    cancellation_comment: str | None = None


@dataclass(frozen=True)
class Timing:
    pending_seconds: float
    queue_seconds: float


@dataclass(frozen=True)
class CommandView:
    index: int
    status: str
    start: float | None = None
    end: float | None = None
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class ActionView:
    status: str
    commands: tuple[CommandView, ...]
    last_update: float
    error_hresult: int = 0
    ends_at: float | None = None  # when an active action will be final (if nobody cancels)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL


def first_online(history: Sequence[tuple[float, bool]], since: float) -> float | None:
    """The first moment at or after ``since`` when the machine is online, if any yet."""
    online = False
    for moment, state in history:
        if moment <= since:
            online = state
    if online:
        return since
    return next((moment for moment, state in history if moment > since and state), None)


def _steps(start: float, plans: Sequence[Plan]) -> list[tuple[float, float]]:
    steps: list[tuple[float, float]] = []
    moment = start
    for plan in plans:
        steps.append((moment, moment + plan.seconds))
        moment += plan.seconds
        if plan.outcome != "Completed":
            break
    return steps


def _command(index: int, plan: Plan, step: tuple[float, float] | None, at: float) -> CommandView:
    if step is None or at < step[0]:
        return CommandView(index, "Created")
    start, end = step
    if at < end:
        return CommandView(index, "InProgress", start)
    if plan.outcome == "Completed":
        return CommandView(index, "Completed", start, end)
    return CommandView(index, "Failed", start, end, (plan.error or "The command failed.",))


def _cancelled(commands: list[CommandView], record: ActionRecord, cut: float) -> list[CommandView]:
    who = record.cancellation_requestor or "someone"
    return [
        CommandView(c.index, "Failed", c.start, cut, (f"Cancelled by {who}.",))
        if c.status == "InProgress"
        else c
        for c in commands
    ]


def _final_status(plans: Sequence[Plan], ran: int) -> tuple[str, int]:
    last = plans[ran - 1]
    if last.outcome == "Completed":
        return "Succeeded", 0
    return ("TimeOut" if last.outcome == "TimeOut" else "Failed"), last.hresult


def project(
    record: ActionRecord, online_at: float | None, timing: Timing, now: float
) -> ActionView:
    """The action as Defender would report it at ``now``."""
    cut = record.cancelled_at
    at = now if cut is None else min(now, cut)
    deadline = record.created + timing.queue_seconds
    created = tuple(CommandView(i, "Created") for i in range(len(record.plans)))
    if online_at is None or online_at >= deadline:
        if cut is not None:
            return ActionView("Cancelled", created, cut)
        if now >= deadline:
            return ActionView("TimeOut", created, deadline, TIMEOUT_HRESULT)
        return ActionView("Pending", created, record.created, ends_at=deadline)
    start = max(online_at, record.created) + timing.pending_seconds
    steps = _steps(start, record.plans)
    end = steps[-1][1] if steps else start
    events = sorted({record.created, start, *(t for step in steps for t in step)})
    seen = [t for t in events if t <= at]
    commands = [
        _command(i, plan, steps[i] if i < len(steps) else None, at)
        for i, plan in enumerate(record.plans)
    ]
    if cut is not None:
        return ActionView("Cancelled", tuple(_cancelled(commands, record, cut)), cut)
    if at < start:
        return ActionView("Pending", tuple(commands), seen[-1], ends_at=end)
    if at < end:
        return ActionView("InProgress", tuple(commands), seen[-1], ends_at=end)
    status, hresult = _final_status(record.plans, len(steps))
    return ActionView(status, tuple(commands), end, hresult)
