"""Getting a run to Defender exactly once: a busy device, a lost answer, Defender's rate
limit, a restart mid-run, and one poll for every running action."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from bot.ids import Action
from bot.records import RequestState
from commands.simulator import Fault
from tests.helpers.bot import APPROVER, BotHarness
from tests.helpers.defender import machine, transport
from tests.helpers.runs import approve, polls, run_bot, run_posts, wait_polls

WS_001 = machine(1)


def someone_elses_run(bot: BotHarness, machine_id: str, script: str = "ok.ps1") -> str:
    """An action another tool starts on the device, straight at Defender; its id."""
    token = bot.defender.tokens.token()
    body = {
        "Commands": [{"type": "RunScript", "params": [{"key": "ScriptName", "value": script}]}],
        "Comment": "started from another console",
    }
    with httpx.Client(transport=transport(), timeout=5) as http:
        answer = http.post(
            f"{bot.defender.sim.base_url}/api/machines/{machine_id}/runliveresponse",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def ours(bot: BotHarness, request_id: str) -> list[dict[str, object]]:
    """The simulator's actions whose Comment names our request."""
    return [
        a
        for a in bot.defender.sim.actions()
        if str(a["requestorComment"]).startswith(f"lrbot {request_id} ")
    ]


def test_a_device_busy_with_someone_elses_action_queues_the_run_until_it_ends(
    tmp_path: Path,
) -> None:
    with run_bot(tmp_path) as bot:
        other = someone_elses_run(bot, WS_001)
        message = bot.request("ws-001.contoso.com", "runscript ok.ps1")
        warning = f"The device already has a live response action running (`{other}`)"
        assert warning in json.dumps(message.blocks)
        bot.click(Action.APPROVE, message, APPROVER)
        waiting = bot.wait_reply(message, "Approved and queued")
        assert "the device already has a live response action" in waiting
        assert "this run starts when that one ends" in waiting
        for _ in range(3):
            wait_polls(bot)
        record = bot.record(message)
        assert record.state is RequestState.APPROVED
        assert [r for r in bot.thread(message) if "queued" in r] == [waiting]  # said once
        # Followed in the batched poll, not by POSTing again at every pass.
        assert len(run_posts(bot)) == 2  # someone else's, and ours refused as busy
        assert other in polls(bot)[-1].query["$filter"]
        bot.wait(bot.settled, "the outbox to drain")
        assert "Queued: the device already has" in bot.current(message).text

        bot.advance(60)  # the other action ends
        bot.wait_reply(message, "Submitted to Defender")
        bot.advance(60)
        final = bot.wait_reply(message, "Finished on")
        assert ": Succeeded" in final
        assert len(run_posts(bot)) == 3
        assert len(ours(bot, record.id)) == 1
        bot.wait(bot.settled, "the outbox to drain")
        replies = bot.thread(message)
        assert [r.split(" ")[0] for r in replies[:3]] == ["Approved", "Approved", "Submitted"]


def test_a_lost_answer_is_reconciled_from_the_actions_comment_never_resent(
    tmp_path: Path,
) -> None:
    # Defender's clock as a real tenant's: close to ours (the bot looks back 5 minutes).
    with run_bot(tmp_path, defender_start=datetime.now(UTC)) as bot:
        bot.defender.sim.fault(Fault(method="POST", path_regex="runliveresponse", drop=True))
        message = approve(bot, "ws-001.contoso.com", "runscript ok.ps1")
        submitted = bot.wait_reply(message, "Submitted to Defender")
        record = bot.wait_state(message, RequestState.PENDING, RequestState.IN_PROGRESS)
        [action] = bot.defender.sim.actions()
        assert action["id"] == record.action_id and action["id"] in submitted
        assert str(action["requestorComment"]).startswith(f"lrbot {record.id} ")
        kinds = [e["kind"] for e in bot.store_runtime.store.events_of(record.id)]
        assert "submit_unknown" in kinds and "reconciled_not_found" not in kinds

        bot.advance(60)
        bot.wait_reply(message, "Finished on")
        bot.wait(bot.settled, "the outbox to drain")
        assert len(run_posts(bot)) == 1
        assert len(bot.defender.sim.actions()) == 1
        replies = bot.thread(message)
        assert [r.split(" ")[0] for r in replies] == [
            "Approved",
            "Submitted",
            "Running",
            "Command",
            "Command",  # the result
            "Finished",
        ]
        assert "exited with code 0" in replies[4] and "all good" in replies[4]


def test_a_failed_name_lookup_leaves_the_run_approved_for_the_next_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with run_bot(tmp_path) as bot:
        directory = bot.store_runtime.tracker.directory
        lookup, failures = directory.display_name, [RuntimeError("Slack answered garbage")]

        def flaky(user: str) -> str:
            if failures:
                raise failures.pop()
            return lookup(user)

        monkeypatch.setattr(directory, "display_name", flaky)
        message = approve(bot, "ws-001.contoso.com", "runscript ok.ps1")
        # Not stranded in 'submitting', which only a restart would look at again.
        bot.wait_reply(message, "Submitted to Defender")
        assert not failures and len(run_posts(bot)) == 1


def test_defenders_rate_limit_delays_the_submission_which_happens_once(tmp_path: Path) -> None:
    with run_bot(tmp_path) as bot:
        bot.defender.sim.fault(
            Fault(method="POST", path_regex="runliveresponse", status=429, retry_after=1)
        )
        message = approve(bot, "ws-001.contoso.com", "runscript ok.ps1")
        waiting = bot.wait_reply(message, "Approved and queued")
        assert "Defender's rate limit: trying again in 1 s" in waiting
        submitted = bot.wait_reply(message, "Submitted to Defender")
        posts = run_posts(bot)
        assert len(posts) == 2  # the throttled one, then the one Defender took
        record = bot.record(message)
        assert record.action_id in submitted and len(ours(bot, record.id)) == 1
        events = bot.store_runtime.store.events_of(record.id)
        [throttled] = [e["at"] for e in events if e["kind"] == "throttled"]
        [retried] = [e["at"] for e in events if e["kind"] == "submitting"][1:]
        assert (retried - throttled).total_seconds() >= 0.8  # Retry-After was honoured

        bot.advance(60)
        bot.wait_reply(message, "Finished on")
        bot.wait(bot.settled, "the outbox to drain")
        assert len(run_posts(bot)) == 2
        assert [r for r in bot.thread(message) if "queued" in r] == [waiting]


def test_a_restart_mid_run_carries_on_without_repeating_anything(tmp_path: Path) -> None:
    with run_bot(tmp_path) as bot:
        message = approve(bot, "ws-001.contoso.com", "runscript ok.ps1; getfile C:\\Temp\\a.txt")
        bot.wait_reply(message, "Submitted to Defender")
        bot.advance(6.5)  # 1 s pending, then ok.ps1's 5 s: command 1 completes
        bot.wait_reply(message, "exited with code 0")
        bot.wait(bot.settled, "the outbox to drain")
        before = bot.thread(message)

        bot.restart()
        bot.advance(60)
        final = bot.wait_reply(message, "Finished on")
        assert ": Succeeded" in final and "2 of 2 commands completed" in final
        bot.wait(bot.settled, "the outbox to drain")

        replies = bot.thread(message)
        assert replies[: len(before)] == before
        assert len(replies) == len(set(replies))  # nothing said twice
        assert [r.split(" ")[0] for r in replies] == [
            "Approved",
            "Submitted",
            "Running",
            "Command",  # 1 Completed
            "Command",  # 1's output
            "Command",  # 2 Completed
            "Result",  # 2's file, uploaded
            "Finished",
        ]
        assert len(run_posts(bot)) == 1
        assert len(bot.slack.uploads()) == 1
        assert ": Succeeded." in bot.current(message).text


def test_every_poll_is_one_call_for_all_running_actions(tmp_path: Path) -> None:
    with run_bot(tmp_path) as bot:
        devices = ["ws-001.contoso.com", "srv-000.contoso.com", "srv-001.contoso.com"]
        messages = [approve(bot, device, "runscript hang.ps1") for device in devices]
        for message in messages:
            bot.wait_reply(message, "Submitted to Defender")
        bot.advance(5)
        for message in messages:
            bot.wait_reply(message, "Running on")
        ids = {bot.record(m).action_id for m in messages}
        assert len(ids) == 3

        seen = len(bot.defender.sim.requests)
        wait_polls(bot, 3)
        between = bot.defender.sim.requests[seen:]
        assert between, "the tracker polled"
        for request in between:
            assert (request.method, request.path) == ("GET", "/api/machineactions")
            assert all(f"id eq '{i}'" in request.query["$filter"] for i in ids)
        assert not any(
            r.path.startswith("/api/machineactions/") for r in bot.defender.api_requests("GET")
        )
