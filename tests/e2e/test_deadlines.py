"""Deadlines: an approval means "start by", and a run far past Defender's limits is flagged."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bot.records import RequestState
from bot.store import requests
from tests.helpers.runs import approve, run_bot, run_posts

# 0.02 minutes: the start-by deadline passes 1.2 s after the approval.
SHORT_DEADLINE = {"LRBOT_START_DEADLINE_MINUTES": 0.02}


def test_a_queued_action_on_an_offline_device_is_cancelled_at_the_deadline(
    tmp_path: Path,
) -> None:
    with run_bot(tmp_path, env=SHORT_DEADLINE) as bot:
        message = approve(bot, "laptop-7.contoso.com", "getfile C:\\Temp\\a.txt")
        bot.wait_reply(message, "Submitted to Defender")

        reply = bot.wait_reply(message, "did not start by")
        assert "being cancelled" in reply and "nothing ran" in reply
        bot.wait_reply(message, "Cancelled")
        record = bot.wait_state(message, RequestState.FINISHED)
        assert record.action_status == "Cancelled"
        [cancel] = [r for r in bot.defender.api_requests("POST") if r.path.endswith("/cancel")]
        assert record.id in cancel.body["Comment"] and "not started by" in cancel.body["Comment"]
        [action] = bot.defender.sim.actions()
        assert action["status"] == "Cancelled"
        assert len(run_posts(bot)) == 1
        assert sum("did not start by" in t for t in bot.thread(message)) == 1


def test_a_run_never_submitted_by_the_deadline_is_called_off_without_reaching_defender(
    tmp_path: Path,
) -> None:
    # No submissions allowed at all: the run stays queued until its deadline passes.
    with run_bot(tmp_path, env=SHORT_DEADLINE, limits={"runs_per_minute": 0}) as bot:
        message = approve(bot, "ws-001.contoso.com", "getfile C:\\Temp\\a.txt")

        reply = bot.wait_reply(message, "did not start by")
        assert "never submitted" in reply and "nothing ran" in reply
        bot.wait_state(message, RequestState.FINISHED)
        bot.wait(bot.settled, "the outbox to drain")
        assert run_posts(bot) == []
        assert bot.buttons(message) == set()


def test_a_run_still_in_progress_past_defenders_limits_is_flagged_once(tmp_path: Path) -> None:
    with run_bot(tmp_path) as bot:
        message = approve(bot, "ws-001.contoso.com", "runscript ok.ps1")
        bot.wait_reply(message, "Submitted to Defender")
        bot.advance(2)  # Pending → InProgress at Defender
        bot.wait_reply(message, "Running on")
        # The run started 16 minutes ago by our clock; Defender still reports it in progress
        # (its clock is manual), well past 10 min for the script plus the margin.
        store = bot.store_runtime.store
        record = bot.record(message)
        assert record.started_at is not None
        with store.engine.begin() as conn:
            conn.execute(
                requests.update()
                .where(requests.c.id == record.id)
                .values(started_at=record.started_at - timedelta(minutes=16))
            )

        reply = bot.wait_reply(message, "Still running")
        assert "longer than Defender's limits allow" in reply and "cancel it here" in reply
        bot.wait(bot.settled, "the outbox to drain")
        kinds = [e["kind"] for e in bot.store_runtime.store.events_of(bot.record(message).id)]
        assert kinds.count("overtime") == 1
        assert sum("Still running" in t for t in bot.thread(message)) == 1
        assert bot.record(message).state is RequestState.IN_PROGRESS
