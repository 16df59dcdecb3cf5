"""Batch requests: one message, one approval, one run per device, each device's progress in
the one thread, and a summary table once every run has ended."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.ids import Action, Block
from bot.records import RequestRecord, RequestState
from commands.simulator.scenario import Scenario
from tests.e2e.slack_checks import assert_slack_accepts_everything_sent
from tests.e2e.test_status_home import subcommand
from tests.helpers.bot import (
    APPROVER,
    CHANNEL,
    JUSTIFICATION,
    OUTSIDER,
    REQUESTER,
    BotHarness,
    running_bot,
)
from tests.helpers.defender import build_scenario

SRV = [f"srv-{i:03d}.contoso.com" for i in range(30)]


def _tagged_scenario() -> Scenario:
    """srv-010 … srv-012 carry the Defender tag Finance."""
    scenario = build_scenario()
    machines = [
        m.model_copy(update={"machine_tags": ["Finance"]})
        if m.computer_dns_name in SRV[10:13]
        else m
        for m in scenario.machines
    ]
    return scenario.model_copy(update={"machines": machines})


def _submit(bot: BotHarness, device: str, commands: str) -> dict[str, Any]:
    view = bot.slash("")
    return bot.submit(
        view,
        {
            str(Block.DEVICE): device,
            str(Block.COMMANDS_TEXT): commands,
            str(Block.JUSTIFICATION): JUSTIFICATION,
        },
    )


def _batch(bot: BotHarness, device: str, commands: str) -> Any:
    before = len(bot.slack.messages(CHANNEL))
    answer = _submit(bot, device, commands)
    assert not answer.get("errors"), answer
    return bot.wait(lambda: bot.slack.messages(CHANNEL)[before], "the batch message")


def _members(bot: BotHarness, message: Any) -> list[RequestRecord]:
    """The batch's requests, in the order named (their message is the batch's)."""

    def found() -> list[RequestRecord]:
        # Each record is its own read (on PostgreSQL, its own snapshot): wait for them all.
        records = bot.store_runtime.store.in_states(list(RequestState))
        batch = {r.batch_id for r in records if r.message_ts == message.ts}
        members = [r for r in records if r.batch_id in batch]
        if any(m.message_ts != message.ts for m in members):
            return []
        return sorted(members, key=lambda r: r.created_at)

    return bot.wait(found, "the batch's members to know its message")


def _device_error(answer: dict[str, Any]) -> str:
    return str(answer.get("errors", {}).get(str(Block.DEVICE), ""))


def _runs_to_end(bot: BotHarness, message: Any, devices: list[str]) -> list[str]:
    bot.click(Action.BATCH_APPROVE, message, APPROVER)
    assert not bot.slack.ephemerals(APPROVER), bot.slack.ephemerals(APPROVER)
    bot.wait(
        lambda: sum("Submitted to Defender" in t for t in bot.thread(message)) == len(devices),
        "every device's run submitted",
    )
    bot.advance(60)  # Defender's clock: every run finishes
    summary = bot.wait_reply(message, "Batch finished", timeout=20)
    for name in devices:
        assert name in summary
    bot.wait(bot.settled, "the outbox to drain")
    return bot.thread(message)


def test_a_batch_by_hostnames_is_one_message_one_approval_and_one_run_per_device(
    tmp_path: Path, database_url: str
) -> None:
    """On SQLite and on PostgreSQL: the members are locked and moved together."""
    devices = SRV[:3]
    with running_bot(tmp_path, env={"LRBOT_DATABASE_URL": database_url}) as bot:
        # Separators of every kind, and a device named twice, count once.
        message = _batch(
            bot, f"{devices[0]},{devices[1]} {devices[2]}, {devices[0]}", "runscript ok.ps1"
        )
        assert len(bot.slack.messages(CHANNEL)) == 1  # the members post no message of theirs
        assert "3 devices" in message.text and "awaiting approval" in message.text
        assert bot.buttons(message) == {
            str(Action.BATCH_APPROVE),
            str(Action.BATCH_REJECT),
            str(Action.BATCH_WITHDRAW),
        }
        members = _members(bot, message)
        assert [m.machine_name for m in members] == devices

        thread = _runs_to_end(bot, message, devices)

        posts = bot.defender.api_requests("POST")
        runs = [p for p in posts if p.path.endswith("/runliveresponse")]
        assert sorted(p.path.split("/")[3] for p in runs) == sorted(m.machine_id for m in members)
        for name in devices:  # each device's progress, named, in the one thread
            assert any(t.startswith(f"[{name}]") and "Submitted to Defender" in t for t in thread)
            assert any(t.startswith(f"[{name}]") and "Succeeded" in t for t in thread)
        assert thread[-1].startswith("Batch finished: 3 of 3 devices succeeded")
        assert sum("Batch finished" in t for t in thread) == 1
        assert len(bot.slack.messages(CHANNEL)) == 1
        assert all(r.state is RequestState.FINISHED for r in _members(bot, message))
        assert "finished" in bot.current(message).text and bot.buttons(message) == set()
        # The requester hears of the approval once and of the end once, not per device.
        bot.wait(lambda: len(bot.slack.direct_messages(REQUESTER)) >= 2, "the end's DM")
        dms = [m.text for m in bot.slack.direct_messages(REQUESTER)]
        assert len(dms) == 2, dms
        assert "Your batch request `lb-" in dms[0] and "was approved" in dms[0]
        assert "batch request" in dms[1] and "3 of 3 devices succeeded" in dms[1]
        assert_slack_accepts_everything_sent(bot.slack)


def test_a_batch_by_tag_runs_on_every_tagged_device(tmp_path: Path) -> None:
    with running_bot(tmp_path, _tagged_scenario()) as bot:
        message = _batch(bot, "tag:Finance", "getfile C:\\Temp\\a.txt")
        assert "3 devices" in message.text
        assert sorted(m.machine_name for m in _members(bot, message)) == SRV[10:13]
        _runs_to_end(bot, message, SRV[10:13])
        runs = [p for p in bot.defender.api_requests("POST") if p.path.endswith("/runliveresponse")]
        assert len(runs) == 3


def test_bad_device_lists_are_refused_under_the_device_field(tmp_path: Path) -> None:
    scenario = build_scenario()
    many = [m.computer_dns_name for m in scenario.machines if m.computer_dns_name in SRV][:21]
    with running_bot(tmp_path, _tagged_scenario()) as bot:
        assert "at most 20 devices" in _device_error(
            _submit(bot, ",".join(many), "runscript ok.ps1")
        )
        unknown = _device_error(_submit(bot, f"{SRV[0]},nosuch-42", "runscript ok.ps1"))
        assert "nosuch-42" in unknown
        none = _device_error(_submit(bot, "tag:Nobody", "runscript ok.ps1"))
        assert "Nobody" in none
        # A device that cannot run live response at all refuses the batch, named, at once.
        old = _device_error(_submit(bot, f"{SRV[0]},old-01.contoso.com", "runscript ok.ps1"))
        assert "old-01.contoso.com" in old and "does not support Windows7" in old, old
        assert bot.slack.messages(CHANNEL) == []
        assert bot.store_runtime.store.in_states(list(RequestState)) == []


def test_a_rejected_batch_runs_nothing(tmp_path: Path) -> None:
    with running_bot(tmp_path) as bot:
        message = _batch(bot, ",".join(SRV[:3]), "runscript ok.ps1")
        bot.click(Action.BATCH_REJECT, message, APPROVER)
        bot.wait_reply(message, "Rejected by")
        summary = bot.wait_reply(message, "Batch finished")
        assert summary.count("rejected") == 3
        assert all(r.state is RequestState.REJECTED for r in _members(bot, message))
        # A late approval (on the message as first shown) finds it decided; nothing runs.
        bot.send.block_action(str(Action.BATCH_APPROVE), user_id=APPROVER, message=message)
        told = bot.wait(lambda: bot.slack.ephemerals(APPROVER), "the late approver told")
        assert "already decided" in told[0].text
        assert not [p for p in bot.defender.api_requests("POST") if "runliveresponse" in p.path]
        bot.wait(bot.settled, "the outbox to drain")
        dms = [m.text for m in bot.slack.direct_messages(REQUESTER)]
        assert len(dms) == 1 and "batch request" in dms[0] and "was rejected" in dms[0], dms


def test_the_run_rate_holds_for_a_batch_bigger_than_it(tmp_path: Path) -> None:
    with running_bot(tmp_path, env={"LRBOT_RUNS_PER_MINUTE": 2}) as bot:
        message = _batch(bot, ",".join(SRV[:5]), "runscript ok.ps1")
        bot.click(Action.BATCH_APPROVE, message, APPROVER)
        members = _members(bot, message)
        store = bot.store_runtime.store
        bot.wait(
            lambda: (
                sum(any(e["kind"] == "queued" for e in store.events_of(m.id)) for m in members) >= 3
            ),
            "three runs to wait for the run rate",
        )
        runs = [p for p in bot.defender.api_requests("POST") if "runliveresponse" in p.path]
        assert len(runs) == 2
        assert sum(r.state is RequestState.APPROVED for r in _members(bot, message)) == 3


def test_the_requester_cannot_approve_and_a_withdrawal_closes_every_device(
    tmp_path: Path,
) -> None:
    with running_bot(tmp_path) as bot:
        message = _batch(bot, f"{SRV[0]},{SRV[1]}", "runscript ok.ps1")
        bot.click(Action.BATCH_APPROVE, message, REQUESTER)
        refusal = bot.wait(lambda: bot.slack.ephemerals(REQUESTER), "the refusal")
        assert "cannot approve" in refusal[0].text
        assert all(r.state is RequestState.AWAITING_APPROVAL for r in _members(bot, message))

        bot.click(Action.BATCH_WITHDRAW, message, REQUESTER)
        bot.wait_reply(message, "Withdrawn")
        assert bot.wait_reply(message, "Batch finished").count("withdrawn") == 2
        assert all(r.state is RequestState.WITHDRAWN for r in _members(bot, message))
        assert bot.buttons(message) == set()


def test_a_device_with_an_active_action_is_flagged_and_holds_up_no_other(tmp_path: Path) -> None:
    with running_bot(tmp_path) as bot:
        busy = bot.request(SRV[0], "runscript hang.ps1")
        bot.click(Action.APPROVE, busy, APPROVER)
        bot.wait_reply(busy, "Submitted to Defender")

        message = _batch(bot, f"{SRV[0]},{SRV[1]}", "runscript ok.ps1")
        shown = json.dumps(bot.current(message).blocks)
        assert "has an active action: waits for it" in shown
        bot.click(Action.BATCH_APPROVE, message, APPROVER)
        bot.wait_reply(message, f"[{SRV[1]}] Submitted to Defender")
        waiting, running = _members(bot, message)
        store = bot.store_runtime.store
        # Its wait is said in the thread, named for the device.
        assert "active on this device" in bot.wait_reply(message, f"[{SRV[0]}]")
        assert any(e["kind"] == "waiting" for e in store.events_of(waiting.id))
        assert store.get(waiting.id).state is RequestState.APPROVED  # type: ignore[union-attr]
        runs = [p.path for p in bot.defender.api_requests("POST") if "runliveresponse" in p.path]
        assert [r.split("/")[3] for r in runs] == [waiting.machine_id, running.machine_id]


def test_cancel_all_stops_every_run_still_going(tmp_path: Path) -> None:
    with running_bot(tmp_path) as bot:
        message = _batch(bot, f"{SRV[0]},{SRV[1]}", "runscript hang.ps1")
        bot.click(Action.BATCH_APPROVE, message, APPROVER)
        bot.wait(
            lambda: sum("Submitted to Defender" in t for t in bot.thread(message)) == 2,
            "both runs submitted",
        )
        assert bot.buttons(message) == {str(Action.BATCH_CANCEL)}
        bot.click(Action.BATCH_CANCEL, message, REQUESTER)
        summary = bot.wait_reply(message, "Batch finished")
        assert summary.count("Cancelled") == 2
        cancels = [p for p in bot.defender.api_requests("POST") if p.path.endswith("/cancel")]
        assert len(cancels) == 2
        assert all(r.cancelled_by == REQUESTER for r in _members(bot, message))


def test_an_undecided_batch_expires_for_every_device_and_a_late_approval_runs_nothing(
    tmp_path: Path,
) -> None:
    with running_bot(tmp_path, env={"LRBOT_APPROVAL_TTL_MINUTES": 0.02}) as bot:
        message = _batch(bot, f"{SRV[0]},{SRV[1]}", "runscript ok.ps1")
        summary = bot.wait_reply(message, "Batch finished")
        assert summary.count("expired") == 2
        for name in SRV[:2]:
            assert any(t.startswith(f"[{name}]") and "expired" in t for t in bot.thread(message))
        # Clicked on the message as it was first shown, with its buttons.
        bot.send.block_action(str(Action.BATCH_APPROVE), user_id=APPROVER, message=message)
        told = bot.wait(lambda: bot.slack.ephemerals(APPROVER), "the late approver told")
        assert "has expired" in told[0].text
        assert not [p for p in bot.defender.api_requests("POST") if "runliveresponse" in p.path]
        assert_slack_accepts_everything_sent(bot.slack)


def test_a_failing_dm_after_the_summary_never_posts_the_summary_twice(tmp_path: Path) -> None:
    with running_bot(tmp_path) as bot:
        message = _batch(bot, ",".join(SRV[:2]), "runscript ok.ps1")
        bot.click(Action.BATCH_APPROVE, message, APPROVER)
        bot.wait(lambda: bot.slack.direct_messages(REQUESTER), "the approval's DM")
        bot.slack.fail("conversations.open", status=500, times=None)  # Slack down for DMs
        bot.wait(
            lambda: sum("Submitted to Defender" in t for t in bot.thread(message)) == 2,
            "both runs submitted",
        )
        bot.advance(60)
        bot.wait_reply(message, "Batch finished", timeout=20)
        bot.wait(bot.settled, "the outbox to drain")
        assert sum("Batch finished" in t for t in bot.thread(message)) == 1
        assert len(bot.slack.direct_messages(REQUESTER)) == 1  # the approval's only


def test_status_and_cancel_take_a_batch_id(tmp_path: Path) -> None:
    """The batch message and its DMs name `lb-…`: `status` lists its devices, `cancel`
    stops every run still going (with the same rule as the button), a bad id is named."""
    with running_bot(tmp_path) as bot:
        message = _batch(bot, ",".join(SRV[:2]), "runscript hang.ps1")
        members = _members(bot, message)
        batch_id = members[0].batch_id
        assert batch_id is not None
        bot.click(Action.BATCH_APPROVE, message, APPROVER)
        bot.wait(
            lambda: sum("Submitted to Defender" in t for t in bot.thread(message)) == 2,
            "both runs submitted",
        )

        status = subcommand(bot, f"status {batch_id}")
        shown = str(status.get("text", "")) + str(status.get("blocks", ""))
        assert f"Batch {batch_id}" in shown and SRV[0] in shown and SRV[1] in shown

        refused = subcommand(bot, f"cancel {batch_id}", user=OUTSIDER)["text"]
        assert "only the requester or an approver can cancel" in refused.lower()
        done = subcommand(bot, f"cancel {batch_id.upper()}")["text"]
        assert f"Cancelling the runs of batch `{batch_id}`" in done
        bot.wait(
            lambda: all(r.state is RequestState.FINISHED for r in _members(bot, message)),
            "every device's run ended",
        )
        assert {r.action_status for r in _members(bot, message)} == {"Cancelled"}

        assert "No batch `lb-zzzzzzzz`" in subcommand(bot, "status lb-zzzzzzzz")["text"]
        assert "is not a batch id" in subcommand(bot, "cancel lb-x")["text"]


def test_a_batchs_runs_check_the_library_with_one_read(tmp_path: Path) -> None:
    """Before each POST the tracker compares the library with what was approved; a batch's
    devices ask for the same files, so one pass reads it once, not once per device."""
    with running_bot(tmp_path) as bot:
        message = _batch(bot, ",".join(SRV[:3]), "runscript ok.ps1")

        def library_reads() -> int:
            gets = bot.defender.api_requests("GET")
            return sum(1 for r in gets if r.path.endswith("/libraryfiles"))

        before = library_reads()
        bot.click(Action.BATCH_APPROVE, message, APPROVER)
        bot.wait(
            lambda: sum("Submitted to Defender" in t for t in bot.thread(message)) == 3,
            "every device's run submitted",
        )
        assert library_reads() == before + 1
