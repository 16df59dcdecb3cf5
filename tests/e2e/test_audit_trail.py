"""The audit trail of real runs: every step, with who, which request and which action."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from bot.audit import AuditEntry, verify
from bot.ids import Action
from bot.records import RequestState
from tests.helpers.bot import APPROVER, REQUESTER, BotHarness
from tests.helpers.runs import approve, run_bot


def trail(bot: BotHarness, request_id: str) -> list[AuditEntry]:
    store = bot.store_runtime.store
    return [e for e in store.audit_entries() if e.request_id == request_id]


def detail(entry: AuditEntry) -> dict[str, Any]:
    value = json.loads(entry.detail)
    assert isinstance(value, dict)
    return value


def assert_chain_intact(bot: BotHarness) -> None:
    store = bot.store_runtime.store
    result = verify(store.audit_entries(), store.audit_head())
    assert result.ok, result.problem


def test_a_run_to_completion_is_in_the_audit_trail(tmp_path: Path) -> None:
    with run_bot(tmp_path) as bot:
        message = approve(
            bot,
            "ws-001.contoso.com",
            "putfile tool.exe; runscript ok.ps1 -Days 3; getfile C:\\Temp\\a.txt",
        )
        bot.wait_reply(message, "Submitted to Defender")
        bot.advance(60)
        bot.wait_reply(message, "Finished on")
        bot.wait(bot.settled, "the outbox to drain")
        record = bot.record(message)
        action = record.action_id
        assert action is not None
        [upload] = bot.slack.uploads()
        entries = trail(bot, record.id)
        kinds = [e.kind for e in entries]
        by_kind = {e.kind: e for e in entries}

        requested, validated = entries[0], entries[1]
        assert (requested.kind, requested.actor, requested.action_id) == (
            "requested",
            REQUESTER,
            None,
        )
        assert (validated.kind, validated.actor) == ("validated", None)
        library = detail(validated)["library"]
        assert set(library) >= {"tool.exe", "ok.ps1"} and all(library.values())
        assert detail(validated)["machine_id"] == record.machine_id

        assert (by_kind["approved"].actor, by_kind["approved"].action_id) == (APPROVER, None)
        assert kinds.index("approved") < kinds.index("submitted") < kinds.index("started")
        for kind in ("submitted", "started", "finished"):
            assert (by_kind[kind].actor, by_kind[kind].action_id) == (None, action), kind
        commands = [detail(e) for e in entries if e.kind == "command"]
        assert {(c["position"], c["status"]) for c in commands} >= {
            (1, "Completed"),
            (2, "Completed"),
            (3, "Completed"),
        }
        assert all(e.action_id == action for e in entries if e.kind == "command")
        assert detail(by_kind["finished"])["status"] == "Succeeded"

        results = {detail(e)["position"]: (e, detail(e)) for e in entries if e.kind == "result"}
        assert sorted(results) == [2, 3]  # putfile has no result
        getfile, facts = results[3]
        assert (getfile.actor, getfile.action_id) == (None, action)
        assert facts["sha256"] == hashlib.sha256(upload.data).hexdigest()
        assert facts["size"] == len(upload.data) and facts["file_name"] == "a.txt"
        script, script_facts = results[2]
        assert script_facts["file_name"] == "output of ok.ps1" and script.action_id == action
        assert any(f"SHA-256 {script_facts['sha256']}" in r for r in bot.thread(message))

        # Nothing secret or a link in the trail; the whole chain checks out.
        text = " ".join(e.detail for e in entries)
        for marker in ("/blob/", "sig=", bot.defender.sim.base_url.split("://", 1)[1]):
            assert marker not in text
        assert_chain_intact(bot)


def test_rejected_and_withdrawn_requests_are_in_the_audit_trail(tmp_path: Path) -> None:
    with run_bot(tmp_path) as bot:
        rejected = bot.request("ws-001.contoso.com", "getfile C:\\Temp\\a.txt")
        bot.click(Action.REJECT, rejected, APPROVER)
        bot.wait_state(rejected, RequestState.REJECTED)
        withdrawn = bot.request("ws-001.contoso.com", "getfile C:\\Temp\\a.txt")
        bot.click(Action.WITHDRAW, withdrawn, REQUESTER)
        bot.wait_state(withdrawn, RequestState.WITHDRAWN)
        one = [(e.kind, e.actor) for e in trail(bot, bot.record(rejected).id)]
        two = [(e.kind, e.actor) for e in trail(bot, bot.record(withdrawn).id)]
        assert one == [("requested", REQUESTER), ("validated", None), ("rejected", APPROVER)]
        assert two == [("requested", REQUESTER), ("validated", None), ("withdrawn", REQUESTER)]
        assert_chain_intact(bot)


def test_a_result_over_the_size_limit_is_an_audited_result_error(tmp_path: Path) -> None:
    with run_bot(tmp_path, env={"LRBOT_MAX_RESULT_MB": 0.0001}) as bot:
        message = approve(bot, "ws-001.contoso.com", "getfile C:\\Temp\\a.txt")
        bot.wait_reply(message, "Submitted to Defender")
        bot.advance(60)
        bot.wait_reply(message, "over the 104 bytes limit")
        record = bot.record(message)
        entries = trail(bot, record.id)
        [error] = [e for e in entries if e.kind == "result_error"]
        assert not [e for e in entries if e.kind == "result"]
        assert (error.actor, error.action_id) == (None, record.action_id)
        assert detail(error)["position"] == 1 and "104 bytes" in detail(error)["reason"]
        assert_chain_intact(bot)


def test_a_wait_for_the_run_rate_is_audited_once(tmp_path: Path) -> None:
    with run_bot(tmp_path, limits={"runs_per_minute": 0}) as bot:
        first = approve(bot, "ws-001.contoso.com", "getfile C:\\Temp\\a.txt")
        first_id = bot.record(first).id
        bot.wait(
            lambda: any(e.kind == "queued" for e in trail(bot, first_id)), "the first run queued"
        )
        # The second run's wait is seen by a later tick, which saw the first one waiting too.
        second = approve(bot, "ws-0011.contoso.com", "getfile C:\\Temp\\a.txt")
        second_id = bot.record(second).id
        bot.wait(
            lambda: any(e.kind == "queued" for e in trail(bot, second_id)), "the second queued"
        )
        queued = [e for e in trail(bot, first_id) if e.kind == "queued"]
        assert len(queued) == 1
        assert queued[0].actor is None and "run rate" in detail(queued[0])["reason"]
        assert bot.record(first).state is RequestState.APPROVED
        assert_chain_intact(bot)
