"""Deciding on a request: approve, reject, withdraw, expire, as the channel and Defender see it.

A second analyst must approve; the decision is made once however many clicks arrive; anyone
refused is told so privately and nothing changes; nothing reaches Defender unless approved.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.ids import Action
from bot.records import RequestRecord, RequestState
from bot.sandbox._slack_records import Ephemeral, Message
from bot.sandbox.slack_requests import STALE, TAMPERED, WRONG_SECRET, SignedRequest, Signing
from tests.e2e.slack_checks import assert_slack_accepts_everything_sent
from tests.helpers.bot import (
    APPROVER,
    APPROVER_2,
    CHANNEL,
    LEADS,
    OUTSIDER,
    REQUESTER,
    BotHarness,
    running_bot,
)

DECIDING = {str(Action.APPROVE), str(Action.REJECT), str(Action.WITHDRAW)}
COMMANDS = "putfile tool.exe; getfile C:\\Temp\\a.txt"

pytestmark = pytest.mark.usefixtures("no_errors_logged")


# --- helpers ---------------------------------------------------------------------------------


def ask(bot: BotHarness, user: str = REQUESTER) -> tuple[Message, RequestRecord]:
    """A request for two commands on ws-001, posted and awaiting approval."""
    message = bot.request("ws-001.contoso.com", COMMANDS, user=user)
    record = bot.wait(lambda: bot.record(message), "the request message's ts in the store")
    assert buttons_of(message) == DECIDING  # as posted (a short-lived one may be gone by now)
    return message, record


def buttons_of(message: Message) -> set[str]:
    return {e["action_id"] for b in message.blocks if b["type"] == "actions" for e in b["elements"]}


def told(bot: BotHarness, user: str, fragment: str) -> Ephemeral:
    """The ephemeral message ``user`` got that contains ``fragment``."""
    return bot.wait(
        lambda: next((e for e in bot.slack.ephemerals(user) if fragment in e.text), None),
        f"an ephemeral to {user} saying {fragment!r}",
    )


def runs_sent(bot: BotHarness) -> list[Any]:
    """Every ``runliveresponse`` POST Defender received."""
    return [r for r in bot.defender.api_requests("POST") if r.path.endswith("/runliveresponse")]


def replies_saying(bot: BotHarness, message: Message, fragment: str) -> list[str]:
    return [text for text in bot.thread(message) if fragment in text]


def status_text(bot: BotHarness, message: Message) -> str:
    """The request message's blocks as the channel shows them."""
    texts = []
    for block in bot.current(message).blocks:
        if block["type"] in ("header", "section"):
            texts.append(block["text"]["text"])
    return "\n".join(texts)


def assert_unchanged(bot: BotHarness, message: Message, record: RequestRecord) -> None:
    """Nothing happened: the message as posted, the request waiting, Defender untouched."""
    now = bot.current(message)
    assert not now.edited and now.blocks == message.blocks and now.text == message.text
    assert bot.slack.thread(CHANNEL, message.ts) == []
    stored = bot.store_runtime.store.get(record.id)
    assert stored is not None and stored.state is RequestState.AWAITING_APPROVAL
    assert stored.decided_by is None
    assert runs_sent(bot) == []


def click_together(bot: BotHarness, clicks: list[SignedRequest]) -> list[httpx.Response]:
    """Send signed clicks at the same moment, each on its own (already open) connection."""
    barrier = threading.Barrier(len(clicks))
    answers: list[httpx.Response | None] = [None] * len(clicks)
    health = bot.send.url.replace("/slack/events", "/healthz")

    def click(index: int) -> None:
        with httpx.Client(timeout=10) as http:
            http.get(health).raise_for_status()  # connected before the race starts
            barrier.wait(timeout=5)
            request = clicks[index]
            answers[index] = http.post(bot.send.url, content=request.body, headers=request.headers)

    threads = [threading.Thread(target=click, args=(i,)) for i in range(len(clicks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=15)
    assert all(a is not None and a.status_code == 200 for a in answers), answers
    return [a for a in answers if a is not None]


def click_as_first_shown(bot: BotHarness, action: Action, message: Message, user: str) -> None:
    """A click on the message as first posted, from a client that has not yet redrawn it."""
    answer = bot.send.block_action(str(action), user_id=user, message=message)
    assert answer.status_code == 200, answer.text


def build_click(bot: BotHarness, action: Action, message: Message, user: str) -> SignedRequest:
    current = bot.current(message)
    return bot.send.build_block_action(str(action), user_id=user, message=current)


# --- who may decide --------------------------------------------------------------------------


@pytest.mark.parametrize("requester", [REQUESTER, APPROVER], ids=["analyst", "approver"])
def test_requester_cannot_approve_their_own_request(tmp_path: Path, requester: str) -> None:
    with running_bot(tmp_path) as bot:
        message, record = ask(bot, requester)

        bot.click(Action.APPROVE, message, requester)
        refusal = told(bot, requester, "you cannot approve it")
        bot.click(Action.REJECT, message, requester)
        told(bot, requester, "use Withdraw")

        assert refusal.text.startswith("You asked for this run")
        assert refusal.channel == CHANNEL
        assert len(bot.slack.ephemerals()) == 2  # nobody else was told anything
        assert_unchanged(bot, message, record)
        assert bot.buttons(message) == DECIDING
        assert_slack_accepts_everything_sent(bot.slack)


def test_outsider_is_refused_privately_and_nothing_changes(tmp_path: Path) -> None:
    with running_bot(tmp_path) as bot:
        message, record = ask(bot)

        bot.click(Action.APPROVE, message, OUTSIDER)
        told(bot, OUTSIDER, "You are not an approver for live response")
        bot.click(Action.REJECT, message, OUTSIDER)
        bot.wait(lambda: len(bot.slack.ephemerals(OUTSIDER)) == 2, "the second refusal")
        bot.click(Action.WITHDRAW, message, OUTSIDER)
        told(bot, OUTSIDER, f"Only <@{REQUESTER}>, who asked, can withdraw it")

        assert [e.user for e in bot.slack.ephemerals()] == [OUTSIDER] * 3
        assert_unchanged(bot, message, record)


def test_a_click_on_an_unknown_request_is_refused(tmp_path: Path) -> None:
    with running_bot(tmp_path) as bot:
        message, record = ask(bot)

        forged = bot.send.block_action(
            str(Action.APPROVE),
            user_id=APPROVER,
            message=bot.current(message),
            value="lr-00000000",
        )

        assert forged.status_code == 200
        told(bot, APPROVER, "not known to this bot; nothing was changed")
        assert_unchanged(bot, message, record)


def test_user_group_approver_approves_and_the_run_goes_to_defender(tmp_path: Path) -> None:
    with running_bot(tmp_path) as bot:
        message, record = ask(bot)

        bot.click(Action.APPROVE, message, APPROVER_2)

        bot.wait_reply(message, "Submitted to Defender as action")
        approved = bot.wait_state(message, RequestState.PENDING)
        bot.wait(bot.settled, "the outbox to drain")
        assert [c.params["usergroup"] for c in bot.slack.calls("usergroups.users.list")] == [LEADS]
        assert approved.decided_by == APPROVER_2 and approved.decided_at is not None
        when = int(approved.decided_at.timestamp())
        shown = status_text(bot, message)
        assert f"Approved by <@{APPROVER_2}> at <!date^{when}^" in shown
        assert f"Approved by <@{APPROVER_2}>" in bot.current(message).text
        assert not bot.buttons(message) & {str(Action.APPROVE), str(Action.REJECT)}
        [reply] = replies_saying(bot, message, "Approved by")
        assert reply.startswith(f"Approved by <@{APPROVER_2}> at ")
        assert bot.slack.ephemerals() == []
        [run] = runs_sent(bot)
        assert run.path == f"/api/machines/{record.machine_id}/runliveresponse"
        assert "Ada Approver" in run.body["Comment"] and record.id in run.body["Comment"]
        assert_slack_accepts_everything_sent(bot.slack)


def test_an_unreadable_user_group_grants_nothing(tmp_path: Path) -> None:
    with running_bot(tmp_path) as bot:
        message, record = ask(bot)
        bot.slack.fail("usergroups.users.list", "missing_scope")

        bot.click(Action.APPROVE, message, APPROVER_2)

        told(bot, APPROVER_2, "You are not an approver for live response")
        assert_unchanged(bot, message, record)

        # Once Slack answers again the group counts (a failure is not cached).
        bot.click(Action.APPROVE, message, APPROVER_2)
        assert bot.wait_reply(message, "Approved by").startswith(f"Approved by <@{APPROVER_2}>")


# --- one decision, however many clicks -------------------------------------------------------


def test_two_approvers_at_the_same_moment_make_one_decision(
    tmp_path: Path, database_url: str
) -> None:
    """On SQLite and on PostgreSQL: the bot's own threads race, not just the store's."""
    with running_bot(tmp_path, env={"LRBOT_DATABASE_URL": database_url}) as bot:
        message, _ = ask(bot)
        clicks = [
            build_click(bot, Action.APPROVE, message, APPROVER),
            build_click(bot, Action.APPROVE, message, APPROVER_2),
        ]

        click_together(bot, clicks)

        record = bot.wait_state(message, RequestState.PENDING)
        loser = APPROVER_2 if record.decided_by == APPROVER else APPROVER
        refusal = told(bot, loser, "already decided")
        assert f"already decided by <@{record.decided_by}>" in refusal.text
        bot.wait(bot.settled, "the outbox to drain")
        assert len(replies_saying(bot, message, "Approved by")) == 1
        assert len(runs_sent(bot)) == 1
        assert bot.slack.ephemerals(record.decided_by) == []
        assert [e["kind"] for e in bot.store_runtime.store.events_of(record.id)].count(
            "approved"
        ) == 1
        assert_slack_accepts_everything_sent(bot.slack)


@pytest.mark.parametrize(
    ("other", "by", "ended"),
    [
        (Action.REJECT, APPROVER_2, RequestState.REJECTED),
        (Action.WITHDRAW, REQUESTER, RequestState.WITHDRAWN),
    ],
    ids=["reject", "withdraw"],
)
def test_approve_and_another_decision_at_the_same_moment_make_one(
    tmp_path: Path, other: Action, by: str, ended: RequestState
) -> None:
    with running_bot(tmp_path) as bot:
        message, _ = ask(bot)
        clicks = [
            build_click(bot, Action.APPROVE, message, APPROVER),
            build_click(bot, other, message, by),
        ]

        click_together(bot, clicks)

        record = bot.wait_state(message, RequestState.PENDING, ended)
        loser = by if record.state is RequestState.PENDING else APPROVER
        told(bot, loser, "already decided")
        bot.wait(bot.settled, "the outbox to drain")
        decisions = [
            reply
            for said in ("Approved by", "Rejected by", "Withdrawn by")
            for reply in replies_saying(bot, message, said)
        ]
        assert len(decisions) == 1
        assert len(bot.slack.ephemerals()) == 1
        assert len(runs_sent(bot)) == (1 if record.state is RequestState.PENDING else 0)


def test_slack_delivering_the_same_click_twice_makes_one_decision(tmp_path: Path) -> None:
    with running_bot(tmp_path) as bot:
        message, record = ask(bot)
        click = build_click(bot, Action.APPROVE, message, APPROVER)

        click_together(bot, [click, click])  # the very same signed body, twice

        bot.wait_state(message, RequestState.PENDING)
        [refusal] = [told(bot, APPROVER, "already decided")]
        assert refusal.text.startswith(f"Request {record.id} was already decided by <@{APPROVER}>")
        bot.wait(bot.settled, "the outbox to drain")
        assert len(bot.slack.ephemerals()) == 1
        assert len(replies_saying(bot, message, "Approved by")) == 1
        assert len(runs_sent(bot)) == 1


# --- reject and withdraw ---------------------------------------------------------------------


def test_reject_says_who_and_nothing_runs(tmp_path: Path) -> None:
    with running_bot(tmp_path) as bot:
        message, record = ask(bot)

        bot.click(Action.REJECT, message, APPROVER)

        reply = bot.wait_reply(message, "Rejected by")
        assert reply.startswith(f"Rejected by <@{APPROVER}> at ") and "Nothing will run" in reply
        bot.wait(lambda: bot.buttons(message) == set(), "the buttons to go")
        assert "rejected" in bot.current(message).text
        assert f"Rejected by <@{APPROVER}>" in status_text(bot, message)

        # A later approval changes nothing, and the tracker never sends it.
        click_as_first_shown(bot, Action.APPROVE, message, APPROVER_2)
        told(bot, APPROVER_2, f"already decided by <@{APPROVER}> (rejected)")
        bot.wait(bot.settled, "the outbox to drain")
        assert bot.store_runtime.store.get(record.id).state is RequestState.REJECTED  # type: ignore[union-attr]
        assert runs_sent(bot) == []
        assert len(bot.thread(message)) == 1
        assert_slack_accepts_everything_sent(bot.slack)


def test_only_the_requester_can_withdraw(tmp_path: Path) -> None:
    with running_bot(tmp_path) as bot:
        message, record = ask(bot)

        bot.click(Action.WITHDRAW, message, APPROVER)
        told(bot, APPROVER, f"Only <@{REQUESTER}>, who asked, can withdraw it")
        assert_unchanged(bot, message, record)

        bot.click(Action.WITHDRAW, message, REQUESTER)

        reply = bot.wait_reply(message, "Withdrawn")
        assert reply.startswith("Withdrawn by the requester") and "Nothing will run" in reply
        bot.wait(lambda: bot.buttons(message) == set(), "the buttons to go")
        assert "withdrawn" in bot.current(message).text
        click_as_first_shown(bot, Action.APPROVE, message, APPROVER)
        told(bot, APPROVER, "already decided")
        bot.wait(bot.settled, "the outbox to drain")
        assert runs_sent(bot) == []
        assert bot.slack.ephemerals(REQUESTER) == []
        assert_slack_accepts_everything_sent(bot.slack)


# --- expiry ----------------------------------------------------------------------------------

SHORT_TTL = {"LRBOT_APPROVAL_TTL_MINUTES": 0.02}  # 1.2 s


def test_an_undecided_request_expires_and_a_late_approval_runs_nothing(tmp_path: Path) -> None:
    with running_bot(tmp_path, env=SHORT_TTL) as bot:
        message, record = ask(bot)

        reply = bot.wait_reply(message, "it expired")

        assert "Nobody approved this request by" in reply and "Nothing ran" in reply
        bot.wait(lambda: bot.buttons(message) == set(), "the buttons to go")
        assert "expired" in bot.current(message).text
        assert "nobody approved it. Nothing ran." in status_text(bot, message)

        click_as_first_shown(bot, Action.APPROVE, message, APPROVER)
        told(bot, APPROVER, f"Request {record.id} has expired")
        click_as_first_shown(bot, Action.WITHDRAW, message, REQUESTER)
        told(bot, REQUESTER, "has expired")
        bot.wait(bot.settled, "the outbox to drain")
        assert bot.store_runtime.store.get(record.id).state is RequestState.EXPIRED  # type: ignore[union-attr]
        assert runs_sent(bot) == []
        assert len(replies_saying(bot, message, "expired")) == 1
        assert_slack_accepts_everything_sent(bot.slack)


def test_an_approval_after_the_deadline_loses_even_before_the_sweep(tmp_path: Path) -> None:
    with running_bot(tmp_path, env=SHORT_TTL) as bot:
        bot.store_runtime.tracker.stop()  # no sweep: the click itself must notice the deadline
        message, record = ask(bot)
        bot.wait(lambda: datetime.now(UTC) > record.expires_at, "the approval deadline")

        bot.click(Action.APPROVE, message, APPROVER)

        told(bot, APPROVER, f"Request {record.id} has expired")
        reply = bot.wait_reply(message, "it expired")
        assert "Nothing ran" in reply
        assert bot.store_runtime.store.get(record.id).state is RequestState.EXPIRED  # type: ignore[union-attr]
        assert runs_sent(bot) == []


# --- signatures ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "signing", [TAMPERED, WRONG_SECRET, STALE], ids=["tampered", "wrong secret", "stale"]
)
def test_badly_signed_clicks_are_refused_without_effect(tmp_path: Path, signing: Signing) -> None:
    with running_bot(tmp_path) as bot:
        message, record = ask(bot)

        for action in (Action.APPROVE, Action.REJECT, Action.WITHDRAW):
            user = REQUESTER if action is Action.WITHDRAW else APPROVER
            forged = bot.send.block_action(
                str(action), user_id=user, message=bot.current(message), signing=signing
            )
            assert forged.status_code == 401

        assert bot.slack.ephemerals() == []
        assert_unchanged(bot, message, record)

        # The same click, signed, is obeyed: the refusal was the signature's doing.
        bot.click(Action.APPROVE, message, APPROVER)
        bot.wait_reply(message, "Approved by")
