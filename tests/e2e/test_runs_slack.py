"""Slack failing under a run: every reply still arrives, late and in order. And nothing
the bot says or logs carries a result's download link or a token."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.sandbox._slack_records import Message
from tests.helpers.bot import BOT_TOKEN, CHANNEL, BotHarness
from tests.helpers.defender import SECRET
from tests.helpers.runs import approve, normalise, run_bot

COMMANDS = "runscript ok.ps1; getfile C:\\Temp\\a.txt"


def run_to_the_end(bot: BotHarness, message: Message) -> list[str]:
    """Advance Defender past the run's end; the thread, normalised, once all was delivered."""
    bot.advance(60)
    bot.wait_reply(message, "Finished on")
    bot.wait(bot.settled, "the outbox to drain")
    return [normalise(r) for r in bot.thread(message)]


def failed_posts(bot: BotHarness) -> list[float]:
    return [c.time for c in bot.slack.calls("chat.postMessage") if c.status != 200]


@pytest.mark.parametrize("status", [429, 500])
def test_slack_failing_delays_replies_but_loses_none_and_keeps_their_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    # A 500 waits a random backoff of up to 4 s; its length is not what this is about.
    monkeypatch.setattr("bot.outbox._backoff", lambda attempts: 0.3)
    with run_bot(tmp_path) as bot:
        calm = approve(bot, "ws-001.contoso.com", COMMANDS)
        bot.wait_reply(calm, "Submitted to Defender")
        expected = run_to_the_end(bot, calm)
        assert len(expected) == 8  # approved, submitted, running, 2 × (done, result), final

        message = approve(bot, "ws-001.contoso.com", COMMANDS)
        bot.wait_reply(message, "Submitted to Defender")
        bot.slack.fail("chat.postMessage", status=status, retry_after=1, times=2)
        replies = run_to_the_end(bot, message)

        assert replies == expected
        first, second = failed_posts(bot)
        [delivered] = [
            c.time
            for c in bot.slack.calls("chat.postMessage")
            if c.status == 200 and c.time > second
        ][:1]
        if status == 429:  # Slack's Retry-After (1 s) was honoured, twice
            assert second - first >= 0.9 and delivered - second >= 0.9
        else:
            assert delivered > second
        assert len(bot.slack.uploads()) == 2
        assert [m.text for m in bot.slack.messages(CHANNEL)].count(bot.current(message).text) == 1


def test_no_log_record_carries_a_download_link_or_a_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with run_bot(tmp_path) as bot:
        message = approve(bot, "ws-001.contoso.com", COMMANDS)
        bot.wait_reply(message, "Submitted to Defender")
        replies = run_to_the_end(bot, message)
        assert len(replies) == 8
        secrets = {"sig=", bot.defender.tokens.token(), BOT_TOKEN, SECRET}
    ours = [r for r in caplog.records if not r.name.startswith("commands.simulator")]
    assert any(r.name.startswith("bot.") for r in ours)
    assert any("downloaded result" in r.getMessage() for r in ours)  # links were fetched
    for record in ours:
        logged = record.getMessage() + str(record.exc_text or "")
        for secret in secrets:
            assert secret not in logged, f"{record.name} logged {secret[:8]}…: {logged[:300]}"


def test_replies_owed_while_slack_is_down_survive_a_restart_once_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.outbox._backoff", lambda attempts: 0.3)
    with run_bot(tmp_path) as bot:
        calm = approve(bot, "ws-001.contoso.com", COMMANDS)
        bot.wait_reply(calm, "Submitted to Defender")
        expected = run_to_the_end(bot, calm)

        message = approve(bot, "ws-001.contoso.com", COMMANDS)
        bot.wait_reply(message, "Submitted to Defender")
        bot.slack.fail("chat.postMessage", status=503, times=None)  # down until cleared
        bot.advance(60)
        bot.wait(lambda: bot.record(message).action_status == "Succeeded", "the run's end")
        assert not bot.settled()
        bot.restart()
        bot.slack.clear_failures()
        assert run_to_the_end(bot, message) == expected
        assert len(bot.slack.uploads()) == 2
