"""A batch request: its one channel message, its members' replies in its thread, and the
summary table posted when every device's run has ended. Pure functions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.ids import DIGEST_IN_BUTTON, Action, approve_value
from bot.records import CANCELLABLE, RequestRecord, RequestState
from bot.views.common import (
    Message,
    button,
    clip,
    code_block,
    command_count,
    confirm,
    context,
    device_name,
    escape,
    header,
    human_duration,
    mention,
    plural,
    seconds_between,
    section,
)
from bot.views.request import _PREFLIGHT_MARKS, _commands, _status, _who, state_words

__all__ = ["batch_message", "batch_summary", "member_reply"]

DEVICES_PER_SECTION = 10  # 10 lines of at most 200 characters: well under 3,000 a section
DEVICE_LINE = 200
NAME_WIDTH = 28
STATUS_WIDTH = 16


def _device_line(position: int, record: RequestRecord) -> str:
    mark, words = state_words(record)
    line = f"`{position:>2}.` {clip(device_name(record), 80)} — {mark} {clip(words, 40)}"
    if not record.state.is_closed:
        if record.machine.get("active_action_id"):
            line += " · ⚠️ has an active action: waits for it"
        elif record.machine.get("health_status") not in (None, "Active"):
            line += " · ⚠️ not Active: queues until it connects"
    return line[:DEVICE_LINE]


def _findings(record: RequestRecord) -> list[tuple[str, str]]:
    stored = record.machine.get("preflight")
    if not isinstance(stored, list):
        return []
    return [
        (str(f.get("level")), str(f.get("text", ""))) for f in stored[:20] if isinstance(f, dict)
    ]


def _preflight(members: list[RequestRecord]) -> list[dict[str, Any]]:
    """Each device's preflight (``bot.preflight``), read as one: the findings every device
    shares (library files, order, time limits) once, then what is not ok on a device,
    named; the devices whose own checks all passed are counted, not listed."""
    open_members = [m for m in members if not m.state.is_closed]
    found = {m.id: _findings(m) for m in open_members}
    if not any(found.values()):
        return []
    shared = set.intersection(*(set(f) for f in found.values()))
    lines = ["*Preflight*"]
    first = found[open_members[0].id]
    lines += [
        f"{_PREFLIGHT_MARKS.get(level, '❔')} {clip(text, 300)}"
        for level, text in first
        if (level, text) in shared
    ]
    passed = 0
    for member in open_members:
        own = [(lv, t) for lv, t in found[member.id] if (lv, t) not in shared and lv != "ok"]
        if not own:
            passed += 1
        for level, text in own:
            name = clip(device_name(member), 60)
            lines.append(f"{_PREFLIGHT_MARKS.get(level, '❔')} {name}: {clip(text, 200)}")
    if passed:
        lines.append(f"✅ Device checks passed on {plural(passed, 'device')}.")
    return [section("\n".join(lines))]  # each line is escaped and cut already


def _overall(members: list[RequestRecord]) -> tuple[str, str]:
    """The batch's state in a few words: the members' common state, or how far it got."""
    states = {m.state for m in members}
    if len(states) == 1:
        return (
            state_words(members[0])
            if members[0].state is not RequestState.FINISHED
            else (
                "🏁",
                "finished",
            )
        )
    ended = sum(1 for m in members if m.state.is_closed)
    if ended == len(members):
        return "🏁", "finished"
    return "▶️", f"running, {ended} of {len(members)} ended"


def batch_message(
    batch_id: str, digest: str, members: list[RequestRecord], now: datetime
) -> Message:
    """The channel message of a batch in its members' current states."""
    first = members[0]
    mark, words = _overall(members)
    devices = [_device_line(i + 1, m) for i, m in enumerate(members)]
    # The commands as asked, without one member's progress: each device's is in its line.
    asked = first.with_changes(state=RequestState.AWAITING_APPROVAL, command_states=())
    blocks: list[dict[str, Any]] = [
        header(f"{mark} Batch live response request — {words}"),
        _who(first),
        section(f"*Devices* ({len(members)}, one run each)"),
        *(
            section("\n".join(devices[i : i + DEVICES_PER_SECTION]))
            for i in range(0, len(devices), DEVICES_PER_SECTION)
        ),
        *_commands(asked),
        *_preflight(members),
        section(_status(_decided(first), now)),
        *_buttons(batch_id, digest, first, members),
        context(
            f"Batch `{clip(batch_id, 40)}` · approval covers payload"
            f" `{digest[:DIGEST_IN_BUTTON]}` (every device's commands and library files)"
        ),
    ]
    text = (
        f"Batch live response request from {mention(first.requester)} to run"
        f" {plural(command_count(first), 'command')} on {plural(len(members), 'device')}:"
        f" {words}. Batch {batch_id}."
    )
    return Message(text=text, blocks=blocks)


def _decided(first: RequestRecord) -> RequestRecord:
    # The decision is the same for every member; the run lines are each device's own.
    if first.state.is_running or first.state in (RequestState.FINISHED, RequestState.REFUSED):
        return first.with_changes(state=RequestState.APPROVED, note="each device's run below.")
    return first


def _buttons(
    batch_id: str, digest: str, first: RequestRecord, members: list[RequestRecord]
) -> list[dict[str, Any]]:
    if any(m.state in CANCELLABLE for m in members):
        cancel = confirm(
            "Cancel every run of this batch?",
            "Stop the runs still queued or running? Runs that ended, and commands already"
            " finished, stay done.",
            "Cancel the runs",
            "Keep them",
        )
        return [
            {
                "type": "actions",
                "elements": [
                    button("Cancel all runs", Action.BATCH_CANCEL, batch_id, "danger", cancel)
                ],
            }
        ]
    if first.state is not RequestState.AWAITING_APPROVAL:
        return []
    count = plural(command_count(first), "command")
    approve = confirm(
        "Approve the whole batch?",
        f"Run {count} on every device listed? Each goes to Defender as soon as it is approved.",
        "Approve all",
        "Back",
    )
    return [
        {
            "type": "actions",
            "elements": [
                button(
                    "Approve all",
                    Action.BATCH_APPROVE,
                    approve_value(batch_id, digest),
                    "primary",
                    approve,
                ),
                button("Reject all", Action.BATCH_REJECT, batch_id, "danger"),
                button("Withdraw (requester)", Action.BATCH_WITHDRAW, batch_id),
            ],
        }
    ]


def member_reply(record: RequestRecord, text: str, blocks: list[dict[str, Any]] | None) -> Message:
    """A member's thread reply, named for its device: one thread holds every device's."""
    name = clip(device_name(record), 80)
    label = context(f"🖥️ *{name}* · `{clip(record.id, 40)}`")
    return Message(text=f"[{name}] {text}", blocks=[label, *(blocks or [])])


def _duration(record: RequestRecord) -> str:
    # As the device's final reply counts it: from submission to Defender's final word.
    start = record.submitted_at or record.started_at
    if start is None or record.finished_at is None:
        return "-"
    return human_duration(seconds_between(start, record.finished_at))


def batch_summary(members: list[RequestRecord], results: dict[str, int]) -> Message:
    """The table posted when every device's run has ended."""
    rows = [("Device", "Final status", "Duration", "Results")]
    for record in members:
        _, words = state_words(record)
        rows.append(
            (
                device_name(record)[:NAME_WIDTH],
                words[:STATUS_WIDTH],
                _duration(record),
                str(results.get(record.id, 0)),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    table = "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
    succeeded = sum(1 for m in members if m.action_status == "Succeeded")
    title = f"Batch finished: {succeeded} of {plural(len(members), 'device')} succeeded."
    return Message(
        text=f"{title}\n{escape(table)}",
        blocks=[section(f"🏁 *{title}*"), section(code_block(table, 2900))],
    )
