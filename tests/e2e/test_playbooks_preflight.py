"""The library picker, playbooks and the preflight, as an analyst and an approver see them.

The real bot in HTTP mode, the stand-in Slack and the Defender simulator, all on loopback:
options requests and submissions are signed requests to ``/slack/events``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.ids import Action, Block, row_block
from bot.records import RequestState
from bot.sandbox._slack_records import Message, OpenedView
from commands.simulator import SimLibraryFile, SimMachine
from tests.e2e.slack_checks import assert_slack_accepts_everything_sent
from tests.helpers.bot import APPROVER, CHANNEL, JUSTIFICATION, REQUESTER, BotHarness, running_bot
from tests.helpers.defender import build_scenario

pytestmark = pytest.mark.usefixtures("no_errors_logged")

DEVICE = str(Block.DEVICE)
WHY = str(Block.JUSTIFICATION)
VALUE = str(Action.VALUE)
PICKER = str(Action.LIBRARY_FILE)

PLAYBOOKS = """
[playbooks.triage]
description = "Copy the tool, run ok.ps1, collect a file"
commands = '''
putfile tool.exe
runscript ok.ps1 -Days {days}
getfile C:\\Temp\\{file}
'''

[playbooks.triage.parameters.days]
description = "days back"
pattern = "[0-9]{1,2}"
default = "3"

[playbooks.triage.parameters.file]
description = "a file name in C:\\\\Temp"
pattern = "[A-Za-z0-9_.-]+"
example = "a.txt"
"""

LIBRARY = [
    SimLibraryFile(file_name="tool.exe", content=b"MZ tool", description="Sysinternals bundle"),
    SimLibraryFile(
        file_name="ok.ps1",
        content=b"'ok'",
        description="Says all is well",
        has_parameters=True,
        parameters_description="-Days <n>",
    ),
    SimLibraryFile(file_name="fail.ps1", content=b"throw", description="Always fails"),
    SimLibraryFile(file_name="Collect-Logs.ps1", content=b"'logs'", description="Event logs"),
]


NOT_ONBOARDED = SimMachine(
    id="f" * 40, computer_dns_name="new-01.contoso.com", onboarding_status="InsufficientInfo"
)


def _bot(tmp_path: Path, **env: str) -> Any:
    playbooks = tmp_path / "playbooks.toml"
    playbooks.write_text(PLAYBOOKS, encoding="utf-8")
    scenario = build_scenario(library=LIBRARY)
    scenario = scenario.model_copy(update={"machines": [*scenario.machines, NOT_ONBOARDED]})
    return running_bot(tmp_path, scenario, env={"LRBOT_PLAYBOOKS": str(playbooks), **env})


def shown(message: Message) -> str:
    texts: list[str] = []
    for block in message.blocks:
        if block["type"] in ("header", "section"):
            texts.append(block["text"]["text"])
        texts += [f["text"] for f in block.get("fields", [])]
        if block["type"] == "context":
            texts += [e["text"] for e in block["elements"]]
    return "\n".join(texts)


def submit(bot: BotHarness, view: OpenedView, state: dict[str, dict[str, object]]) -> Any:
    answer = bot.send.view_submission(view, REQUESTER, state)
    assert answer.status_code == 200, answer.text
    return answer.json() if answer.content else {}


def library_calls(bot: BotHarness) -> int:
    return len(bot.defender.api_requests("GET", "/api/libraryfiles"))


def assert_nothing_requested(bot: BotHarness) -> None:
    assert bot.store_runtime.store.in_states(list(RequestState)) == []
    assert bot.slack.messages(CHANNEL, include_replies=True) == []


# --- the library picker --------------------------------------------------------------------


def test_picker_offers_library_files_with_descriptions_filtered_by_what_is_typed(
    tmp_path: Path,
) -> None:
    with _bot(tmp_path) as bot:
        opened = bot.slash("")
        before = library_calls(bot)

        def options(typed: str) -> list[dict[str, Any]]:
            answer = bot.send.block_suggestion(
                PICKER, typed, user_id=REQUESTER, view=opened, block_id=row_block(0, "file")
            )
            assert answer.status_code == 200, answer.text
            return list(answer.json()["options"])

        everything = options("")
        assert [o["value"] for o in everything] == [
            "Collect-Logs.ps1",
            "fail.ps1",
            "ok.ps1",
            "tool.exe",
        ]
        assert everything[2]["text"]["text"] == "ok.ps1 — Says all is well · -Days <n>"
        assert all(len(o["text"]["text"]) <= 75 for o in everything)

        assert [o["value"] for o in options("COLLECT")] == ["Collect-Logs.ps1"]
        assert [o["value"] for o in options("fails")] == ["fail.ps1"]  # by its description
        assert options("nothing-like-this") == []
        # One listing served every keystroke (Slack gives options 3 seconds).
        assert library_calls(bot) - before == 1


def test_picked_files_make_commands_and_a_file_gone_since_is_an_error_at_submit(
    tmp_path: Path,
) -> None:
    with _bot(tmp_path) as bot:
        opened = bot.slash("")
        answer = bot.send.block_suggestion(
            PICKER, "ok", user_id=REQUESTER, view=opened, block_id=row_block(0, "file")
        )
        assert [o["value"] for o in answer.json()["options"]] == ["ok.ps1"]  # cached now
        state: dict[str, dict[str, object]] = {
            DEVICE: {VALUE: "ws-001.contoso.com"},
            row_block(0, "type"): {VALUE: "RunScript"},
            row_block(0, "file"): {PICKER: "ok.ps1"},
            row_block(0, "value"): {VALUE: "-Days 3"},
            WHY: {VALUE: JUSTIFICATION},
        }

        bot.defender.sim.delete_library_file("ok.ps1")
        refused = submit(bot, opened, state)

        assert refused["response_action"] == "errors"
        assert (
            "ok.ps1 is not in the live response library" in refused["errors"][row_block(0, "file")]
        )
        assert_nothing_requested(bot)

        bot.defender.sim.replace_library_file("ok.ps1", b"'ok again'", "Says all is well")
        assert submit(bot, opened, state) == {}
        message = bot.wait(lambda: bot.slack.messages(CHANNEL)[0], "the request message")
        assert "```runscript ok.ps1 -Days 3```" in shown(message)


@pytest.mark.parametrize(
    ("kind", "value", "block", "words"),
    [
        ("GetFile", "", "file", "GetFile collects a path from the device"),
        ("PutFile", "-x", "value", "PutFile takes only the library file"),
        ("RunScript", "ok.ps1 -Days 3", "value", "ok.ps1 is picked above"),
    ],
)
def test_a_picked_file_that_does_not_fit_its_row_is_a_field_error(
    tmp_path: Path, kind: str, value: str, block: str, words: str
) -> None:
    with _bot(tmp_path) as bot:
        opened = bot.slash("")
        state: dict[str, dict[str, object]] = {
            DEVICE: {VALUE: "ws-001.contoso.com"},
            row_block(0, "type"): {VALUE: kind},
            row_block(0, "file"): {PICKER: "ok.ps1"},
            row_block(0, "value"): {VALUE: value},
            WHY: {VALUE: JUSTIFICATION},
        }
        answer = submit(bot, opened, state)
        assert words in answer["errors"][row_block(0, block)]
        assert_nothing_requested(bot)


def test_typed_commands_still_work_beside_the_picker(tmp_path: Path) -> None:
    with _bot(tmp_path) as bot:
        message = bot.request("ws-001.contoso.com", "putfile tool.exe; runscript ok.ps1 -Days 3")
        assert "```putfile tool.exe```" in shown(message)
        assert "```runscript ok.ps1 -Days 3```" in shown(message)


# --- playbooks ------------------------------------------------------------------------------


def test_typed_playbook_is_shown_in_full_before_approval_and_runs(tmp_path: Path) -> None:
    with _bot(tmp_path) as bot:
        opened = bot.slash("ws-001.contoso.com playbook triage file=a.txt")
        blocks = {b.get("block_id"): b for b in opened.view["blocks"]}
        assert blocks[str(Block.PLAYBOOK)]["element"]["initial_option"]["value"] == "triage"
        assert blocks[str(Block.PLAYBOOK_PARAMS)]["element"]["initial_value"] == "file=a.txt"

        answer = submit(
            bot,
            opened,
            {
                DEVICE: {VALUE: "ws-001.contoso.com"},
                str(Block.PLAYBOOK): {VALUE: "triage"},
                str(Block.PLAYBOOK_PARAMS): {VALUE: "file=a.txt"},
                WHY: {VALUE: JUSTIFICATION},
            },
        )
        assert answer == {}
        message = bot.wait(lambda: bot.slack.messages(CHANNEL)[0], "the request message")
        text = shown(message)
        assert "*Playbook* `triage` (file=a.txt)" in text
        for command in ("putfile tool.exe", "runscript ok.ps1 -Days 3", "getfile C:\\Temp\\a.txt"):
            assert f"```{command}```" in text
        record = bot.wait(lambda: bot.record(message), "the message's ts in the store")
        assert record.machine["playbook"] == {
            "name": "triage",
            "params": {"file": "a.txt"},
        }

        bot.click(Action.APPROVE, message, APPROVER)
        bot.wait_reply(message, "Submitted to Defender as action")
        [post] = bot.defender.api_requests("POST")
        assert [c["type"] for c in post.body["Commands"]] == ["PutFile", "RunScript", "GetFile"]
        bot.advance(60)
        assert "3 of 3" in bot.wait_reply(message, "Succeeded")
        assert_slack_accepts_everything_sent(bot.slack)


def test_playbook_chosen_in_the_modal_with_a_parameter_overriding_its_default(
    tmp_path: Path,
) -> None:
    with _bot(tmp_path) as bot:
        opened = bot.slash("")
        answer = submit(
            bot,
            opened,
            {
                DEVICE: {VALUE: "ws-001.contoso.com"},
                str(Block.PLAYBOOK): {VALUE: "triage"},
                str(Block.PLAYBOOK_PARAMS): {VALUE: "days=7 file=b.log"},
                WHY: {VALUE: JUSTIFICATION},
            },
        )
        assert answer == {}
        message = bot.wait(lambda: bot.slack.messages(CHANNEL)[0], "the request message")
        assert "```runscript ok.ps1 -Days 7```" in shown(message)
        assert "```getfile C:\\Temp\\b.log```" in shown(message)


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ("", "needs file"),
        ("file=a.txt;getfile", "would change the command"),
        ("file=a.txt colour=red", "has no parameter colour"),
        ("file=a.txt days=many", "does not match"),
    ],
)
def test_bad_playbook_parameters_are_a_field_error_in_the_modal(
    tmp_path: Path, params: str, words: str
) -> None:
    with _bot(tmp_path) as bot:
        opened = bot.slash("")
        answer = submit(
            bot,
            opened,
            {
                DEVICE: {VALUE: "ws-001.contoso.com"},
                str(Block.PLAYBOOK): {VALUE: "triage"},
                str(Block.PLAYBOOK_PARAMS): {VALUE: params},
                WHY: {VALUE: JUSTIFICATION},
            },
        )
        assert answer["response_action"] == "errors"
        error = answer["errors"][str(Block.PLAYBOOK_PARAMS)]
        assert words in error and "Usage: triage" in error
        assert_nothing_requested(bot)


def test_typed_playbook_that_cannot_expand_is_answered_ephemerally(tmp_path: Path) -> None:
    with _bot(tmp_path) as bot:
        for text, words in [
            ("ws-001 playbook nosuch", "No playbook nosuch. Playbooks: triage."),
            ("ws-001 playbook triage file=$(whoami)", "would change the command"),
        ]:
            answer = bot.send.slash_command(text, user_id=REQUESTER, channel_id=CHANNEL)
            assert answer.status_code == 200
            body = answer.json()
            assert body["response_type"] == "ephemeral"
            assert words in body["text"]
        assert bot.slack.views() == []


def test_the_policy_judges_a_playbook_by_its_expansion(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    rule = f'requesters = ["*"]\napprovers = ["{APPROVER}"]\n'
    policy.write_text(
        f'blocked_scripts = ["ok.ps1"]\n[getfile]\n{rule}[putfile]\n{rule}[runscript]\n{rule}',
        encoding="utf-8",
    )
    with _bot(tmp_path, LRBOT_POLICY=str(policy)) as bot:
        opened = bot.slash("")
        answer = submit(
            bot,
            opened,
            {
                DEVICE: {VALUE: "ws-001.contoso.com"},
                str(Block.PLAYBOOK): {VALUE: "triage"},
                str(Block.PLAYBOOK_PARAMS): {VALUE: "file=a.txt"},
                WHY: {VALUE: JUSTIFICATION},
            },
        )
        assert answer["response_action"] == "errors"
        assert "Command 2" in answer["errors"][str(Block.PLAYBOOK_PARAMS)]
        assert "ok.ps1" in answer["errors"][str(Block.PLAYBOOK_PARAMS)]
        assert_nothing_requested(bot)


# --- preflight ------------------------------------------------------------------------------


def test_preflight_is_on_the_request_message_before_approval(tmp_path: Path) -> None:
    with _bot(tmp_path) as bot:
        message = bot.request("ws-001.contoso.com", "putfile tool.exe; runscript ok.ps1")
        text = shown(message)
        tool_sha = LIBRARY[0].sha256

        assert "*Preflight*" in text
        for line in (
            "✅ Onboarded to Defender.",
            "✅ OS Windows11 22H2 supports live response.",
            "✅ No other live response action on the device.",
            f"✅ tool.exe in the library, sha256 {tool_sha}.",
            "✅ Command order valid",
            "Defender stops each script after 10 min",
            "it must start within 120 min of approval",
        ):
            assert line in text
        assert "Last seen" in text


def test_preflight_names_the_action_already_on_the_device_and_whose_it_is(
    tmp_path: Path,
) -> None:
    with _bot(tmp_path) as bot:
        first = bot.request("ws-001.contoso.com", "runscript ok.ps1")
        bot.click(Action.APPROVE, first, APPROVER)
        record = bot.wait_state(first, RequestState.PENDING, RequestState.IN_PROGRESS)

        second = bot.request("ws-001.contoso.com", "getfile C:\\Temp\\a.txt")

        text = shown(second)
        line = next(t for t in text.splitlines() if record.action_id in t)
        assert line.startswith("⚠️ The device already has a live response action running")
        assert "started by " in line and line.endswith("this run waits for it.")


@pytest.mark.parametrize(
    ("device", "words"),
    [
        ("old-01.contoso.com", "Live response does not support Windows7 SP1"),
        ("new-01.contoso.com", "not onboarded to Defender (status: InsufficientInfo)"),
    ],
)
def test_a_device_that_cannot_run_it_is_refused_at_submit_with_the_reason(
    tmp_path: Path, device: str, words: str
) -> None:
    with _bot(tmp_path) as bot:
        opened = bot.slash("")
        answer = bot.submit(
            opened,
            {
                DEVICE: device,
                str(Block.COMMANDS_TEXT): "getfile C:\\Temp\\a.txt",
                WHY: JUSTIFICATION,
            },
        )
        assert answer["response_action"] == "errors"
        assert words in answer["errors"][DEVICE]
        assert_nothing_requested(bot)
        assert bot.defender.api_requests("POST") == []
