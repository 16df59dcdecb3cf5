"""A request from the modal to Defender's final word, as the channel sees it."""

from __future__ import annotations

from pathlib import Path

from bot.ids import Action
from bot.records import RequestState
from tests.helpers.bot import APPROVER, REQUESTER, running_bot


def test_requested_approved_run_reports_every_command_and_its_results(
    tmp_path: Path, database_url: str
) -> None:
    """The whole bot, on SQLite and on PostgreSQL."""
    with running_bot(tmp_path, env={"LRBOT_DATABASE_URL": database_url}) as bot:
        message = bot.request(
            "ws-001.contoso.com",
            "putfile tool.exe; runscript ok.ps1 -Days 3; getfile C:\\Temp\\a.txt",
        )
        assert "awaiting approval" in message.text
        assert {str(Action.APPROVE), str(Action.REJECT), str(Action.WITHDRAW)} <= bot.buttons(
            message
        )

        bot.click(Action.APPROVE, message, APPROVER)
        bot.wait_reply(message, "Submitted to Defender as action")
        record = bot.wait_state(message, RequestState.PENDING, RequestState.IN_PROGRESS)
        [post] = bot.defender.api_requests("POST")
        assert post.body["Commands"][1] == {
            "type": "RunScript",
            "params": [
                {"key": "ScriptName", "value": "ok.ps1"},
                {"key": "Args", "value": "-Days 3"},
            ],
        }
        comment = post.body["Comment"]
        assert record.id in comment and "Rae Requester" in comment and "Abe Approver" in comment

        bot.advance(60)
        final = bot.wait_reply(message, "Succeeded")
        assert "3 of 3" in final
        bot.wait(bot.settled, "the outbox to drain")
        replies = bot.thread(message)
        for position in (1, 2, 3):
            assert any(f"Command {position} of 3" in r and "Completed" in r for r in replies)
        assert any("exited with code 0" in r and "all good" in r for r in replies)
        [upload] = bot.slack.uploads()
        assert upload.data == b"hello from ws-001\n" * 200  # decompressed
        assert upload.thread_ts == message.ts
        assert "Succeeded" in bot.current(message).text
        assert bot.buttons(message) == set()
        assert REQUESTER in bot.current(message).text
