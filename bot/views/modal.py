"""The request modal and the ``help`` text: what an analyst sees when asking for a run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.ids import Action, Block, Callback, row_block
from bot.modal import MAX_ROWS, ModalMetadata, ModalValues, RowKind
from bot.views.common import channel_link, clip, escape, mrkdwn, plain
from commands.models import MAX_COMMANDS
from commands.playbooks import Playbook

__all__ = ["help_text", "notice_modal", "request_modal"]

INPUT_MAX = 3000  # Slack's largest plain_text_input max_length
DEVICE_MAX = 3000  # a batch names up to 20 devices (bot/device_list.py)

_KINDS: dict[RowKind, str] = {
    "PutFile": "copy a library file to the device",
    "RunScript": "run a library script",
    "GetFile": "collect a file from the device",
}
_ROW_HINTS: dict[RowKind | None, str] = {
    "PutFile": "PutFile: the name of a file in the live response library, e.g. collect.ps1",
    "RunScript": (
        "RunScript: the library script's name, then its arguments, e.g. collect.ps1 -Days 3"
    ),
    "GetFile": r"GetFile: the full path of a file on the device, e.g. C:\Windows\Temp\out.zip",
    None: (
        "PutFile: a library file name (collect.ps1). RunScript: the script name, then its"
        r" arguments (collect.ps1 -Days 3). GetFile: a full path on the device"
        r" (C:\Windows\Temp\out.zip)."
    ),
}
_TEXT_HINT = (
    f"One command per line or separated by ;. PutFile commands first, then RunScript, then"
    f" GetFile; at most {MAX_COMMANDS}. Put a value in double quotes when it holds a ; e.g."
    r" putfile collect.ps1; runscript collect.ps1 -Days 3; getfile C:\Windows\Temp\collect.zip"
)
_TEXT_EXAMPLE = "putfile collect.ps1; runscript collect.ps1 -Days 3"


def _text_input(
    block_id: str,
    label: str,
    initial: str,
    *,
    max_length: int = INPUT_MAX,
    multiline: bool = False,
    optional: bool = True,
    placeholder: str | None = None,
    hint: str | None = None,
) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": Action.VALUE,
        "multiline": multiline,
        "max_length": max_length,
    }
    if initial:
        element["initial_value"] = initial[:max_length]
    if placeholder:
        element["placeholder"] = plain(placeholder, 150)
    block: dict[str, Any] = {
        "type": "input",
        "block_id": block_id,
        "label": plain(label, 2000),
        "optional": optional,
        "element": element,
    }
    if hint:
        block["hint"] = plain(hint, 2000)
    return block


def _option(kind: RowKind) -> dict[str, Any]:
    return {"text": plain(f"{kind} — {_KINDS[kind]}", 75), "value": kind}


def _file_picker(index: int, file: str) -> dict[str, Any]:
    """A library file picker; Slack loads its options from the bot as the analyst types."""
    picker: dict[str, Any] = {
        "type": "external_select",
        "action_id": Action.LIBRARY_FILE,
        "placeholder": plain("Search the library", 150),
        "min_query_length": 0,
    }
    if file:
        picker["initial_option"] = {"text": plain(file, 75), "value": file[:150]}
    return {
        "type": "input",
        "block_id": row_block(index, "file"),
        "label": plain("Library file (PutFile, RunScript)", 2000),
        "optional": True,
        "element": picker,
        "hint": plain(
            "Pick it here and leave only a RunScript's arguments in the box below, or type"
            " everything in the box.",
            2000,
        ),
    }


def _playbook_blocks(playbooks: Sequence[Playbook], values: ModalValues) -> list[dict[str, Any]]:
    if not playbooks:
        return []
    options = [
        {
            "text": plain(f"{p.name} — {p.description}" if p.description else p.name, 75),
            "value": p.name,
        }
        for p in playbooks[:100]
    ]
    select: dict[str, Any] = {
        "type": "static_select",
        "action_id": Action.VALUE,
        "placeholder": plain("Choose a playbook", 150),
        "options": options,
    }
    chosen = next((o for o in options if o["value"] == values.playbook), None)
    if chosen is not None:
        select["initial_option"] = chosen
    usage = "; ".join(p.usage() for p in playbooks)
    return [
        {
            "type": "input",
            "block_id": Block.PLAYBOOK,
            "label": plain("Playbook (instead of the commands below)", 2000),
            "optional": True,
            "element": select,
        },
        _text_input(
            Block.PLAYBOOK_PARAMS,
            "Playbook parameters",
            values.playbook_params,
            max_length=1000,
            placeholder="name=value name2=value2",
            hint=f"Each as name=value, separated by spaces. {usage}",
        ),
    ]


def _row(index: int, kind: RowKind | None, value: str, file: str = "") -> list[dict[str, Any]]:
    select: dict[str, Any] = {
        "type": "static_select",
        "action_id": Action.VALUE,
        "placeholder": plain("Choose a command", 150),
        "options": [_option(k) for k in _KINDS],
    }
    if kind in _KINDS:
        select["initial_option"] = _option(kind)
    kind_block = {
        "type": "input",
        "block_id": row_block(index, "type"),
        "label": plain(f"Command {index + 1}", 2000),
        "optional": True,
        "element": select,
    }
    value_block = _text_input(
        row_block(index, "value"),
        "File name, script and arguments, or path",
        value,
        hint=_ROW_HINTS[kind if kind in _KINDS else None],
    )
    return [kind_block, _file_picker(index, file), value_block]


def _row_buttons(rows: int) -> list[dict[str, Any]]:
    elements = []
    if rows < MAX_ROWS:
        elements.append(_modal_button("Add command", Action.ADD_ROW))
    if rows > 1:
        elements.append(_modal_button("Remove last", Action.REMOVE_ROW))
    if not elements:
        return []
    return [{"type": "actions", "block_id": Block.ROW_BUTTONS, "elements": elements}]


def _modal_button(text: str, action_id: str) -> dict[str, Any]:
    return {"type": "button", "text": plain(text, 75), "action_id": action_id, "value": text}


def request_modal(
    meta: ModalMetadata,
    values: ModalValues | None = None,
    playbooks: Sequence[Playbook] = (),
) -> dict[str, Any]:
    """The request modal with ``meta.rows`` command rows, filled with ``values`` if given."""
    values = values or ModalValues()
    rows = min(max(meta.rows, 1), MAX_ROWS)
    intro = (
        "Ask for a live response run on one device. It is posted in"
        f" {channel_link(meta.channel_id)}, and nothing runs until a second analyst approves it."
        " Fill the command rows, or type the commands in the box below them."
    )
    blocks: list[dict[str, Any]] = [
        {"type": "context", "elements": [mrkdwn(intro)]},
        _text_input(
            Block.DEVICE,
            "Device",
            values.device,
            max_length=DEVICE_MAX,
            optional=False,
            placeholder="hostname or 40-character machine id",
            hint="Several (up to 20): ws-1, ws-2 ws-3; or tag:<Defender tag> for every device"
            " carrying it. One approval covers them all.",
        ),
        *_playbook_blocks(playbooks, values),
    ]
    for index in range(rows):
        kind, value = values.rows[index] if index < len(values.rows) else (None, "")
        file = values.row_files[index] if index < len(values.row_files) else ""
        blocks += _row(index, kind, value, file)
    blocks += _row_buttons(rows)
    blocks += [
        _text_input(
            Block.COMMANDS_TEXT,
            "Or type the commands",
            values.commands_text,
            multiline=True,
            placeholder=_TEXT_EXAMPLE,
            hint=_TEXT_HINT,
        ),
        _text_input(
            Block.JUSTIFICATION,
            "Justification",
            values.justification,
            multiline=True,
            optional=False,
            placeholder="Why this run is needed: the incident or alert, what you expect to find",
        ),
        _text_input(Block.TICKET, "Ticket reference", values.ticket, max_length=200),
    ]
    return {
        "type": "modal",
        "callback_id": Callback.REQUEST_MODAL,
        "title": plain("Live response", 24),
        "submit": plain("Request approval", 24),
        "close": plain("Cancel", 24),
        "private_metadata": meta.model_dump_json(),
        "blocks": blocks,
    }


def notice_modal(message: str) -> dict[str, Any]:
    """A modal that only says ``message`` (for instance why no request can be made)."""
    return {
        "type": "modal",
        "title": plain("Live response", 24),
        "close": plain("Close", 24),
        "blocks": [{"type": "section", "text": mrkdwn(clip(message, 2900))}],
    }


_HELP = """\
*Live response: asking for a run*
`{cmd}` opens the request form.
`{cmd} <device> <commands>` opens it filled in: the device first (host name or \
40-character machine id), then the commands. Several devices, written without spaces \
(`ws-1,ws-2`) or `tag:<name>`, make one batch request: one approval, one run per device.
`{cmd} <device> playbook <name> [param=value…]` opens it with a playbook (a named, reviewed \
command sequence) chosen and its parameters filled in.

*Commands*
• `putfile <library file>` copies a file from the live response library to the device
• `runscript <library script> [arguments]` runs a library script; everything after the \
script name is its arguments
• `getfile <full path>` collects a file from the device
Separate commands with `;` or new lines. Put a value in double quotes when it holds a `;` \
or starts or ends with spaces, and write `""` for a `"` inside quotes: \
`getfile "C:\\Temp\\a;b.txt"`
At most {max_commands} commands. Defender runs PutFile commands first, then RunScript, then \
GetFile: write them in that order.

*Example*
```{cmd} WS-0423 putfile collect.ps1; runscript collect.ps1 -Days 3; \
getfile C:\\Windows\\Temp\\collect.zip```

*Approval*
The request is posted in the channel with the device, the commands and your justification. \
A second analyst (not you) approves or rejects it; you can withdraw it while it waits, and it \
expires if nobody decides. Once approved it goes to Defender, progress and results are posted \
in the request's thread, and the run can be cancelled from the request message."""


def help_text(command: str) -> str:
    """The ephemeral answer to ``<command> help``, escaped for mrkdwn."""
    return escape(_HELP.replace("{max_commands}", str(MAX_COMMANDS)).replace("{cmd}", command))
