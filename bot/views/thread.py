"""Replies in the request's thread: the run's progress, results and endings, one fact each."""

from __future__ import annotations

import re
from datetime import datetime

from bot.records import RequestRecord, RequestState
from bot.views.common import (
    Message,
    approvers_text,
    clip,
    code_block,
    code_blocks,
    command_count,
    command_state,
    command_text,
    context,
    device_name,
    exact_size,
    human_duration,
    human_size,
    mention,
    plural,
    reply,
    section,
    slack_date,
    utc_text,
)
from commands.wire import RunScriptOutput

__all__ = [
    "DEFAULT_LARGE_RESULT_NOTE",
    "INLINE_OUTPUT_MAX",
    "LARGE_RESULT_NOTE_FIELDS",
    "large_result_note",
    "output_fits_inline",
    "reply_cancelled",
    "reply_command",
    "reply_decision",
    "reply_expired",
    "reply_final",
    "reply_refused",
    "reply_result_error",
    "reply_result_too_large",
    "reply_runscript_result",
    "reply_skipped",
    "reply_started",
    "reply_submitted",
    "reply_waiting",
    "result_file_comment",
]

# Inline output is cut into code blocks of at most INLINE_BLOCK characters, escaped and fenced,
# and INLINE_OUTPUT_MAX in all: with a few of ``&<>`` in it, 2,800 characters of output fit.
INLINE_BLOCK = 2900
INLINE_OUTPUT_MAX = 8000
_COMMAND_SHOWN = 400
_ERRORS_SHOWN = 1500
_COMMAND_MARKS = {"Created": "⏳", "InProgress": "🔄", "Completed": "✅", "Failed": "❌"}


def _device(record: RequestRecord) -> str:
    return clip(device_name(record), 200)


def _action(record: RequestRecord) -> str:
    return clip(record.action_id or "not known yet", 100)


def _sentence(text: str, limit: int) -> str:
    """Someone else's message, escaped and bounded, ending with one full stop."""
    shown = clip(text.strip().rstrip("."), limit) or "no reason given"
    return shown if shown.endswith("…") else f"{shown}."


def _which(record: RequestRecord, position: int) -> str:
    """``Command 2 of 3 (runscript collect.ps1 -Days 3)`` in plain words, escaped and bounded."""
    label = f"Command {position} of {command_count(record)}"
    text = command_text(record, position)
    return f"{label} ({clip(text, _COMMAND_SHOWN)})" if text else label


def _which_block(record: RequestRecord, position: int, rest: str) -> str:
    """``*Command 2 of 3* <rest>`` then the command as a code block."""
    text = command_text(record, position)
    line = f"*Command {position} of {command_count(record)}* {rest}"
    return f"{line}\n{code_block(text, _COMMAND_SHOWN)}" if text else line


def reply_submitted(record: RequestRecord) -> Message:
    """Defender accepted the run."""
    when = record.submitted_at
    text = f"Submitted to Defender as action {_action(record)}" + (
        f" at {utc_text(when)}." if when else "."
    )
    shown = f"📨 Submitted to Defender as action `{_action(record)}`" + (
        f" at {slack_date(when)}." if when else "."
    )
    return reply(text, section(shown))


def reply_waiting(record: RequestRecord, reason: str) -> Message:
    """The approved run is queued, and why."""
    why = clip(reason, 1000)
    text = f"Approved and queued, not yet submitted to Defender: {why}"
    return reply(text, section(f"🕒 Approved and queued, not yet submitted to Defender: {why}"))


def reply_started(record: RequestRecord) -> Message:
    """Defender reports the action in progress on the device."""
    when = f" at {utc_text(record.started_at)}" if record.started_at else ""
    text = f"Running on {_device(record)}{when} (Defender action {_action(record)})."
    shown_when = f" at {slack_date(record.started_at)}" if record.started_at else ""
    return reply(text, section(f"▶️ Running on {_device(record)}{shown_when}."))


def reply_command(record: RequestRecord, position: int, status: str, errors: str | None) -> Message:
    """One command reached ``status`` (Defender's ``commandStatus``)."""
    word = clip(status, 60)
    detail = f" — {clip(errors, _ERRORS_SHOWN)}" if errors else ""
    text = f"{_which(record, position)}: {word}{detail}"
    mark = f"{_COMMAND_MARKS.get(status, '❔')} {word}"
    return reply(text, section(_which_block(record, position, f"{mark}{detail}")))


def reply_skipped(record: RequestRecord, positions: list[int]) -> Message:
    """Commands that did not run because an earlier one failed."""
    failed = next(
        (
            i + 1
            for i in range(command_count(record))
            if command_state(record, i).status == "Failed"
        ),
        None,
    )
    cause = f"command {failed} failed" if failed else "an earlier command failed"
    listed = "; ".join(_which(record, p) for p in positions[:10]) or "none"
    text = f"Not run because {cause}: {listed}."
    lines = [f"⏭️ *Not run* because {cause}:"]
    lines += [f"• {_which(record, p)}" for p in positions[:10]]
    return reply(text, section("\n".join(lines)))


def reply_final(record: RequestRecord, elapsed_seconds: float) -> Message:
    """Defender's final word on the action, and how long it took."""
    word = clip(record.action_status or "unknown", 60)
    elapsed = human_duration(elapsed_seconds)
    done = sum(1 for s in record.command_states if s.status == "Completed")
    count = command_count(record)
    text = (
        f"Finished on {_device(record)}: {word} after {elapsed}."
        f" {done} of {plural(count, 'command')} completed. Defender action {_action(record)}."
    )
    shown = (
        f"🏁 Finished: *{word}* after {elapsed}. {done} of {plural(count, 'command')} completed."
    )
    return reply(text, section(shown))


def reply_cancelled(record: RequestRecord, user: str) -> Message:
    """Someone cancelled the run; what Defender says about it."""
    if record.action_id is None:
        confirms = "It had not been submitted to Defender: nothing ran."
    elif record.action_status == "Cancelled":
        confirms = "Defender confirms: Cancelled."
    elif record.action_status:
        confirms = f"Defender's status: {clip(record.action_status, 60)}."
    else:
        confirms = "Waiting for Defender to confirm."
    text = f"{mention(user)} cancelled the run on {_device(record)}. {confirms}"
    return reply(text, section(f"🚫 {text}"))


def reply_start_deadline(record: RequestRecord, deadline: datetime) -> Message:
    """The approval said "start by": the run did not start in time, so it is called off."""
    if record.action_id is None:
        what = "It was never submitted to Defender: nothing ran."
    else:
        what = f"Its queued Defender action {_action(record)} is being cancelled: nothing ran."
    text = (
        f"The run on {_device(record)} did not start by {utc_text(deadline)}, the deadline"
        f" its approval set. {what} Ask again if it is still needed."
    )
    shown = (
        f"⌛ The run on {_device(record)} did not start by {slack_date(deadline)}, the deadline"
        f" its approval set. {what} Ask again if it is still needed."
    )
    return reply(text, section(shown))


def reply_overtime(record: RequestRecord, running_seconds: float, limit_seconds: float) -> Message:
    """Still in progress well past what Defender's own limits allow: someone should look."""
    text = (
        f"Still running on {_device(record)} after {human_duration(running_seconds)}, longer than"
        f" Defender's limits allow for these commands ({human_duration(limit_seconds)})."
        f" Check Defender action {_action(record)}; cancel it here if it is stuck."
    )
    return reply(text, section(f"⚠️ {text}"))


def reply_expired(record: RequestRecord) -> Message:
    """Nobody decided in time."""
    text = (
        f"Nobody approved this request by {utc_text(record.expires_at)}: it expired."
        " Nothing ran. Ask again if the run is still needed."
    )
    shown = (
        f"⌛ Nobody approved this request by {slack_date(record.expires_at)}: it expired."
        " Nothing ran. Ask again if the run is still needed."
    )
    return reply(text, section(shown))


def reply_refused(record: RequestRecord, message: str) -> Message:
    """Defender refused the submission."""
    text = f"Defender refused to run it: {_sentence(message, 1500)} Nothing ran."
    return reply(text, section(f"🛑 {text}"))


def reply_decision(record: RequestRecord) -> Message:
    """Approved, rejected or withdrawn, and by whom."""
    state = record.state
    if state is RequestState.EXPIRED:
        return reply_expired(record)
    if state is RequestState.AWAITING_APPROVAL:
        return reply("Awaiting approval.", section("⏳ Awaiting approval."))
    who = mention(record.decided_by)
    if state is RequestState.REJECTED:
        mark, said, after = "⛔", f"Rejected by {who}", " Nothing will run."
    elif state is RequestState.WITHDRAWN:
        mark, said, after = "↩️", "Withdrawn by the requester", " Nothing will run."
    else:
        mark, said, after = "✅", f"Approved by {approvers_text(record)}", ""
    when, shown_when = "", ""
    if record.decided_at:
        when, shown_when = (
            f" at {utc_text(record.decided_at)}",
            f" at {slack_date(record.decided_at)}",
        )
    return reply(f"{said}{when}.{after}", section(f"{mark} {said}{shown_when}.{after}"))


def reply_not_approved(record: RequestRecord, reason: str) -> Message:
    """The run was not submitted: what would run now is not what was approved."""
    said = (
        f"Not submitted: {reason}. Nothing ran. Ask for a new request so that it can be"
        " approved as it is now."
    )
    return reply(said, section(f"🛑 {clip(said, 2900)}"))


def reply_approval(record: RequestRecord, user: str) -> Message:
    """One approval: the decision when it was the last one needed, else how many remain."""
    if record.state is not RequestState.AWAITING_APPROVAL:
        return reply_decision(record)
    given, needed = len(record.approvals), record.approvals_needed
    left = needed - given
    more = f"{left} more approver{'s' if left != 1 else ''} needed"
    said = f"Approved by {mention(user)} ({given} of {needed}); {more}"
    return reply(f"{said}.", section(f"☑️ {said}."))


def output_fits_inline(output: str, inline_limit: int) -> bool:
    """The upload rule: output up to ``inline_limit`` characters is shown, longer is a file."""
    return len(output) <= inline_limit


def _output(output: str, inline_limit: int) -> tuple[list[str], str]:
    """The output's blocks and its plain words."""
    if not output:
        return ["*Output*: none"], "No output."
    if not output_fits_inline(output, inline_limit):
        return ["*Output*: attached as a file in this thread"], "Output attached as a file."
    pieces, whole = code_blocks(output, INLINE_BLOCK - 20, INLINE_OUTPUT_MAX)
    if not whole:
        pieces[-1] += f"\n_(shortened here: {len(output):,} characters in all)_"
    pieces[0] = f"*Output*\n{pieces[0]}"
    return pieces, f"Output: {clip(output, INLINE_OUTPUT_MAX)}"


def reply_runscript_result(
    record: RequestRecord,
    position: int,
    output: RunScriptOutput,
    size: int,
    sha256: str,
    inline_limit: int,
) -> Message:
    """A RunScript result: exit code, output (inline or attached), errors, size and SHA-256.

    Output is shown when ``output_fits_inline``; otherwise the caller attaches it as a file.
    """
    code = "unknown" if output.exit_code is None else str(output.exit_code)
    digest = f"Result {exact_size(size)}, SHA-256 {clip(sha256, 128)}"
    shown, said = _output(output.script_output, inline_limit)
    blocks = [section(_which_block(record, position, f"exited with code *{code}*"))]
    blocks += [section(piece) for piece in shown]
    words = [f"{_which(record, position)} exited with code {code}.", said]
    if output.script_errors:
        errors = code_block(output.script_errors, _ERRORS_SHOWN)
        blocks.append(section(f"*Errors*\n{errors}"))
        words.append(f"Errors: {clip(output.script_errors, _ERRORS_SHOWN)}")
    blocks.append(context(digest))
    words.append(f"{digest}.")
    return reply(" ".join(words), *blocks)


def result_file_comment(record: RequestRecord, position: int, size: int, sha256: str) -> str:
    """The initial comment of an uploaded result file."""
    return (
        f"Result of {_which(record, position)} on {_device(record)}:"
        f" {exact_size(size)}, SHA-256 {clip(sha256, 128)}."
        f" Request {clip(record.id, 100)}, Defender action {_action(record)}."
    )


def reply_result_error(record: RequestRecord, position: int, error: str) -> Message:
    """A result could not be fetched or read."""
    text = (
        f"Could not get the result of {_which(record, position)}: {_sentence(error, 1000)}"
        f" It may still be in the Defender portal (action {_action(record)})."
    )
    return reply(text, section(f"⚠️ {text}"))


DEFAULT_LARGE_RESULT_NOTE = (
    "Download it from the Microsoft Defender portal: Action center, History,"
    " action {action_id}, command {command}."
)
LARGE_RESULT_NOTE_FIELDS = ("action_id", "command", "request_id", "device", "file")
_NOTE_FIELD = re.compile(r"\{(\w+)\}")


def large_result_note(template: str, record: RequestRecord, position: int, name: str) -> str:
    """The operator's note (``LRBOT_LARGE_RESULT_NOTE``) with its ``{field}``s filled in.

    Only the names in ``LARGE_RESULT_NOTE_FIELDS`` are replaced (not ``str.format``: the
    note is configuration, and braces it holds otherwise stay as written).
    """
    values = {
        "action_id": record.action_id or "not known yet",
        "command": str(position),
        "request_id": record.id,
        "device": device_name(record),
        "file": name,
    }
    return _NOTE_FIELD.sub(lambda m: values.get(m[1], m[0]), template)


def reply_result_too_large(
    record: RequestRecord,
    position: int,
    name: str,
    size: int | None,
    sha256: str | None,
    limit: int,
    note: str,
) -> Message:
    """A result over the size the bot posts to Slack: its name, size and SHA-256, and where
    to get it (``note``, already filled in by ``large_result_note``).

    ``sha256`` None with a ``size``: reading stopped at a safety bound, so the result is more
    than ``size`` bytes and has no SHA-256.
    """
    shown_name = clip(name, 300)
    if size is None:
        facts = "its size is not known"
    elif sha256 is None:
        facts = (
            f"more than {exact_size(size)}; the bot stopped reading it there, so it has no SHA-256"
        )
    else:
        facts = f"{exact_size(size)}, SHA-256 {clip(sha256, 128)}"
    intro = (
        f"The result of {_which(record, position)} is over the {human_size(limit)} limit"
        " for posting here, so it is not uploaded"
    )
    shown_note = clip(note.strip(), 1500)
    text = f"{intro}: {shown_name}, {facts}. {shown_note}"
    shown = f"📦 {intro}: `{shown_name}`, {facts}.\n{shown_note}"
    return reply(text, section(shown))
