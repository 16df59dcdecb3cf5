"""Cancelling a run: at Defender once it was submitted, here before that; only the
requester or an approver may."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot import views
from bot.ids import Action
from bot.records import RequestState
from bot.sandbox._slack_records import Message
from commands.simulator import Fault
from tests.helpers.bot import APPROVER, APPROVER_2, CHANNEL, OUTSIDER, REQUESTER, BotHarness
from tests.helpers.runs import approve, polls, run_bot, run_posts, wait_polls


def cancels(bot: BotHarness) -> list[dict[str, object]]:
    """The bodies of Defender's cancel POSTs."""
    return [r.body for r in bot.defender.api_requests("POST") if r.path.endswith("/cancel")]


def running(bot: BotHarness, commands: str = "runscript hang.ps1") -> Message:
    message = approve(bot, "ws-001.contoso.com", commands)
    bot.wait_reply(message, "Submitted to Defender")
    bot.advance(2)
    bot.wait_reply(message, "Running on")
    # The message's rewrite follows its reply (and outdated rewrites are skipped): the
    # Cancel button may show a moment after the thread says the run started.
    bot.wait(lambda: str(Action.CANCEL) in bot.buttons(message), "the Cancel button")
    return message


def test_the_requester_cancels_a_running_run_at_defender(tmp_path: Path) -> None:
    with run_bot(tmp_path) as bot:
        message = running(bot)
        bot.click(Action.CANCEL, message, REQUESTER)

        said = bot.wait_reply(message, "cancelled the run")
        assert said.startswith(f"<@{REQUESTER}> cancelled the run on ws-001.contoso.com.")
        assert "Defender confirms: Cancelled" in said
        [body] = cancels(bot)
        record = bot.record(message)
        assert body == {"Comment": f"lrbot {record.id} | cancelled by Rae Requester ({REQUESTER})"}
        final = bot.wait_reply(message, "Finished on")
        assert ": Cancelled after" in final
        bot.wait(bot.settled, "the outbox to drain")

        replies = bot.thread(message)
        assert replies.index(said) < replies.index(final) == len(replies) - 1
        current = bot.current(message)
        assert ": Cancelled." in current.text and f"Cancelled by <@{REQUESTER}>" in current.text
        assert bot.buttons(message) == set()
        assert bot.record(message).action_status == "Cancelled"
        [action] = bot.defender.sim.actions()
        assert action["status"] == "Cancelled"
        assert bot.slack.ephemerals() == []


def test_the_cancel_is_told_before_the_final_status_even_when_defender_answers_late(
    tmp_path: Path,
) -> None:
    """Defender applies the cancel at once but its answer is slow: polls meanwhile see the
    action Cancelled. The thread still says who cancelled before Defender's final word."""
    with run_bot(tmp_path) as bot:
        message = running(bot)
        held = bot.defender.sim.fault(Fault(method="POST", path_regex="/cancel$", hold=True))
        bot.click(Action.CANCEL, message, REQUESTER)
        assert held.arrived.wait(10), "the cancel never reached Defender"
        seen = len(polls(bot))
        bot.wait(  # the tracker has seen the action Cancelled, and acted on it
            lambda: (
                len(polls(bot)) >= seen + 3 or any("Finished" in r for r in bot.thread(message))
            ),
            "three polls of the cancelled action",
        )
        [action] = bot.defender.sim.actions()
        assert action["status"] == "Cancelled"

        held.release()

        said = bot.wait_reply(message, "cancelled the run")
        final = bot.wait_reply(message, "Finished on")
        bot.wait(bot.settled, "the outbox to drain")
        replies = bot.thread(message)
        assert replies.index(said) < replies.index(final) == len(replies) - 1
        assert ": Cancelled after" in final


def test_an_outsider_may_not_cancel_and_an_approver_may(tmp_path: Path) -> None:
    with run_bot(tmp_path) as bot:
        message = running(bot)
        bot.wait(bot.settled, "the outbox to drain")
        before = (bot.thread(message), bot.current(message).text)
        bot.click(Action.CANCEL, message, OUTSIDER)
        [refusal] = bot.wait(lambda: bot.slack.ephemerals(OUTSIDER), "the outsider's refusal")
        assert "only the requester or an approver can cancel" in refusal.text.lower()
        assert refusal.channel == CHANNEL
        wait_polls(bot)
        bot.wait(bot.settled, "the outbox to drain")
        assert cancels(bot) == []
        assert (bot.thread(message), bot.current(message).text) == before
        assert bot.record(message).cancelled_by is None

        bot.click(Action.CANCEL, message, APPROVER_2)  # an approver through the user group
        said = bot.wait_reply(message, "cancelled the run")
        assert said.startswith(f"<@{APPROVER_2}> cancelled")
        [body] = cancels(bot)
        assert "cancelled by Ada Approver" in str(body["Comment"])
        bot.wait_reply(message, "Finished on")
        bot.wait(bot.settled, "the outbox to drain")
        assert f"Cancelled by <@{APPROVER_2}>" in bot.current(message).text
        assert bot.buttons(message) == set()


def test_a_queued_run_cancelled_before_submission_never_reaches_defender(
    tmp_path: Path,
) -> None:
    with run_bot(tmp_path) as bot:
        first = running(bot)  # holds the device
        second = approve(bot, "ws-001.contoso.com", "getfile C:\\Temp\\a.txt")
        waiting = bot.wait_reply(second, "Approved and queued")
        assert "another run of ours is active on this device" in waiting
        # Not at once: the rewrite that shows it comes after the reply, as in ``running``.
        bot.wait(lambda: str(Action.CANCEL) in bot.buttons(second), "the Cancel button")

        bot.click(Action.CANCEL, second, REQUESTER)
        said = bot.wait_reply(second, "cancelled the run")
        assert said == (
            f"<@{REQUESTER}> cancelled the run on ws-001.contoso.com."
            " It had not been submitted to Defender: nothing ran."
        )
        record = bot.wait_state(second, RequestState.FINISHED)
        assert record.action_id is None
        bot.wait(bot.settled, "the outbox to drain")
        assert bot.buttons(second) == set()
        current = bot.current(second)
        assert ": Cancelled." in current.text and f"Cancelled by <@{REQUESTER}>" in current.text
        assert "Defender's final status" not in current.text
        assert "before it was submitted to Defender. Nothing ran." in str(current.blocks)

        bot.advance(700)  # the first run ends (TimeOut): the device is free again
        bot.wait_reply(first, "Finished on")
        for _ in range(3):  # more passes over what is due: nothing is left to submit
            bot.store_runtime.tracker.tick()
        bot.wait(bot.settled, "the outbox to drain")
        assert cancels(bot) == []
        assert len(run_posts(bot)) == 1
        assert all(record.id not in str(p.body) for p in run_posts(bot))
        assert not any("Submitted" in r for r in bot.thread(second))


def test_a_cancel_defender_fails_leaves_the_run_going_and_can_be_tried_again(
    tmp_path: Path,
) -> None:
    with run_bot(tmp_path) as bot:
        message = running(bot)
        bot.defender.sim.fault(Fault(method="POST", path_regex="/cancel$", status=503))
        bot.click(Action.CANCEL, message, REQUESTER)
        [refusal] = bot.wait(lambda: bot.slack.ephemerals(REQUESTER), "the requester's refusal")
        assert refusal.text.startswith("Defender did not cancel the run")
        bot.wait(bot.settled, "the outbox to drain")
        assert bot.record(message).cancelled_by is None
        assert "Cancelled by" not in bot.current(message).text
        assert not any("cancelled the run" in r for r in bot.thread(message))

        bot.click(Action.CANCEL, message, REQUESTER)
        bot.wait_reply(message, "cancelled the run")
        assert ": Cancelled after" in bot.wait_reply(message, "Finished on")
        assert len(cancels(bot)) == 2
        bot.wait(bot.settled, "the outbox to drain")
        assert f"Cancelled by <@{REQUESTER}>" in bot.current(message).text


def test_a_cancel_while_the_submission_is_unconfirmed_cancels_the_action_once_found(
    tmp_path: Path,
) -> None:
    with run_bot(tmp_path, defender_start=datetime.now(UTC)) as bot:
        message = bot.request("ws-001.contoso.com", "runscript hang.ps1")
        sim = bot.defender.sim
        sim.fault(Fault(method="POST", path_regex="runliveresponse", drop=True))
        # Reconciliation cannot reach Defender for now: the outcome stays unknown.
        sim.fault(Fault(method="GET", path_regex="^/api/machineactions$", status=500, times=10**6))
        bot.click(Action.APPROVE, message, APPROVER)
        record = bot.wait_state(message, RequestState.UNKNOWN)
        # The message offers no Cancel while the outcome is unknown, but a click on the
        # approved message, as a Slack client still showed it, may arrive now.
        stale = bot.current(message)
        approved = record.with_changes(state=RequestState.APPROVED)
        stale.blocks = views.request_message(approved, datetime.now(UTC)).blocks
        answer = bot.send.block_action(str(Action.CANCEL), user_id=REQUESTER, message=stale)
        assert answer.status_code == 200
        bot.wait(lambda: bot.record(message).cancelled_by == REQUESTER, "the cancel to be noted")
        assert cancels(bot) == [] and bot.slack.ephemerals() == []

        sim.clear_faults()
        said = bot.wait_reply(message, "cancelled the run")
        assert "Defender confirms: Cancelled" in said
        assert ": Cancelled after" in bot.wait_reply(message, "Finished on")
        bot.wait(bot.settled, "the outbox to drain")
        [action] = sim.actions()
        assert action["status"] == "Cancelled"
        assert [b["Comment"] for b in cancels(bot)] == [
            f"lrbot {bot.record(message).id} | cancelled by Rae Requester ({REQUESTER})"
        ]
        assert len(run_posts(bot)) == 1
        replies = bot.thread(message)
        assert [r.split(" ")[0] for r in replies[:3]] == [
            "Approved",
            "Submitted",
            f"<@{REQUESTER}>",
        ]
        assert replies[-1].startswith("Finished on ws-001.contoso.com: Cancelled")
        assert len(replies) == len(set(replies))


def test_a_run_cancelled_while_queued_on_an_offline_device_never_says_running(
    tmp_path: Path,
) -> None:
    with run_bot(tmp_path) as bot:
        message = approve(bot, "laptop-7.contoso.com", "runscript ok.ps1")
        bot.wait_reply(message, "Submitted to Defender")
        bot.wait(lambda: str(Action.CANCEL) in bot.buttons(message), "the Cancel button")
        bot.click(Action.CANCEL, message, APPROVER)
        bot.wait_reply(message, "cancelled the run")
        assert ": Cancelled after" in bot.wait_reply(message, "Finished on")
        bot.wait(bot.settled, "the outbox to drain")
        assert [r.split(" ")[0] for r in bot.thread(message)] == [
            "Approved",
            "Submitted",
            f"<@{APPROVER}>",
            "Finished",
        ]
        assert len(cancels(bot)) == 1
