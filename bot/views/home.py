"""The App Home tab of one analyst: what waits for their approval, their own recent
requests, and the runs in progress, each line linking to its thread."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.records import RequestRecord
from bot.views.common import context, header, section, slack_date
from bot.views.status import listed_lines

__all__ = ["HOME_LIST_LIMIT", "MAX_HOME_BLOCKS", "home_view"]

MAX_HOME_BLOCKS = 100  # Slack's limit for a view
HOME_LIST_LIMIT = 30  # per list: three full lists and their headers fit in 100 blocks


def _list(
    title: str, records: Sequence[RequestRecord], workspace: str | None, empty: str, who: bool
) -> list[dict[str, Any]]:
    lines = listed_lines(records, workspace, who=who)  # a batch is one line
    blocks: list[dict[str, Any]] = [header(f"{title} ({len(lines)})")]
    if not records:
        return [*blocks, context(empty)]
    blocks += [section(line) for line in lines[:HOME_LIST_LIMIT]]
    return blocks


def home_view(
    waiting: Sequence[RequestRecord],
    mine: Sequence[RequestRecord],
    running: Sequence[RequestRecord],
    workspace: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The ``home`` view for ``views.publish``; at most ``MAX_HOME_BLOCKS`` blocks."""
    blocks = [
        *_list(
            "Waiting for your approval",
            waiting,
            workspace,
            "Nothing waits for your approval.",
            who=True,
        ),
        {"type": "divider"},
        *_list("Your recent requests", mine, workspace, "You have asked for no runs yet.", False),
        {"type": "divider"},
        *_list("Runs in progress", running, workspace, "Nothing is running now.", who=True),
        context(f"Updated {slack_date(now)}. Open this tab again to refresh it."),
    ]
    return {"type": "home", "blocks": blocks[:MAX_HOME_BLOCKS]}
