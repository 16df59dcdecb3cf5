"""The request message in the channel, rewritten in place as the request moves on."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.ids import DIGEST_IN_BUTTON, Action, approve_value
from bot.records import RequestRecord, RequestState
from bot.views.common import (
    Message,
    approvers_text,
    button,
    clip,
    code_block,
    code_fits,
    command_count,
    command_state,
    command_text,
    confirm,
    context,
    device_name,
    escape,
    header,
    human_duration,
    mention,
    outcome,
    outcome_mark,
    plural,
    seconds_between,
    section,
    shows_progress,
    slack_date,
    utc_text,
)

__all__ = ["request_message", "state_words"]

# Bounds on what user or device text may take, so the whole message stays well under the
# ~13k characters of blocks Slack accepts.
JUSTIFICATION_LIMIT = 1200
TICKET_LIMIT = 200
COMMANDS_BUDGET = 4800
ERRORS_BUDGET = 600
DEVICE_VALUE_LIMIT = 120

_FINAL_MARKS = {"Succeeded": "✅", "Failed": "❌", "TimeOut": "⏱️", "Cancelled": "🚫"}

_STATE_MARKS: dict[RequestState, tuple[str, str]] = {
    RequestState.AWAITING_APPROVAL: ("⏳", "awaiting approval"),
    RequestState.APPROVED: ("🕒", "approved, queued"),
    RequestState.SUBMITTING: ("📤", "approved, submitting to Defender"),
    RequestState.UNKNOWN: ("❓", "submitted, confirming with Defender"),
    RequestState.PENDING: ("📨", "submitted, pending on the device"),
    RequestState.IN_PROGRESS: ("▶️", "running"),
    RequestState.REJECTED: ("⛔", "rejected"),
    RequestState.WITHDRAWN: ("↩️", "withdrawn"),
    RequestState.EXPIRED: ("⌛", "expired"),
    RequestState.REFUSED: ("🛑", "refused by Defender"),
}


def state_words(record: RequestRecord) -> tuple[str, str]:
    """The state's emoji and words; a finished run says Defender's own final word."""
    if record.state is RequestState.FINISHED:
        word = record.action_status or "finished"
        return _FINAL_MARKS.get(word, "🏁"), word
    return _STATE_MARKS.get(record.state, ("❔", str(record.state)))


def request_message(record: RequestRecord, now: datetime) -> Message:
    """The channel message for ``record`` in its current state."""
    mark, words = state_words(record)
    blocks: list[dict[str, Any]] = [
        header(f"{mark} Live response request — {words}"),
        _who(record),
        _device(record, now),
        *(_preflight(record) or _warnings(record)),
        *_commands(record),
        *_binding(record),
        section(_status(record, now)),
        *_buttons(record),
        context(f"Request `{clip(record.id, 100)}`"),
    ]
    return Message(text=_summary(record, now), blocks=blocks)


def _quote(text: str, limit: int) -> str:
    """``text`` as a mrkdwn block quote of at most ``limit`` characters, blank lines dropped."""
    quoted: list[str] = []
    used = 0
    for raw in (line for line in text.splitlines() if line.strip()):
        room = limit - used - 5  # ">" and a line break, and room left for a closing ">…"
        if room < 2:
            quoted.append(">…")
            break
        line = clip(raw, room)
        quoted.append(f">{line}")
        used += len(line) + 2
        if len(line) < len(escape(raw)):
            break
    return "\n".join(quoted) or ">(none)"


def _who(record: RequestRecord) -> dict[str, Any]:
    lines = [
        f"*Requested by* {mention(record.requester)}",
        "*Justification*",
        _quote(record.justification, JUSTIFICATION_LIMIT),
    ]
    if record.ticket:
        lines.append(f"*Ticket* {clip(record.ticket, TICKET_LIMIT)}")
    return section("\n".join(lines))


def _machine_text(record: RequestRecord, key: str) -> str:
    value = record.machine.get(key)
    return clip(str(value), DEVICE_VALUE_LIMIT) if value not in (None, "") else "unknown"


def _last_seen(record: RequestRecord, now: datetime) -> str:
    raw = record.machine.get("last_seen")
    if not isinstance(raw, str) or not raw:
        return "unknown"
    try:
        seen = datetime.fromisoformat(raw)
    except ValueError:
        return clip(raw, DEVICE_VALUE_LIMIT)
    return f"{slack_date(seen)} ({human_duration(seconds_between(seen, now))} ago)"


def _device(record: RequestRecord, now: datetime) -> dict[str, Any]:
    machine = record.machine
    tags = machine.get("machine_tags")
    tag_text = ", ".join(str(t) for t in tags) if isinstance(tags, list) and tags else "none"
    os_text = " ".join(
        str(machine[k]) for k in ("os_platform", "os_version") if machine.get(k) not in (None, "")
    )
    fields = [
        f"*Name*\n{clip(device_name(record), DEVICE_VALUE_LIMIT)}",
        f"*Machine id*\n`{clip(str(machine.get('id') or record.machine_id), 60)}`",
        f"*OS*\n{clip(os_text, DEVICE_VALUE_LIMIT) or 'unknown'}",
        f"*Health*\n{_machine_text(record, 'health_status')}",
        f"*Last seen*\n{_last_seen(record, now)}",
        f"*Device group*\n{_machine_text(record, 'rbac_group_name')}",
        f"*Tags*\n{clip(tag_text, 200)}",
    ]
    return section("*Device*", fields)


_PREFLIGHT_MARKS = {"ok": "✅", "warn": "⚠️", "block": "⛔"}
PREFLIGHT_LIMIT = 2400


def _preflight(record: RequestRecord) -> list[dict[str, Any]]:
    """The checks made at submit (``bot.preflight``), as stored with the request.

    Like the warnings they replace, they go once the request is closed: by then they
    describe a device as it was, and the thread says what happened.
    """
    if record.state.is_closed:
        return []
    findings = record.machine.get("preflight")
    if not isinstance(findings, list) or not findings:
        return []
    lines = ["*Preflight*"]
    allowance = max(120, PREFLIGHT_LIMIT // len(findings))
    for finding in findings[:20]:
        if not isinstance(finding, dict):
            continue
        mark = _PREFLIGHT_MARKS.get(str(finding.get("level")), "❔")
        lines.append(f"{mark} {clip(str(finding.get('text', '')), allowance)}")
    return [section("\n".join(lines))]


def _playbook_line(record: RequestRecord) -> str:
    playbook = record.machine.get("playbook")
    if not isinstance(playbook, dict) or not playbook.get("name"):
        return ""
    params = playbook.get("params")
    shown = (
        " ".join(f"{k}={v}" for k, v in params.items())
        if isinstance(params, dict) and params
        else "defaults"
    )
    return (
        f"\n*Playbook* `{clip(str(playbook['name']), 80)}` ({clip(shown, 300)}),"
        " expanded in full below"
    )


def _warnings(record: RequestRecord) -> list[dict[str, Any]]:
    if record.state.is_closed:
        return []
    lines = []
    health = record.machine.get("health_status")
    if health != "Active":
        shown = clip(str(health), 60) if health else "unknown"
        lines.append(
            f"⚠️ The device is not Active (health: {shown}): the run will queue until it connects."
        )
    active = record.machine.get("active_action_id")
    if active:
        lines.append(
            "⚠️ The device already has a live response action running"
            f" (`{clip(str(active), 100)}`): this run waits for it."
        )
    return [section("\n".join(lines))] if lines else []


def _commands(record: RequestRecord) -> list[dict[str, Any]]:
    count = command_count(record)
    allowance = max(300, COMMANDS_BUDGET // max(count, 1))
    blocks = [section(f"*Commands* ({count}, run in this order){_playbook_line(record)}")]
    for index in range(count):
        text = command_text(record, index + 1) or ""
        block = code_block(text, allowance)
        line = f"*{index + 1}.*"
        if shows_progress(record):
            line += f" {_progress(record, index, max(60, ERRORS_BUDGET // count))}"
        if not code_fits(text, allowance):
            line += f" _(shortened here: {len(text):,} characters in full)_"
        blocks.append(section(f"{line}\n{block}"))
    return blocks


def _binding(record: RequestRecord) -> list[dict[str, Any]]:
    """What the approvals are bound to: the library files' hashes and the payload digest."""
    if not record.digest:
        return []
    lines = [
        f"`{clip(name, 80)}` sha256 `{clip(sha or 'unknown', 70)}`"
        for name, sha in sorted(record.library.items())[:10]
    ]
    lines.append(f"Approval covers payload `{record.digest[:DIGEST_IN_BUTTON]}`")
    return [context("\n".join(lines))]


def _progress(record: RequestRecord, index: int, errors_limit: int) -> str:
    word = outcome(record, index)
    errors = command_state(record, index).errors
    if word == "Failed" and errors:
        return f"{outcome_mark(word)} — {clip(errors, errors_limit)}"
    return outcome_mark(word)


def _by(verb: str, user: str | None, when: datetime | None) -> str:
    at = f" at {slack_date(when)}" if when else ""
    return f"{verb} by {mention(user)}{at}."


def _status(record: RequestRecord, now: datetime) -> str:
    """What happened and what happens next, for the state the request is in."""
    state = record.state
    if state is RequestState.AWAITING_APPROVAL:
        # An absolute time only: a countdown would be frozen at posting and wrong soon after.
        if record.approvals_needed <= 1:
            return (
                f"Approval expires {slack_date(record.expires_at)}."
                " A second analyst approves or rejects it; the requester can withdraw it."
            )
        given = len(record.approvals)
        so_far = f" so far: {approvers_text(record)}" if given else ""
        return (
            f"Needs {record.approvals_needed} distinct approvers ({given} of"
            f" {record.approvals_needed}{so_far}). Approval expires"
            f" {slack_date(record.expires_at)}. Any approver can reject it; the requester can"
            " withdraw it."
        )
    if state is RequestState.REJECTED:
        return _by("Rejected", record.decided_by, record.decided_at) + " Nothing ran."
    if state is RequestState.WITHDRAWN:
        return _by("Withdrawn", "the requester", record.decided_at) + " Nothing ran."
    if state is RequestState.EXPIRED:
        return f"Expired at {slack_date(record.expires_at)}: nobody approved it. Nothing ran."
    at = f" at {slack_date(record.decided_at)}" if record.decided_at else ""
    approved = f"Approved by {approvers_text(record)}{at}."
    return "\n".join([approved, *_run_lines(record)])


def _run_lines(record: RequestRecord) -> list[str]:
    """After approval: where the run is."""
    state = record.state
    if state is RequestState.APPROVED:
        return [f"Queued: {clip(record.note, 500)}" if record.note else "Queued for Defender."]
    if state is RequestState.SUBMITTING:
        return ["Submitting to Defender…"]
    if state is RequestState.UNKNOWN:
        return [
            "⚠️ Defender did not answer the submission. Checking whether it arrived before"
            " anything else: it will not be submitted twice."
        ]
    if state is RequestState.REFUSED:
        reason = clip(record.note or "no reason given", 1000)
        return [f"🛑 Defender refused it: {reason}", "Nothing ran."]
    if state is RequestState.FINISHED and record.action_id is None:
        # Cancelled before submission: Defender never had it, so it has no final status.
        who = mention(record.cancelled_by)
        return [f"Cancelled by {who} before it was submitted to Defender. Nothing ran."]
    if state is RequestState.FINISHED:
        return [_action_line(record), _final_line(record)]
    return [_action_line(record)]


def _action_line(record: RequestRecord) -> str:
    action = f"Defender action `{clip(record.action_id, 100)}`" if record.action_id else "Defender"
    parts = [action]
    if record.submitted_at:
        parts.append(f"submitted {slack_date(record.submitted_at)}")
    if record.started_at:
        parts.append(f"started {slack_date(record.started_at)}")
    return " · ".join(parts) + "."


def _final_line(record: RequestRecord) -> str:
    line = f"Defender's final status: *{clip(record.action_status or 'unknown', 60)}*"
    if record.submitted_at and record.finished_at:
        elapsed = human_duration(seconds_between(record.submitted_at, record.finished_at))
        line += f" after {elapsed} (finished {slack_date(record.finished_at)})"
    line += "."
    if record.cancelled_by:
        line += f" Cancelled by {mention(record.cancelled_by)}."
    return line


def _buttons(record: RequestRecord) -> list[dict[str, Any]]:
    device = device_name(record)
    count = plural(command_count(record), "command")
    if record.state is RequestState.AWAITING_APPROVAL:
        approve = confirm(
            "Approve this run?",
            f"Run {count} on {device}? It goes to Defender as soon as it is approved.",
            "Approve",
            "Back",
        )
        elements = [
            button(
                "Approve",
                Action.APPROVE,
                approve_value(record.id, record.digest),
                "primary",
                approve,
            ),
            button("Reject", Action.REJECT, record.id, "danger"),
            button("Withdraw (requester)", Action.WITHDRAW, record.id),
        ]
    elif record.state in (RequestState.APPROVED, RequestState.PENDING, RequestState.IN_PROGRESS):
        cancel = confirm(
            "Cancel this run?",
            f"Stop the run of {count} on {device}? Commands already finished stay done.",
            "Cancel the run",
            "Keep it",
        )
        elements = [button("Cancel run", Action.CANCEL, record.id, "danger", cancel)]
    else:
        return []
    return [{"type": "actions", "elements": elements}]


def _summary(record: RequestRecord, now: datetime) -> str:
    _, words = state_words(record)
    count = command_count(record)
    sentences = [
        f"Live response request from {mention(record.requester)} to run"
        f" {plural(count, 'command')} on {clip(device_name(record), 200)}: {clip(words, 100)}."
    ]
    state = record.state
    if state is RequestState.AWAITING_APPROVAL:
        sentences.append(f"Approval expires {utc_text(record.expires_at)}.")
        if record.approvals_needed > 1:
            sentences.append(f"Approvals: {len(record.approvals)} of {record.approvals_needed}.")
    elif state in (RequestState.REJECTED, RequestState.WITHDRAWN):
        sentences.append(f"{words.capitalize()} by {mention(record.decided_by)}.")
    elif state is RequestState.EXPIRED:
        sentences.append(f"Expired {utc_text(record.expires_at)}; nothing ran.")
    else:
        sentences.append(f"Approved by {approvers_text(record)}.")
    if state is RequestState.REFUSED:
        sentences.append(f"Defender refused it: {clip(record.note or 'no reason given', 300)}.")
    elif state is RequestState.APPROVED and record.note:
        sentences.append(f"Queued: {clip(record.note, 300)}.")
    if record.action_id:
        sentences.append(f"Defender action {clip(record.action_id, 100)}.")
    if state is RequestState.FINISHED and record.action_id:
        sentences.append(f"Defender's final status: {clip(words, 60)}.")
    if shows_progress(record):
        statuses = ", ".join(f"{i + 1} {outcome(record, i)}" for i in range(count))
        sentences.append(f"Commands: {clip(statuses, 800)}.")
    if record.cancelled_by:
        sentences.append(f"Cancelled by {mention(record.cancelled_by)}.")
    sentences.append(f"Justification: {clip(_one_line(record.justification), 300)}")
    if record.ticket:
        sentences.append(f"Ticket: {clip(_one_line(record.ticket), 100)}.")
    sentences.append(f"Request {clip(record.id, 100)}.")
    return " ".join(sentences)


def _one_line(text: str) -> str:
    return " ".join(text.split())
