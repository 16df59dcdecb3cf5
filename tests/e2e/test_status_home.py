"""The analyst's own views of their requests: the App Home, the status subcommands and the
direct messages, against the fake Slack and the simulator over signed HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.ids import Action
from bot.records import RequestRecord, RequestState
from bot.sandbox._slack_records import Message
from tests.e2e.slack_checks import assert_slack_accepts_everything_sent
from tests.helpers.bot import APPROVER, CHANNEL, OUTSIDER, REQUESTER, BotHarness, running_bot
from tests.helpers.runs import approve, run_bot

WORKSPACE = "https://fake-workspace.slack.com"


def link(message: Message) -> str:
    return f"{WORKSPACE}/archives/{CHANNEL}/p{message.ts.replace('.', '')}"


def subcommand(bot: BotHarness, text: str, user: str = REQUESTER) -> dict[str, Any]:
    """``/liveresponse <text>``: the ephemeral answer posted to its response_url."""
    answer = bot.send.slash_command(text, user_id=user, channel_id=CHANNEL)
    assert answer.status_code == 200, answer.text
    url = bot.send.last_response_url
    post = bot.wait(lambda: next(iter(bot.slack.response_posts(url)), None), f"an answer to {text}")
    assert post.body["response_type"] == "ephemeral"
    return post.body


def everything(body: dict[str, Any]) -> str:
    return str(body.get("text", "")) + str(body.get("blocks", ""))


def home(bot: BotHarness, user: str) -> str:
    """Open the Home tab; the text of the view published for ``user``."""
    before = bot.slack.home_count(user)
    answer = bot.send.app_home_opened(user)
    assert answer.status_code == 200, answer.text
    bot.wait(lambda: bot.slack.home_count(user) > before, "the home tab published")
    view = bot.slack.home(user)
    assert view is not None and view["type"] == "home"
    return str(view["blocks"])


def recorded(bot: BotHarness, message: Message) -> RequestRecord:
    """The stored request, once the bot has kept its message's ts."""

    def find() -> RequestRecord | None:
        try:
            return bot.record(message)
        except LookupError:
            return None

    return bot.wait(find, "the request message's ts stored")


def dms(bot: BotHarness, user: str = REQUESTER) -> list[str]:
    return [m.text for m in bot.slack.direct_messages(user)]


# --- App Home ---------------------------------------------------------------------------------


def test_home_shows_the_approver_what_waits_and_the_requester_their_own(tmp_path: Path) -> None:
    with running_bot(tmp_path) as bot:
        waiting = bot.request("ws-001.contoso.com", "getfile C:\\Temp\\a.txt")
        record = recorded(bot, waiting)

        approver_home = home(bot, APPROVER)
        section = approver_home.split("Your recent requests")[0]
        assert "Waiting for your approval (1)" in section
        assert record.id in section and link(waiting) in section

        requester_home = home(bot, REQUESTER)
        # Their own request waits for someone else: never in their approval list.
        assert "Waiting for your approval (0)" in requester_home
        mine = requester_home.split("Your recent requests")[1].split("Runs in progress")[0]
        assert record.id in mine and "awaiting approval" in mine and link(waiting) in mine

        # Someone who may not approve sees nothing waiting for them.
        assert "Waiting for your approval (0)" in home(bot, OUTSIDER)
        # The Messages tab (where the DMs are) opens the same event: no Home is published.
        assert bot.send.app_home_opened(APPROVER, tab="messages").status_code == 200
        assert bot.send.app_home_opened(REQUESTER).status_code == 200  # a later marker
        bot.wait(lambda: bot.slack.home_count(REQUESTER) == 2, "the requester's second home")
        assert bot.slack.home_count(APPROVER) == 1
        assert_slack_accepts_everything_sent(bot.slack)


def test_home_lists_runs_in_progress_and_is_published_again_when_opened(tmp_path: Path) -> None:
    with run_bot(tmp_path) as bot:
        message = approve(bot, "ws-001.contoso.com", "runscript hang.ps1")
        bot.wait_reply(message, "Submitted to Defender")
        record = recorded(bot, message)

        shown = home(bot, OUTSIDER)
        running = shown.split("Runs in progress")[1]
        assert record.id in running and link(message) in running
        assert "Waiting for your approval (0)" in shown
        # Opened again after the approval: the approver's list no longer has it.
        assert record.id not in home(bot, APPROVER).split("Your recent requests")[0]
        assert bot.slack.home_count(APPROVER) == 1 and bot.slack.home_count(OUTSIDER) == 1


# --- status, cancel, history ------------------------------------------------------------------


def test_status_lists_the_callers_requests_and_one_request_in_detail(tmp_path: Path) -> None:
    with running_bot(tmp_path) as bot:
        message = bot.request("ws-001.contoso.com", "getfile C:\\Temp\\a.txt")
        record = recorded(bot, message)

        overview = everything(subcommand(bot, "status"))
        assert record.id in overview and "awaiting approval" in overview
        assert link(message) in overview

        detail = everything(subcommand(bot, f"status {record.id.upper()}"))
        assert f"Request {record.id}" in detail and "awaiting approval" in detail
        assert "Approvals:* 0 of 1" in detail and link(message) in detail

        by_device = everything(subcommand(bot, "status WS-001"))
        assert record.id in by_device

        history = everything(subcommand(bot, "history ws-001.contoso.com", user=OUTSIDER))
        assert record.id in history and link(message) in history
        assert len(bot.slack.views()) == 1  # the request's form: no subcommand opened one


def test_status_errors_say_what_was_wrong(tmp_path: Path) -> None:
    with running_bot(tmp_path) as bot:
        assert "is not a request id" in subcommand(bot, "status lr-!!")["text"]
        assert "No request `lr-aaaaaaaa` is known" in subcommand(bot, "cancel lr-aaaaaaaa")["text"]
        assert "`cancel` takes one request id" in subcommand(bot, "cancel")["text"]
        assert "`history` takes one device" in subcommand(bot, "history")["text"]
        mistyped = subcommand(bot, "stop lr-aaaaaaaa")["text"]
        assert "did you mean `cancel`" in mistyped and "/liveresponse history <device>" in mistyped
        assert "No requests for a device called nosuch" in subcommand(bot, "history nosuch")["text"]
        assert bot.slack.views() == []


def test_help_lists_the_subcommands(tmp_path: Path) -> None:
    with running_bot(tmp_path) as bot:
        answer = bot.send.slash_command("help", user_id=REQUESTER, channel_id=CHANNEL)
        text = answer.json()["text"]
        for word in (
            "status <request-id|batch-id|device>",
            "cancel <request-id|batch-id>",
            "history <device>",
        ):
            assert word in text


def test_cancel_subcommand_cancels_a_running_run_and_refuses_an_outsider(tmp_path: Path) -> None:
    with run_bot(tmp_path) as bot:
        message = approve(bot, "ws-001.contoso.com", "runscript hang.ps1")
        bot.wait_reply(message, "Submitted to Defender")
        bot.advance(2)
        bot.wait_reply(message, "Running on")
        record = recorded(bot, message)

        refused = subcommand(bot, f"cancel {record.id}", user=OUTSIDER)["text"]
        assert "only the requester or an approver can cancel" in refused.lower()
        assert bot.record(message).cancelled_by is None

        done = subcommand(bot, f"cancel {record.id}")["text"]
        assert f"Cancelling request `{record.id}`" in done and link(message) in done
        bot.wait_reply(message, "cancelled the run")
        final = bot.wait_state(message, RequestState.FINISHED)
        assert final.action_status == "Cancelled"
        again = subcommand(bot, f"cancel {record.id}")["text"]
        assert "is not running; there is nothing to cancel" in again


# --- direct messages --------------------------------------------------------------------------


def test_the_requester_is_told_of_the_approval_and_the_final_status(tmp_path: Path) -> None:
    with run_bot(tmp_path) as bot:
        message = approve(bot, "ws-001.contoso.com", "getfile C:\\Temp\\a.txt")
        record = recorded(bot, message)
        bot.wait(lambda: len(dms(bot)) >= 1, "the approval DM")
        bot.wait_reply(message, "Submitted to Defender")
        bot.advance(60)
        bot.wait(lambda: len(dms(bot)) >= 2, "the final DM")
        bot.wait(bot.settled, "the outbox to drain")

        approved, finished = dms(bot)
        assert record.id in approved and f"was approved by <@{APPROVER}>" in approved
        assert "has finished: Succeeded" in finished and link(message) in finished
        assert dms(bot, APPROVER) == []


def test_the_requester_is_told_of_a_rejection_and_an_expiry(tmp_path: Path) -> None:
    with running_bot(tmp_path, env={"LRBOT_APPROVAL_TTL_MINUTES": 0.02}) as bot:
        expiring = bot.request("ws-001.contoso.com", "getfile C:\\Temp\\a.txt")
        bot.wait_reply(expiring, "it expired")
        bot.wait(lambda: len(dms(bot)) == 1, "the expiry DM")
        assert "expired before anyone approved it" in dms(bot)[0]
        assert link(expiring) in dms(bot)[0]

    with running_bot(tmp_path / "again") as bot:
        rejected = bot.request("ws-001.contoso.com", "getfile C:\\Temp\\a.txt")
        bot.click(Action.REJECT, rejected, APPROVER)
        bot.wait(lambda: len(dms(bot)) == 1, "the rejection DM")
        bot.wait(bot.settled, "the outbox to drain")
        [said] = dms(bot)
        assert f"was rejected by <@{APPROVER}>" in said and link(rejected) in said


def test_no_direct_messages_when_the_setting_is_off(tmp_path: Path) -> None:
    with run_bot(tmp_path, env={"LRBOT_NOTIFY_REQUESTER": "false"}) as bot:
        message = approve(bot, "ws-001.contoso.com", "getfile C:\\Temp\\a.txt")
        bot.wait_reply(message, "Submitted to Defender")
        bot.advance(60)
        bot.wait_reply(message, "Succeeded")
        bot.wait(bot.settled, "the outbox to drain")
        assert dms(bot) == []
        assert bot.slack.call_count("conversations.open") == 0


def test_a_dm_owed_before_a_restart_is_sent_once_after_it(tmp_path: Path) -> None:
    with running_bot(tmp_path) as bot:
        bot.slack.fail("conversations.open", status=503, times=None)  # Slack down for DMs
        message = bot.request("ws-001.contoso.com", "getfile C:\\Temp\\a.txt")
        bot.click(Action.REJECT, message, APPROVER)
        bot.wait_reply(message, "Rejected by")
        bot.wait(lambda: bot.slack.call_count("conversations.open") >= 1, "a DM attempt")

        bot.restart()
        bot.slack.clear_failures()

        bot.wait(lambda: len(dms(bot)) == 1, "the rejection DM after the restart")
        bot.wait(bot.settled, "the outbox to drain")
        assert len(dms(bot)) == 1
