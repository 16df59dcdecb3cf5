"""The request modal's data: what it carries in ``private_metadata`` and what it submits.

Reading a submission is pure and tolerant: Slack payloads are treated as untrusted input,
so a missing block, a wrong type or an absurd value becomes an empty field, never a crash.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.ids import Action, Block, row_block

__all__ = [
    "MAX_ROWS",
    "ModalMetadata",
    "ModalValues",
    "clean_text",
    "read_metadata",
    "read_values",
]

MAX_ROWS = 10
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
RowKind = Literal["PutFile", "RunScript", "GetFile"]


class ModalMetadata(BaseModel):
    """Carried through the modal in ``private_metadata`` (at most 3,000 characters)."""

    model_config = ConfigDict(extra="ignore")

    # A Slack conversation id: the request is posted there, so nothing else will do.
    channel_id: str = Field(min_length=1, max_length=32, pattern=r"^[A-Z0-9]+$")
    rows: int = Field(1, ge=1, le=MAX_ROWS)


class ModalValues(BaseModel):
    """What the analyst typed or picked."""

    device: str = ""
    rows: list[tuple[RowKind | None, str]] = Field(default_factory=list)
    row_files: list[str] = Field(default_factory=list)  # each row's picked library file
    playbook: str = ""
    playbook_params: str = ""
    commands_text: str = ""
    justification: str = ""
    ticket: str = ""


def read_metadata(raw: object) -> ModalMetadata | None:
    """Parse ``private_metadata``; None when it is not ours."""
    if not isinstance(raw, str) or len(raw) > 3000:
        return None
    try:
        return ModalMetadata.model_validate_json(raw)
    except ValidationError:
        return None


def clean_text(text: str) -> str:
    """``text`` without NUL and with lone surrogates replaced (U+FFFD).

    Slack's JSON may carry both (``\\u0000``, ``\\ud800``); neither can be stored in every
    database (PostgreSQL refuses NUL) nor encoded as UTF-8 for Defender or Slack, so they
    would fail far from here, after the analyst's form was closed.
    """
    return _LONE_SURROGATE.sub("\ufffd", text.replace("\x00", ""))


def _text(values: dict[str, Any], block: str, action: str = Action.VALUE) -> str:
    element = values.get(block, {}).get(str(action), {})
    if not isinstance(element, dict):
        return ""
    value = element.get("value")
    if value is None:
        option = element.get("selected_option")
        value = option.get("value") if isinstance(option, dict) else None
    return clean_text(value).strip() if isinstance(value, str) else ""


def read_values(state_values: object, rows: int) -> ModalValues:
    """The modal's ``view.state.values``, read defensively."""
    values: dict[str, Any] = state_values if isinstance(state_values, dict) else {}
    values = {k: v for k, v in values.items() if isinstance(v, dict)}
    row_values: list[tuple[RowKind | None, str]] = []
    row_files: list[str] = []
    for index in range(min(max(rows, 0), MAX_ROWS)):
        row_files.append(_text(values, row_block(index, "file"), Action.LIBRARY_FILE))
        kind = _text(values, row_block(index, "type"))
        value = _text(values, row_block(index, "value"))
        row_values.append((kind if kind in ("PutFile", "RunScript", "GetFile") else None, value))  # type: ignore[arg-type]
    return ModalValues(
        device=_text(values, Block.DEVICE),
        rows=row_values,
        row_files=row_files,
        playbook=_text(values, Block.PLAYBOOK),
        playbook_params=_text(values, Block.PLAYBOOK_PARAMS),
        commands_text=_text(values, Block.COMMANDS_TEXT),
        justification=_text(values, Block.JUSTIFICATION),
        ticket=_text(values, Block.TICKET),
    )
