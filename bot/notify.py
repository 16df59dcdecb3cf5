"""Which state changes the requester is told of by direct message.

Decided here, once, from what a transition writes, so every path that approves, rejects,
expires or ends a request (the lifecycle, the tracker, a batch) queues the message in the
same transaction as the change: it survives a restart and is sent once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bot.records import RequestState

__all__ = ["NOTIFY", "notice"]

NOTIFY = "notify"  # the outbox item's kind
_ENDS = frozenset(
    {RequestState.REJECTED, RequestState.EXPIRED, RequestState.FINISHED, RequestState.REFUSED}
)


def notice(
    changes: Mapping[str, Any], events: Iterable[tuple[str, str | None, Any]]
) -> RequestState | None:
    """The state to tell the requester of, or None.

    An approval counts only with its ``approved`` event: a run put back to ``approved``
    after a failed submission is no news to them.
    """
    state = changes.get("state")
    if state is None:
        return None
    state = RequestState(state)
    if state in _ENDS:
        return state
    if state is RequestState.APPROVED and any(kind == "approved" for kind, _, _ in events):
        return state
    return None
