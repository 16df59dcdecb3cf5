"""How a run ends, as the thread and the request message show it: failed, timed out,
queued on an offline device, refused by Defender."""

from __future__ import annotations

import json
from pathlib import Path

from bot.ids import Action
from bot.records import RequestState
from bot.sandbox._slack_records import Message
from tests.helpers.bot import APPROVER, BotHarness
from tests.helpers.defender import machine
from tests.helpers.runs import approve, run_bot, run_posts, wait_polls


def blocks_text(bot: BotHarness, message: Message) -> str:
    return json.dumps(bot.current(message).blocks)


def test_a_failed_command_skips_the_rest_and_the_run_ends_failed(tmp_path: Path) -> None:
    with run_bot(tmp_path) as bot:
        message = approve(bot, "ws-001.contoso.com", "runscript fail.ps1; getfile C:\\Temp\\a.txt")
        bot.wait_reply(message, "Submitted to Defender")
        bot.advance(60)
        bot.wait_reply(message, "Finished on")
        bot.wait(bot.settled, "the outbox to drain")

        replies = bot.thread(message)
        failed = next(i for i, r in enumerate(replies) if r.startswith("Command 1 of 2"))
        assert replies[failed] == "Command 1 of 2 (runscript fail.ps1): Failed — boom"
        skipped = replies[failed + 1]
        assert skipped.startswith("Not run because command 1 failed")
        assert "Command 2 of 2 (getfile C:\\Temp\\a.txt)" in skipped
        final = replies[failed + 2]
        assert final.startswith("Finished on ws-001.contoso.com: Failed after 4 s.")
        assert "0 of 2 commands completed" in final
        assert len(replies) == failed + 3  # nothing after the final word
        assert not any("Command 2 of 2" in r and "Completed" in r for r in replies)

        current = bot.current(message)
        assert ": Failed." in current.text and "1 Failed, 2 skipped" in current.text
        assert "Failed" in current.blocks[0]["text"]["text"]
        assert bot.buttons(message) == set()
        assert bot.slack.uploads() == []
        assert not any(
            "GetLiveResponseResultDownloadLink" in r.path for r in bot.defender.sim.requests
        )


def test_a_script_that_never_ends_times_out(tmp_path: Path) -> None:
    with run_bot(tmp_path) as bot:
        message = approve(bot, "ws-001.contoso.com", "runscript hang.ps1")
        bot.wait_reply(message, "Submitted to Defender")
        bot.advance(5)
        bot.wait_reply(message, "Running on ws-001.contoso.com")
        bot.advance(300)
        wait_polls(bot)
        assert not any("Finished" in r for r in bot.thread(message))

        bot.advance(300)  # past the 600 s script time-out
        final = bot.wait_reply(message, "Finished on")
        assert "TimeOut after 10 min" in final
        assert any(
            r.startswith("Command 1 of 1 (runscript hang.ps1): Failed") and "timed out" in r
            for r in bot.thread(message)
        )
        bot.wait(bot.settled, "the outbox to drain")
        assert ": TimeOut." in bot.current(message).text
        assert bot.record(message).action_status == "TimeOut"
        assert bot.slack.uploads() == []


def test_an_offline_device_queues_the_run_until_it_connects(tmp_path: Path) -> None:
    with run_bot(tmp_path) as bot:
        message = bot.request("laptop-7.contoso.com", "runscript ok.ps1")
        assert "The device is not Active (health: Inactive)" in blocks_text(bot, message)
        assert "the run will queue until it connects" in blocks_text(bot, message)

        bot.click(Action.APPROVE, message, APPROVER)
        bot.wait_reply(message, "Submitted to Defender")
        for _ in range(3):
            bot.advance(600)
            wait_polls(bot)
        replies = bot.thread(message)
        assert [r.split(" ")[0] for r in replies] == ["Approved", "Submitted"]
        assert bot.record(message).state is RequestState.PENDING
        assert "pending on the device" in bot.current(message).text
        [action] = bot.defender.sim.actions()
        assert action["status"] == "Pending"

        bot.defender.sim.set_online(machine(4))
        bot.advance(2)
        bot.wait_reply(message, "Running on laptop-7.contoso.com")
        bot.advance(10)
        final = bot.wait_reply(message, "Finished on")
        assert ": Succeeded after" in final
        bot.wait(bot.settled, "the outbox to drain")
        assert ": Succeeded." in bot.current(message).text
        assert "not Active" not in blocks_text(bot, message)  # a closed request warns no more
        assert len(run_posts(bot)) == 1


def test_defender_refusing_the_run_is_said_once_and_not_retried(tmp_path: Path) -> None:
    with run_bot(tmp_path) as bot:
        message = approve(bot, "dc-01.contoso.com", "runscript ok.ps1")
        refused = bot.wait_reply(message, "refused")
        assert refused == (
            "Defender refused to run it: DisallowedOperation: Live response is not allowed on"
            " machines of device group Workstations. Nothing ran."
        )
        bot.wait_state(message, RequestState.REFUSED)
        for _ in range(3):  # more passes over what is due: a refusal is never resubmitted
            bot.store_runtime.tracker.tick()
        bot.wait(bot.settled, "the outbox to drain")

        assert len(run_posts(bot)) == 1
        assert bot.defender.sim.actions() == []
        assert [r for r in bot.thread(message) if "refused" in r] == [refused]
        current = bot.current(message)
        assert "refused by Defender" in current.text
        assert "Live response is not allowed on machines of device group" in current.text
        assert bot.buttons(message) == set()


def test_a_device_that_never_connects_times_out_in_the_queue_with_nothing_run(
    tmp_path: Path,
) -> None:
    with run_bot(tmp_path) as bot:
        message = approve(bot, "laptop-7.contoso.com", "runscript ok.ps1; getfile C:\\Temp\\a.txt")
        bot.wait_reply(message, "Submitted to Defender")
        bot.advance(2 * 3600 + 1)  # Defender's queue limit
        final = bot.wait_reply(message, "Finished on")
        assert final.startswith("Finished on laptop-7.contoso.com: TimeOut after 2 h.")
        assert "0 of 2 commands completed" in final
        bot.wait(bot.settled, "the outbox to drain")
        # It never ran, and no command failed: nothing says otherwise.
        assert [r.split(" ")[0] for r in bot.thread(message)] == [
            "Approved",
            "Submitted",
            "Finished",
        ]
        current = bot.current(message)
        assert ": TimeOut." in current.text and "1 not run, 2 not run" in current.text
        assert bot.record(message).started_at is None
