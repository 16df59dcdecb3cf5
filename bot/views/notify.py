"""The direct message to a requester when their request is decided, expires or ends."""

from __future__ import annotations

from bot.links import thread_url
from bot.records import RequestRecord, RequestState
from bot.views.common import (
    Message,
    approvers_text,
    clip,
    context,
    device_name,
    escape,
    mention,
    section,
)
from bot.views.request import state_words

__all__ = ["batch_dm", "requester_dm"]


def _what(record: RequestRecord, state: RequestState) -> str:
    if state is RequestState.APPROVED:
        return f"was approved by {approvers_text(record)} and goes to Defender now"
    if state is RequestState.REJECTED:
        return f"was rejected by {mention(record.decided_by)}; nothing ran"
    if state is RequestState.EXPIRED:
        return "expired before anyone approved it; nothing ran"
    if state is RequestState.REFUSED:
        return f"was refused by Defender: {clip(record.note or 'no reason given', 300)}"
    _, words = state_words(record)
    return f"has finished: {clip(words, 60)}"


def requester_dm(record: RequestRecord, state: RequestState, workspace: str | None) -> Message:
    """What the requester is told; ``state`` is the one reported, ``record`` as it is now."""
    mark, _ = state_words(record.with_changes(state=state))
    device = clip(device_name(record), 120)
    if record.batch_id is not None:  # a batch's decision is told once, for all its devices
        sentence = f"Your batch request `{escape(record.batch_id)}` {_what(record, state)}."
    else:
        sentence = (
            f"Your live response request `{escape(record.id)}` on *{device}*"
            f" {_what(record, state)}."
        )
    url = thread_url(workspace, record.channel, record.message_ts)
    link = f"<{url}|Open the request's thread>" if url else "Its thread is in the request channel."
    return Message(
        text=f"{mark} {sentence} {url or ''}".strip(),
        blocks=[section(f"{mark} {sentence}"), context(link)],
    )


def batch_dm(
    batch_id: str, members: list[RequestRecord], thread: str | None, workspace: str | None
) -> Message:
    """The one message a batch's requester gets when every device's run has ended (each
    device's own end is in the thread's summary, not twenty DMs)."""
    succeeded = sum(1 for m in members if m.action_status == "Succeeded")
    mark = "✅" if succeeded == len(members) else "⚠️"
    sentence = (
        f"Your batch request `{escape(batch_id)}` has finished: {succeeded} of"
        f" {len(members)} devices succeeded"
    )
    channel = members[0].channel if members else ""
    url = thread_url(workspace, channel, thread)
    link = f"<{url}|Open the batch's thread>" if url else "Its thread is in the request channel."
    return Message(
        text=f"{mark} {sentence}. {url or ''}".strip(),
        blocks=[section(f"{mark} {sentence}."), context(link)],
    )
