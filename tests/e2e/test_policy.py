"""The policy file at work: per-kind requesters and approvers, two approvers for RunScript,
blocked and allowed scripts, allowed channels, per-kind approval lifetimes, and approvals
bound to the exact payload (the button's digest, the library's content at submission).

Everything as the people involved see it: the modal's field errors, the ephemeral refusals,
the thread, and what Defender received.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.ids import Action, Block, row_block
from bot.records import RequestRecord, RequestState
from bot.sandbox._slack_records import Message
from commands.errors import ConfigurationError
from tests.e2e.slack_checks import assert_slack_accepts_everything_sent
from tests.e2e.test_approval import (
    DECIDING,
    assert_unchanged,
    click_as_first_shown,
    runs_sent,
    told,
)
from tests.e2e.test_request_modal import assert_nothing_requested, click_in_modal
from tests.helpers.bot import (
    APPROVER,
    APPROVER_2,
    CHANNEL,
    JUSTIFICATION,
    LEADS,
    OUTSIDER,
    REQUESTER,
    BotHarness,
    running_bot,
)

pytestmark = pytest.mark.usefixtures("no_errors_logged")

DEVICE = "ws-001.contoso.com"
OTHER_CHANNEL = "C0RANDOM1"
GETFILE_ONLY = OUTSIDER  # may request and approve GetFile, nothing else
OK_SHA = hashlib.sha256(b"'ok'").hexdigest()  # ok.ps1 in the simulator's library


def policy_text(getfile_minutes: float = 60) -> str:
    return f"""
channels = ["{CHANNEL}"]
blocked_scripts = ["FAIL*"]

[getfile]
requesters = ["{REQUESTER}", "{GETFILE_ONLY}"]
approvers = ["{APPROVER}", "{LEADS}", "{GETFILE_ONLY}"]
approval_minutes = {getfile_minutes}

[putfile]
requesters = ["{REQUESTER}"]
approvers = ["{APPROVER}", "{LEADS}"]

[runscript]
requesters = ["{REQUESTER}"]
approvers = ["{APPROVER}", "{LEADS}"]
approvals = 2
scripts = ["ok.ps1", "fail.ps1", "hang.ps1"]
"""


def with_policy(tmp_path: Path, **options: Any) -> tuple[dict[str, Any], str]:
    """The bot's environment naming a policy file, and the file's path (as errors name it)."""
    path = tmp_path / "policy.toml"
    path.write_text(policy_text(**options), encoding="utf-8")
    return {"LRBOT_POLICY": str(path)}, str(path)


def ask(bot: BotHarness, commands: str, user: str = REQUESTER) -> tuple[Message, RequestRecord]:
    message = bot.request(DEVICE, commands, user=user)
    record = bot.wait(lambda: bot.record(message), "the request message's ts in the store")
    return message, record


def stored(bot: BotHarness, record: RequestRecord) -> RequestRecord:
    found = bot.store_runtime.store.get(record.id)
    assert found is not None
    return found


def event_kinds(bot: BotHarness, record: RequestRecord) -> list[str]:
    return [str(e["kind"]) for e in bot.store_runtime.store.events_of(record.id)]


# --- two approvers for RunScript -------------------------------------------------------------


def test_runscript_needs_two_distinct_approvers_and_defender_hears_both(tmp_path: Path) -> None:
    env, _ = with_policy(tmp_path)
    with running_bot(tmp_path, env=env) as bot:
        message, record = ask(bot, "runscript ok.ps1 -Days 3")
        assert record.approvals_needed == 2

        bot.click(Action.APPROVE, message, APPROVER)

        first = bot.wait_reply(message, "Approved by")
        assert first == f"Approved by <@{APPROVER}> (1 of 2); 1 more approver needed."
        bot.wait(bot.settled, "the outbox to drain")
        assert "Approvals: 1 of 2." in bot.current(message).text
        assert bot.buttons(message) == DECIDING  # still open for the second approver
        assert stored(bot, record).state is RequestState.AWAITING_APPROVAL

        # The same approver again counts for nothing, and is told so privately.
        bot.click(Action.APPROVE, message, APPROVER)
        refusal = told(bot, APPROVER, "already approved")
        assert refusal.text == (
            "You have already approved this request; another approver is needed"
        )
        assert refusal.channel == CHANNEL
        bot.wait(bot.settled, "the outbox to drain")
        assert bot.thread(message) == [first]
        assert stored(bot, record).approvals == (APPROVER,)
        assert runs_sent(bot) == []

        # A second, different approver (through the leads group) completes it.
        bot.click(Action.APPROVE, message, APPROVER_2)

        bot.wait_reply(message, "Submitted to Defender as action")
        approved = bot.wait_state(message, RequestState.PENDING)
        assert approved.approvals == (APPROVER, APPROVER_2)
        assert approved.decided_by == APPROVER_2
        [run] = runs_sent(bot)
        comment = run.body["Comment"]
        assert comment.startswith(
            f"lrbot {record.id} | requested by Rae Requester ({REQUESTER})"
            f" | approved by Abe Approver ({APPROVER}), Ada Approver ({APPROVER_2}) | reason: "
        )
        kinds = event_kinds(bot, record)
        assert kinds.count("approval") == 1 and kinds.count("approved") == 1
        assert bot.slack.ephemerals() == [refusal]
        bot.wait(bot.settled, "the outbox to drain")
        assert_slack_accepts_everything_sent(bot.slack)


def test_an_approver_of_getfile_alone_cannot_approve_runscript(tmp_path: Path) -> None:
    env, source = with_policy(tmp_path)
    with running_bot(tmp_path, env=env) as bot:
        message, record = ask(bot, "runscript ok.ps1")
        bot.wait(bot.settled, "the outbox to drain")

        bot.click(Action.APPROVE, message, GETFILE_ONLY)

        refusal = told(bot, GETFILE_ONLY, "not an approver")
        assert refusal.text == (
            f"You are not an approver for RunScript (approvers in {source}); nothing was changed"
        )
        bot.wait(bot.settled, "the outbox to drain")
        assert_unchanged(bot, message, record)
        assert stored(bot, record).approvals == ()

        # The same person approves a GetFile request: the refusal was about the kind.
        getfile, _ = ask(bot, "getfile C:\\Temp\\a.txt")
        bot.click(Action.APPROVE, getfile, GETFILE_ONLY)
        bot.wait_reply(getfile, "Submitted to Defender as action")
        assert len(bot.slack.ephemerals()) == 1


# --- who may request what, in the modal ------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "script", "says"),
    [
        pytest.param(
            GETFILE_ONLY,
            "ok.ps1",
            "Command 1: you may not request RunScript (advanced live response):"
            " you are not in runscript.requesters of {source}",
            id="requester not allowed runscript",
        ),
        pytest.param(
            REQUESTER,
            "fail.ps1",
            "Command 1: fail.ps1 is blocked: the policy never allows it ({source},"
            " blocked_scripts)",
            id="blocked script",
        ),
        pytest.param(
            REQUESTER,
            "padded.ps1",
            "Command 1: padded.ps1 is not among the RunScript files the policy allows"
            " (runscript.scripts in {source})",
            id="script not among the allowed",
        ),
    ],
)
def test_a_refused_command_is_a_field_error_under_its_row(
    tmp_path: Path, user: str, script: str, says: str
) -> None:
    env, source = with_policy(tmp_path)
    with running_bot(tmp_path, env=env) as bot:
        opened = bot.slash("", user=user)
        opened = click_in_modal(bot, opened, Action.ADD_ROW, {})
        typed = {
            str(Block.DEVICE): DEVICE,
            row_block(0, "type"): "RunScript",
            row_block(0, "value"): script,
            row_block(1, "type"): "GetFile",
            row_block(1, "value"): "C:\\Temp\\a.txt",
            str(Block.JUSTIFICATION): JUSTIFICATION,
        }

        answer = bot.submit(opened, typed, user=user)

        # Under the RunScript row alone: the GetFile row is allowed to this person.
        assert answer == {
            "response_action": "errors",
            "errors": {row_block(0, "value"): says.format(source=source)},
        }
        assert_nothing_requested(bot)

        # Typed as text, the same refusal lands under the text field.
        text = bot.slash("", user=user)
        answer = bot.submit(
            text,
            {
                str(Block.DEVICE): DEVICE,
                str(Block.COMMANDS_TEXT): f"runscript {script}; getfile C:\\Temp\\a.txt",
                str(Block.JUSTIFICATION): JUSTIFICATION,
            },
            user=user,
        )
        assert answer["errors"] == {str(Block.COMMANDS_TEXT): says.format(source=source)}
        assert_nothing_requested(bot)


def test_the_command_in_another_channel_is_refused_without_a_modal(tmp_path: Path) -> None:
    env, source = with_policy(tmp_path)
    with running_bot(tmp_path, env=env) as bot:
        answer = bot.send.slash_command(
            f"{DEVICE} getfile C:\\Temp\\a.txt", user_id=REQUESTER, channel_id=OTHER_CHANNEL
        )

        assert answer.status_code == 200
        assert answer.json() == {
            "response_type": "ephemeral",
            "text": f"Live response is not requested in this channel; use <#{CHANNEL}>"
            f" (policy: channels in {source})",
        }
        assert bot.slack.call_count("views.open") == 0
        assert_nothing_requested(bot)

        # In the policy's channel the form opens.
        bot.slash(f"{DEVICE} getfile C:\\Temp\\a.txt")
        assert bot.slack.call_count("views.open") == 1


# --- approvals bound to the payload ----------------------------------------------------------


@pytest.mark.parametrize(
    "crafted",
    [lambda d: "0" * 24, lambda d: "", lambda d: d[:4]],
    ids=["another payload's digest", "no digest", "a short prefix of the right digest"],
)
def test_an_approve_button_for_another_payload_approves_nothing(
    tmp_path: Path, crafted: Callable[[str], str]
) -> None:
    env, _ = with_policy(tmp_path)
    with running_bot(tmp_path, env=env) as bot:
        message, record = ask(bot, "getfile C:\\Temp\\a.txt")
        bot.wait(bot.settled, "the outbox to drain")
        assert record.digest is not None
        digest = crafted(record.digest)
        assert not record.digest.startswith(digest) or len(digest) < 24
        value = f"{record.id}:{digest}" if digest else record.id

        answer = bot.send.block_action(
            str(Action.APPROVE), user_id=APPROVER, message=bot.current(message), value=value
        )

        assert answer.status_code == 200
        refusal = told(bot, APPROVER, "nothing was approved")
        assert refusal.text == (
            f"Request {record.id} changed after this message was shown to you; nothing was"
            " approved. Look at the request again."
        )
        bot.wait(bot.settled, "the outbox to drain")
        assert_unchanged(bot, message, record)
        assert stored(bot, record).approvals == ()

        # The button as the message shows it does approve.
        bot.click(Action.APPROVE, message, APPROVER)
        bot.wait_reply(message, "Submitted to Defender as action")


def test_a_library_file_replaced_after_approval_is_refused_before_submission(
    tmp_path: Path,
) -> None:
    env, _ = with_policy(tmp_path)
    with running_bot(tmp_path, env=env) as bot:
        tracker = bot.store_runtime.tracker
        tracker.stop()  # submission happens when this test says: after the file changes
        message, record = ask(bot, "putfile tool.exe; runscript ok.ps1 -Days 3")
        assert record.library == {
            "tool.exe": hashlib.sha256(b"MZ tool").hexdigest(),
            "ok.ps1": OK_SHA,
        }
        bot.click(Action.APPROVE, message, APPROVER)
        bot.click(Action.APPROVE, message, APPROVER_2)
        bot.wait_state(message, RequestState.APPROVED)

        # Someone uploads ok.ps1 again with OverrideIfExists: same name, other content.
        bot.defender.sim.replace_library_file("ok.ps1", b"'something else'")
        replaced = hashlib.sha256(b"'something else'").hexdigest()
        tracker.start()  # a stopped tracker submits nothing (a graceful stop): start it again

        said = bot.wait_reply(message, "Not submitted")
        assert said == (
            f"Not submitted: ok.ps1 changed: approved sha256 {OK_SHA}, now {replaced}."
            " Nothing ran. Ask for a new request so that it can be approved as it is now."
        )
        refused = bot.wait_state(message, RequestState.REFUSED)
        assert refused.action_id is None and refused.submitted_at is None
        assert runs_sent(bot) == []
        assert "refused_unapproved_payload" in event_kinds(bot, record)
        assert "submitting" not in event_kinds(bot, record)
        bot.wait(bot.settled, "the outbox to drain")
        assert bot.buttons(message) == set()

        # Nothing is left to submit on later passes either.
        tracker.tick()
        tracker.tick()
        assert runs_sent(bot) == []
        assert_slack_accepts_everything_sent(bot.slack)


def test_an_unchanged_library_is_read_again_and_the_run_goes_ahead(tmp_path: Path) -> None:
    env, _ = with_policy(tmp_path)
    with running_bot(tmp_path, env=env) as bot:
        message, _ = ask(bot, "putfile tool.exe")
        reads = len(bot.defender.api_requests("GET", "/api/libraryfiles"))

        bot.click(Action.APPROVE, message, APPROVER)

        bot.wait_reply(message, "Submitted to Defender as action")
        # Read once more, just before the POST (the modal's read is cached, not this one).
        assert len(bot.defender.api_requests("GET", "/api/libraryfiles")) == reads + 1
        assert len(runs_sent(bot)) == 1


# --- approval lifetime per kind --------------------------------------------------------------


def test_each_kind_has_its_own_approval_lifetime(tmp_path: Path) -> None:
    env, _ = with_policy(tmp_path, getfile_minutes=0.02)  # 1.2 s for GetFile alone
    with running_bot(tmp_path, env=env) as bot:
        getfile, quick = ask(bot, "getfile C:\\Temp\\a.txt")
        script, slow = ask(bot, "runscript ok.ps1")
        # A request mixing both kinds takes the shorter lifetime.
        mixed, both = ask(bot, "runscript ok.ps1; getfile C:\\Temp\\a.txt")

        assert (quick.expires_at - quick.created_at).total_seconds() == pytest.approx(1.2)
        assert (slow.expires_at - slow.created_at).total_seconds() == pytest.approx(3600)
        assert (both.expires_at - both.created_at).total_seconds() == pytest.approx(1.2)

        bot.wait_reply(getfile, "it expired")
        bot.wait_reply(mixed, "it expired")
        assert stored(bot, slow).state is RequestState.AWAITING_APPROVAL
        assert bot.thread(script) == []

        click_as_first_shown(bot, Action.APPROVE, getfile, APPROVER)
        told(bot, APPROVER, f"Request {quick.id} has expired")
        bot.click(Action.APPROVE, script, APPROVER)
        bot.click(Action.APPROVE, script, APPROVER_2)
        bot.wait_reply(script, "Submitted to Defender as action")
        [run] = runs_sent(bot)
        assert slow.id in run.body["Comment"]


# --- a bad policy stops the start ------------------------------------------------------------


def test_a_bad_policy_file_stops_the_bot_with_the_precise_error(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(policy_text().replace("approvals = 2", "approvals = 9"), encoding="utf-8")

    with (
        pytest.raises(ConfigurationError) as caught,
        running_bot(tmp_path, env={"LRBOT_POLICY": str(path)}),
    ):
        pass  # pragma: no cover

    assert str(caught.value) == (
        f"LRBOT_POLICY {path}: runscript.approvals: must be from 1 to 5, not 9"
    )
