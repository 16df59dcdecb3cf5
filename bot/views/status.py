"""The ``status``, ``cancel`` and ``history`` subcommands' ephemeral answers, and the one-line
summary of a request that they, the App Home and the DMs share."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.links import thread_url
from bot.records import RequestRecord
from bot.views.common import (
    SECTION_LIMIT,
    Message,
    approvers_text,
    clip,
    command_count,
    context,
    device_name,
    escape,
    header,
    mention,
    plural,
    section,
    slack_date,
    utc_text,
)
from bot.views.request import state_words

__all__ = [
    "STATUS_LINES",
    "cancel_answer",
    "device_history",
    "request_line",
    "request_status",
    "status_overview",
    "subcommand_help",
]

STATUS_LINES = 12  # per list in an ephemeral answer: a section holds 3,000 characters
_SECTION_BUDGET = SECTION_LIMIT - 40  # room for the "…and N more" line


def _link(record: RequestRecord, workspace: str | None, label: str = "thread") -> str:
    url = thread_url(workspace, record.channel, record.message_ts)
    return f"<{url}|{label}>" if url else "(not posted yet)"


def request_line(record: RequestRecord, workspace: str | None, *, who: bool = True) -> str:
    """``⏳ lr-… · 2 commands on WS-1 by @rae · awaiting approval · thread``."""
    mark, words = state_words(record)
    by = f" by {mention(record.requester)}" if who else ""
    line = (
        f"{mark} `{escape(record.id)}` · {plural(command_count(record), 'command')} on"
        f" *{clip(device_name(record), 80)}*{by} · {clip(words, 60)}"
        f" · {slack_date(record.created_at)}"
    )
    return f"{line} · {_link(record, workspace)}"


def listed_lines(
    records: Sequence[RequestRecord], workspace: str | None, *, who: bool = True
) -> list[str]:
    """One line a request, in order; a batch's devices in one line, where its first listed
    device is (twenty devices of one batch are one thing to approve, not twenty)."""
    counts: dict[str, int] = {}
    for record in records:
        if record.batch_id is not None:
            counts[record.batch_id] = counts.get(record.batch_id, 0) + 1
    lines: list[str] = []
    seen: set[str] = set()
    for record in records:
        if record.batch_id is None:
            lines.append(request_line(record, workspace, who=who))
        elif record.batch_id not in seen:
            seen.add(record.batch_id)
            lines.append(_batch_line(record, counts[record.batch_id], workspace, who=who))
    return lines


def _batch_line(first: RequestRecord, devices: int, workspace: str | None, *, who: bool) -> str:
    assert first.batch_id is not None
    mark, words = state_words(first)
    by = f" by {mention(first.requester)}" if who else ""
    return (
        f"{mark} batch `{escape(first.batch_id)}` · {plural(command_count(first), 'command')} on"
        f" {plural(devices, 'device')} (*{clip(device_name(first), 60)}*, …){by}"
        f" · {clip(words, 60)} · {slack_date(first.created_at)} · {_link(first, workspace)}"
    )


def _lines(
    records: Sequence[RequestRecord],
    workspace: str | None,
    empty: str,
    *,
    who: bool = True,
    batches: bool = True,
) -> str:
    """As many whole lines as one section holds, and how many more there are."""
    if not records:
        return f"_{empty}_"
    shown: list[str] = []
    used = 0
    every = (
        listed_lines(records, workspace, who=who)
        if batches
        else [request_line(r, workspace, who=who) for r in records]
    )
    for line in every[:STATUS_LINES]:
        if used + len(line) + 1 > _SECTION_BUDGET:
            break
        shown.append(line)
        used += len(line) + 1
    more = len(every) - len(shown)
    text = "\n".join(shown)
    return f"{text}\n…and {more} more" if more > 0 else text


def status_overview(
    mine: Sequence[RequestRecord], running: Sequence[RequestRecord], workspace: str | None
) -> Message:
    """``status`` with no argument: the caller's recent requests and every run in progress."""
    text = (
        f"Your recent requests: {len(mine)}. Runs in progress: {len(running)}."
        " Use `status <request-id>` for one request."
    )
    blocks = [
        header("Your recent requests"),
        section(_lines(mine, workspace, "You have asked for no runs yet.", who=False)),
        header("Runs in progress"),
        section(_lines(running, workspace, "Nothing is running now.")),
    ]
    return Message(text=text, blocks=blocks)


def request_status(record: RequestRecord, workspace: str | None, now: datetime) -> Message:
    """``status lr-…``: one request in a few lines."""
    mark, words = state_words(record)
    facts = [
        f"*Device:* {clip(device_name(record), 120)}",
        f"*Requested by:* {mention(record.requester)} {slack_date(record.created_at)}",
        f"*Commands:* {command_count(record)}",
    ]
    if record.state.is_open:
        facts.append(
            f"*Approvals:* {len(record.approvals)} of {record.approvals_needed};"
            f" expires {slack_date(record.expires_at)}"
        )
    elif record.approvers:
        facts.append(f"*Approved by:* {approvers_text(record)}")
    elif record.decided_by:
        facts.append(f"*Decided by:* {mention(record.decided_by)}")
    if record.cancelled_by:
        facts.append(f"*Cancelled by:* {mention(record.cancelled_by)}")
    if record.finished_at:
        facts.append(f"*Ended:* {slack_date(record.finished_at)}")
    text = (
        f"Request {record.id} on {device_name(record)}: {words}."
        f" Requested by {mention(record.requester)} {utc_text(record.created_at)}."
    )
    blocks = [
        section(f"{mark} *Request `{escape(record.id)}`: {clip(words, 80)}*"),
        section("\n".join(facts)),
        context(f"Thread: {_link(record, workspace, 'open the request')}"),
    ]
    return Message(text=text, blocks=blocks)


def device_history(device: str, records: Sequence[RequestRecord], workspace: str | None) -> Message:
    """``history <device>``: the device's recent requests, newest first."""
    shown = clip(device, 120)
    if not records:
        return Message(text=f"No requests for a device called {shown}.", blocks=[])
    text = f"Recent requests on {shown}: {len(records)}."
    blocks = [
        header(f"Requests on {device}"),
        section(_lines(records, workspace, "")),
    ]
    return Message(text=text, blocks=blocks)


def batch_status(batch_id: str, members: Sequence[RequestRecord], workspace: str | None) -> Message:
    """``status lb-…``: a batch's devices, each with its state and the batch's thread."""
    ended = sum(1 for m in members if m.state.is_closed)
    text = f"Batch {batch_id}: {len(members)} devices, {ended} ended."
    blocks = [
        header(f"Batch {batch_id}"),
        section(_lines(members, workspace, "This batch has no devices.", batches=False)),
    ]
    return Message(text=text, blocks=blocks)


def cancel_answer(record: RequestRecord, workspace: str | None) -> str:
    """Said when a cancel went through: the thread tells how the run ends."""
    return (
        f"Cancelling request `{escape(record.id)}` on {clip(device_name(record), 120)}:"
        f" its thread says how it ends ({_link(record, workspace)})."
    )


def subcommand_help(command: str) -> str:
    """The subcommands, for ``help`` and for a mistyped one."""
    return (
        f"`{command} status` your recent requests and the runs in progress\n"
        f"`{command} status <request-id|batch-id|device>` one request, a batch's devices,"
        " or a device's requests\n"
        f"`{command} cancel <request-id|batch-id>` cancel an approved or running request, or"
        " every run of a batch still going\n"
        f"`{command} history <device>` a device's recent requests (host name or machine id)"
    )
