"""Verbs and checks shared by the end-to-end tests of runs (``tests/e2e/test_runs_*.py``).

``run_bot`` is ``running_bot`` plus one check on the way out that every test of a run
wants: nothing the bot sent Slack carries a result's download link or Defender's address.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bot.ids import Action
from bot.sandbox._slack_records import Message
from commands.simulator import RecordedRequest, Scenario
from tests.helpers import leaks
from tests.helpers.bot import APPROVER, BotHarness, running_bot

__all__ = [
    "approve",
    "assert_no_links",
    "normalise",
    "polls",
    "run_bot",
    "run_posts",
    "wait_polls",
]

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_REQUEST_ID = re.compile(r"lr-[0-9a-z]{8}")
_UTC = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC")


@contextmanager
def run_bot(
    tmp_path: Path, scenario: Scenario | None = None, **options: Any
) -> Iterator[BotHarness]:
    """``running_bot``, checking at the end that no download link reached Slack."""
    with running_bot(tmp_path, scenario, **options) as bot:
        yield bot
        assert_no_links(bot)


def approve(bot: BotHarness, device: str, commands: str, approver: str = APPROVER) -> Message:
    """Request a run and approve it; the request message once the approval is in the thread."""
    message = bot.request(device, commands)
    bot.click(Action.APPROVE, message, approver)
    bot.wait_reply(message, "Approved by")
    return message


def run_posts(bot: BotHarness) -> list[RecordedRequest]:
    """Every ``runliveresponse`` POST Defender received, in order."""
    return [r for r in bot.defender.api_requests("POST") if r.path.endswith("/runliveresponse")]


def polls(bot: BotHarness) -> list[RecordedRequest]:
    """The tracker's batched polls: ``GET /api/machineactions?$filter=id eq …``."""
    return [
        r
        for r in bot.defender.api_requests("GET")
        if r.path == "/api/machineactions" and r.query.get("$filter", "").startswith("id eq ")
    ]


def wait_polls(bot: BotHarness, count: int = 2) -> None:
    """Wait for ``count`` more polls: the tracker has then acted on what the first one saw.

    One thread ticks, so a poll's answer is handled before the next poll is sent.
    """
    seen = len(polls(bot))
    bot.wait(lambda: len(polls(bot)) >= seen + count, f"{count} more polls of Defender")


def normalise(text: str) -> str:
    """A reply with what differs between two runs (ids, clock times) made the same."""
    text = _UUID.sub("<action>", text)
    text = _REQUEST_ID.sub("<request>", text)
    return _UTC.sub("<time>", text)


def assert_no_links(bot: BotHarness) -> None:
    """No Slack call carries a result link (``/blob/``, ``sig=``), Defender's address or a
    secret: the leak guard's Slack scan, run now."""
    guard = leaks.LeakGuard()
    guard.watch_slack(bot.slack, forbidden=(bot.defender.sim.base_url.split("://", 1)[1],))
    found = guard.scan_slack()
    assert not found, "\n".join(str(f) for f in found)
