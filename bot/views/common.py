"""What every view shares: escaping, clipping, dates, sizes, command statuses, block builders.

User-supplied text (justifications, tickets, paths, script arguments, device names, Defender's
messages) reaches Slack only through ``clip`` or ``code_block``: escaped so ``<!channel>``,
``<@U…>`` and ``<https://…|label>`` render as the characters typed, and cut to a bound so no
block exceeds Slack's limits. Every mrkdwn text object is ``verbatim`` so Slack does not
linkify or auto-mention anything either.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.records import CommandState, RequestRecord, RequestState
from commands.syntax import format_command

__all__ = [
    "DATE_FORMAT",
    "Message",
    "clip",
    "code_block",
    "code_blocks",
    "code_fits",
    "escape",
    "human_duration",
    "human_size",
    "mention",
    "plural",
    "slack_date",
    "truncate",
    "utc_text",
]

# Slack's limits, from shared/reference/slack-platform.md.
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
HEADER_LIMIT = 150
BUTTON_LIMIT = 75
CONFIRM_TITLE_LIMIT = 100
CONFIRM_TEXT_LIMIT = 300
CONFIRM_BUTTON_LIMIT = 30

DATE_FORMAT = "{date_short_pretty} {time}"

_USER_ID = re.compile(r"[UW][A-Z0-9]{2,40}")
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,40}")
_CUT_ENTITY = re.compile(r"&[a-z]{0,3}$")
_ZWSP = "\u200b"


@dataclass(frozen=True)
class Message:
    """A message: ``text`` carries every fact in plain words, ``blocks`` lay them out."""

    text: str
    blocks: list[dict[str, Any]]

    def as_kwargs(self) -> dict[str, Any]:
        """``chat.postMessage`` / ``chat.update`` arguments."""
        return {"text": self.text, "blocks": self.blocks}


# --- text ---------------------------------------------------------------------------------


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def escape(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` so mrkdwn shows them instead of reading markup.

    Control characters other than tab and line breaks become U+FFFD: Slack shows none of
    them, and in the JSON sent each costs six characters (``\\u0000``), so a script's NUL- or
    escape-laden output could push a message past Slack's size limit.
    """
    text = _CONTROL.sub("\ufffd", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else its start and "…"."""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…" if limit > 0 else ""


def clip(text: str, limit: int) -> str:
    """``text`` escaped for mrkdwn and cut to ``limit`` characters, never inside an entity."""
    return _cut(escape(text), limit)


def _cut(escaped: str, limit: int) -> str:
    if len(escaped) <= limit:
        return escaped
    if limit <= 0:
        return ""
    return _CUT_ENTITY.sub("", escaped[: limit - 1]) + "…"


def code_block(text: str, limit: int) -> str:
    """``text`` as a mrkdwn code block of at most ``limit`` characters.

    Escaped, and with a zero-width space between adjacent backticks (and next to the fences)
    so the text can never close the block early and turn back into formatting.
    """
    inner = _cut(_code_inner(text), limit - 7)
    if inner.endswith("`"):
        inner += _ZWSP
    return f"```{inner or ' '}```"


def code_fits(text: str, limit: int) -> bool:
    """Whether ``code_block(text, limit)`` shows ``text`` whole."""
    return len(_code_inner(text)) <= limit - 7


def code_blocks(text: str, size: int, budget: int) -> tuple[list[str], bool]:
    """``text`` as consecutive code blocks of at most ``size`` characters each, ``budget`` in all.

    Returns the blocks and whether they hold all of ``text`` (if not, the last ends in "…").
    """
    blocks: list[str] = []
    start = 0
    while start < len(text) and budget >= 16:
        room = min(size, budget)
        end, used = start, 1 if text[start] == "`" else 0  # a leading backtick gets a space
        while end < len(text):
            char = text[end]
            cost = len(escape(char)) + (char == "`" and end > start and text[end - 1] == "`")
            if used + cost > room - 7:
                break
            used += cost
            end += 1
        end = max(end, start + 1)
        blocks.append(code_block(text[start:end], room))
        budget -= len(blocks[-1])
        start = end
    return blocks, start >= len(text)


def _code_inner(text: str) -> str:
    inner = escape(text).replace("``", f"`{_ZWSP}`").replace("``", f"`{_ZWSP}`")
    return _ZWSP + inner if inner.startswith("`") else inner


def mention(user: str | None) -> str:
    """``<@U…>`` for a Slack user id; anything else is shown as inert text."""
    if user and _USER_ID.fullmatch(user):
        return f"<@{user}>"
    return clip(user, 100) if user else "someone"


def channel_link(channel: str) -> str:
    """``<#C…>`` for a channel id; anything else is shown as inert text."""
    return f"<#{channel}>" if _CHANNEL_ID.fullmatch(channel) else "the approval channel"


def plural(count: int, word: str) -> str:
    """``1 command``, ``3 commands``."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


# --- numbers and time ---------------------------------------------------------------------

_SIZE_UNITS = ("kB", "MB", "GB", "TB", "PB")


def human_size(size: int) -> str:
    """A byte count in decimal units: ``512 bytes``, ``4.2 MB``."""
    if size < 0:
        return "unknown size"
    if size < 1000:
        return "1 byte" if size == 1 else f"{size} bytes"
    value = float(size)
    for unit in _SIZE_UNITS:
        value /= 1000
        if value < 999.95 or unit == _SIZE_UNITS[-1]:
            break
    return f"{value:.1f} {unit}"


def sentence(text: str) -> str:
    """``text`` with its first letter in upper case and the rest untouched (ids, host names)."""
    return text[:1].upper() + text[1:]


def exact_size(size: int) -> str:
    """``531 bytes``, or ``4.2 MB (4,201,733 bytes)`` where rounding hides the exact count."""
    return human_size(size) if 0 <= size < 1000 else f"{human_size(size)} ({size:,} bytes)"


def human_duration(seconds: float) -> str:
    """A duration in its two largest units: ``42 s``, ``4 min 12 s``, ``1 h 3 min``, ``2 d 4 h``."""
    if not math.isfinite(seconds):
        return "unknown time"
    if 0 < seconds < 1:
        return "under 1 s"
    total = int(max(seconds, 0))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")]
    first = next((i for i, (amount, _) in enumerate(parts) if amount), len(parts) - 1)
    shown = [f"{amount} {unit}" for amount, unit in parts[first : first + 2] if amount]
    return " ".join(shown) or "0 s"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def utc_text(moment: datetime) -> str:
    """``2025-03-01 03:12 UTC``: the plain-words form of a time."""
    return _utc(moment).strftime("%Y-%m-%d %H:%M UTC")


def slack_date(moment: datetime, fmt: str = DATE_FORMAT) -> str:
    """A ``<!date^…>`` token each reader sees in their own time zone, falling back to UTC."""
    return f"<!date^{int(_utc(moment).timestamp())}^{fmt}|{utc_text(moment)}>"


def seconds_between(start: datetime, end: datetime) -> float:
    return (_utc(end) - _utc(start)).total_seconds()


# --- commands -----------------------------------------------------------------------------


def command_count(record: RequestRecord) -> int:
    return len(record.commands.commands)


def command_text(record: RequestRecord, position: int) -> str | None:
    """Command ``position`` (from 1) as the analyst would type it; None when out of range."""
    if 1 <= position <= command_count(record):
        return format_command(record.commands.commands[position - 1])
    return None


def command_state(record: RequestRecord, index: int) -> CommandState:
    """Defender's state of command ``index`` (from 0); ``Created`` until Defender says more."""
    states = record.command_states
    return states[index] if 0 <= index < len(states) else CommandState()


def outcome(record: RequestRecord, index: int) -> str:
    """What became of command ``index`` in words: waiting, running, Completed, Failed, skipped…"""
    status = command_state(record, index).status
    if status in ("Completed", "Failed"):
        return status
    if record.state is RequestState.FINISHED:
        if any(command_state(record, i).status == "Failed" for i in range(index)):
            return "skipped"
        return "did not finish" if status == "InProgress" else "not run"
    return {"Created": "waiting", "InProgress": "running"}.get(status, status)


_OUTCOME_MARKS = {
    "waiting": "⏳ waiting",
    "running": "🔄 running",
    "Completed": "✅ Completed",
    "Failed": "❌ Failed",
    "skipped": "⏭️ skipped: an earlier command failed",
    "not run": "⏹️ not run",
    "did not finish": "⏹️ did not finish",
}


def outcome_mark(word: str) -> str:
    """An outcome word with its emoji, for blocks."""
    return _OUTCOME_MARKS.get(word) or f"❔ {clip(word, 60)}"


def shows_progress(record: RequestRecord) -> bool:
    """Whether Defender's per-command progress belongs on the request."""
    return record.state in (RequestState.PENDING, RequestState.IN_PROGRESS, RequestState.FINISHED)


def device_name(record: RequestRecord) -> str:
    name = record.machine.get("name")
    return name if isinstance(name, str) and name else record.machine_name or record.machine_id


# --- blocks -------------------------------------------------------------------------------


def mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text or " ", "verbatim": True}


def plain(text: str, limit: int = SECTION_LIMIT) -> dict[str, Any]:
    return {"type": "plain_text", "text": truncate(text, limit) or " ", "emoji": True}


def section(text: str, fields: list[str] | None = None) -> dict[str, Any]:
    """A mrkdwn section; callers bound their text, the cut here is only a last resort."""
    block: dict[str, Any] = {"type": "section", "text": mrkdwn(_cut(text, SECTION_LIMIT))}
    if fields:
        block["fields"] = [mrkdwn(_cut(field, FIELD_LIMIT)) for field in fields[:10]]
    return block


def context(*texts: str) -> dict[str, Any]:
    return {"type": "context", "elements": [mrkdwn(_cut(t, SECTION_LIMIT)) for t in texts[:10]]}


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": plain(text, HEADER_LIMIT)}


def confirm(title: str, text: str, ok: str, back: str) -> dict[str, Any]:
    return {
        "title": plain(title, CONFIRM_TITLE_LIMIT),
        "text": plain(text, CONFIRM_TEXT_LIMIT),
        "confirm": plain(ok, CONFIRM_BUTTON_LIMIT),
        "deny": plain(back, CONFIRM_BUTTON_LIMIT),
    }


def button(
    text: str,
    action_id: str,
    value: str,
    style: str | None = None,
    confirm_dialog: dict[str, Any] | None = None,
) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "text": plain(text, BUTTON_LIMIT),
        "action_id": action_id,
        "value": value,
    }
    if style:
        element["style"] = style
    if confirm_dialog:
        element["confirm"] = confirm_dialog
    return element


def reply(text: str, *blocks: dict[str, Any]) -> Message:
    """A thread reply: ``text`` in plain words, the blocks as given."""
    return Message(text=text, blocks=list(blocks))


def approvers_text(record: RequestRecord) -> str:
    """``<@A> and <@B>``: everyone whose approval the run carries."""
    names = [mention(u) for u in record.approvers] or [mention(record.decided_by)]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
