"""What Slack would accept: every message and view the bot sent, checked with slack_sdk's models.

``View(**view).to_dict()`` and ``Block.parse`` validate lengths and counts, but skip what they
do not know (an unknown block type parses to None, an unknown key is dropped), so each block
must also come back from the model unchanged. Block ids must be unique within a message or a
view: Slack refuses duplicates.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import Block as SlackBlock
from slack_sdk.models.views import View

from bot.sandbox import FakeSlack

__all__ = ["assert_slack_accepts_everything_sent"]

_MESSAGE_METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral")
_VIEW_METHODS = ("views.open", "views.update", "views.push")


def _check_blocks(blocks: list[dict[str, Any]], limit: int, where: str) -> None:
    assert len(blocks) <= limit, f"{where}: {len(blocks)} blocks"
    for block in blocks:
        parsed = SlackBlock.parse(block)
        assert parsed is not None, f"{where}: slack_sdk does not know {block}"
        assert parsed.to_dict() == block, f"{where}: slack_sdk changed {block}"
    ids = [b["block_id"] for b in blocks if "block_id" in b]
    assert len(ids) == len(set(ids)), f"{where}: duplicate block ids {ids}"


def assert_slack_accepts_everything_sent(slack: FakeSlack) -> int:
    """Check every message and view in ``slack.calls()``; returns how many were checked."""
    checked = 0
    for number, call in enumerate(slack.calls()):
        where = f"call {number} ({call.method})"
        if call.method in _MESSAGE_METHODS:
            assert str(call.params.get("text") or "").strip(), f"{where}: no fallback text"
            _check_blocks(call.params.get("blocks") or [], 50, where)
        elif call.method in _VIEW_METHODS:
            view = call.params["view"]
            View(**view).to_dict()  # raises on a limit Slack enforces
            _check_blocks(view.get("blocks") or [], 100, where)
        else:
            continue
        checked += 1
    return checked
