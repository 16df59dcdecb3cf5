"""Reading ids out of Slack payloads that may be forged or malformed."""

from __future__ import annotations

from typing import Any

__all__ = ["object_id"]


def object_id(body: dict[str, Any], key: str) -> str:
    """``body[key]["id"]`` (Slack's shape) or ``body[key]`` when it is a bare id; else "".

    Bolt lets both shapes through (``bot.inbound`` checks the ids are strings), and a
    listener that assumed the object failed on the other.
    """
    value = body.get(key)
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else ""
