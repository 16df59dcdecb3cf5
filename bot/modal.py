"""The request modal's data: what it carries in ``private_metadata`` and what it submits.

Reading a submission is pure and tolerant: Slack payloads are treated as untrusted input,
so a missing block, a wrong type or an absurd value becomes an empty field, never a crash.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.ids import Action, Block, row_block

__all__ = ["MAX_ROWS", "ModalMetadata", "ModalValues", "read_metadata", "read_values"]

MAX_ROWS = 10
RowKind = Literal["PutFile", "RunScript", "GetFile"]


class ModalMetadata(BaseModel):
    """Carried through the modal in ``private_metadata`` (at most 3,000 characters)."""

    model_config = ConfigDict(extra="ignore")

    channel_id: str = Field(max_length=32)
    rows: int = Field(1, ge=1, le=MAX_ROWS)


class ModalValues(BaseModel):
    """What the analyst typed or picked."""

    device: str = ""
    rows: list[tuple[RowKind | None, str]] = Field(default_factory=list)
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


def _text(values: dict[str, Any], block: str) -> str:
    element = values.get(block, {}).get(str(Action.VALUE), {})
    if not isinstance(element, dict):
        return ""
    value = element.get("value")
    if value is None:
        option = element.get("selected_option")
        value = option.get("value") if isinstance(option, dict) else None
    return value.strip() if isinstance(value, str) else ""


def read_values(state_values: object, rows: int) -> ModalValues:
    """The modal's ``view.state.values``, read defensively."""
    values: dict[str, Any] = state_values if isinstance(state_values, dict) else {}
    values = {k: v for k, v in values.items() if isinstance(v, dict)}
    row_values: list[tuple[RowKind | None, str]] = []
    for index in range(min(max(rows, 0), MAX_ROWS)):
        kind = _text(values, row_block(index, "type"))
        value = _text(values, row_block(index, "value"))
        row_values.append((kind if kind in ("PutFile", "RunScript", "GetFile") else None, value))  # type: ignore[arg-type]
    return ModalValues(
        device=_text(values, Block.DEVICE),
        rows=row_values,
        commands_text=_text(values, Block.COMMANDS_TEXT),
        justification=_text(values, Block.JUSTIFICATION),
        ticket=_text(values, Block.TICKET),
    )
