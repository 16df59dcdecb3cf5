"""Results in the thread: RunScript output inline or as a file, GetFile decompressed, a
result over the size limit explained instead of posted, NUL padding gone."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from bot.sandbox._slack_records import Message
from commands.simulator import Scenario, SimFile, SimLibraryFile, SimScript
from commands.simulator.planning import script_result
from tests.helpers.bot import CHANNEL, BotHarness
from tests.helpers.defender import build_scenario
from tests.helpers.runs import approve, run_bot

A_TXT = b"hello from ws-001\n" * 200
LONG_OUTPUT = "".join(f"line {n:03d}: collected\n" for n in range(40))  # 800 characters


def finished(bot: BotHarness, message: Message) -> list[str]:
    """Advance Defender past the run's end; the thread once everything was delivered."""
    bot.wait_reply(message, "Submitted to Defender")
    bot.advance(60)
    bot.wait_reply(message, "Finished on")
    bot.wait(bot.settled, "the outbox to drain")
    return bot.thread(message)


def test_runscript_output_is_shown_with_exit_code_size_and_sha256(tmp_path: Path) -> None:
    document = script_result("ok.ps1", SimScript(seconds=5, output="all good\n", exit_code=0))
    with run_bot(tmp_path) as bot:
        message = approve(bot, "ws-001.contoso.com", "runscript ok.ps1")
        replies = finished(bot, message)
        [result] = [r for r in replies if "exited with code" in r]
        assert result.startswith("Command 1 of 1 (runscript ok.ps1) exited with code 0.")
        assert "Output: all good" in result
        assert f"Result {len(document)} bytes" in result
        assert f"SHA-256 {hashlib.sha256(document).hexdigest()}" in result
        assert bot.slack.uploads() == []
        blocks = json.dumps(bot.slack.thread(CHANNEL, message.ts)[replies.index(result)].blocks)
        assert "all good" in blocks and "\\u0000" not in blocks


def with_long_script() -> Scenario:
    """The test tenant, plus ``long.ps1``, whose output is longer than 100 characters."""
    base = build_scenario()
    return build_scenario(
        library=[*base.library, SimLibraryFile(file_name="long.ps1", content=b"'long'")],
        scripts={**base.scripts, "long.ps1": SimScript(seconds=2, output=LONG_OUTPUT)},
    )


def test_long_output_is_also_uploaded_as_a_file(tmp_path: Path) -> None:
    with run_bot(tmp_path, with_long_script(), env={"LRBOT_INLINE_OUTPUT_CHARS": 100}) as bot:
        message = approve(bot, "ws-001.contoso.com", "runscript long.ps1")
        replies = finished(bot, message)
        [result] = [r for r in replies if "exited with code" in r]
        assert "Output attached as a file." in result
        assert "line 039" not in result
        [upload] = bot.slack.uploads()
        assert upload.data == LONG_OUTPUT.encode()
        assert upload.thread_ts == message.ts
        assert upload.name.endswith("-command-1-output.txt")
        document = script_result("long.ps1", SimScript(seconds=2, output=LONG_OUTPUT))
        assert upload.initial_comment is not None
        assert hashlib.sha256(document).hexdigest() in upload.initial_comment
        # The reply with the exit code comes first, then the file.
        assert replies.index(result) < next(
            i for i, r in enumerate(replies) if r.startswith("Result of Command 1")
        )


def test_a_failed_upload_of_long_output_is_retried_without_repeating_the_reply(
    tmp_path: Path,
) -> None:
    with run_bot(tmp_path, with_long_script(), env={"LRBOT_INLINE_OUTPUT_CHARS": 100}) as bot:
        message = approve(bot, "ws-001.contoso.com", "runscript long.ps1")
        bot.slack.fail("files.getUploadURLExternal", status=429, retry_after=1, times=1)
        replies = finished(bot, message)
        assert len([r for r in replies if "exited with code" in r]) == 1
        assert len(replies) == len(set(replies))
        [upload] = [u for u in bot.slack.uploads() if u.completed]
        assert upload.data == LONG_OUTPUT.encode()
        assert bot.slack.calls("files.getUploadURLExternal")[0].status == 429


def test_getfile_is_uploaded_decompressed_with_its_sha256(tmp_path: Path) -> None:
    with run_bot(tmp_path) as bot:
        message = approve(bot, "ws-001.contoso.com", "getfile C:\\Temp\\a.txt")
        replies = finished(bot, message)
        [upload] = bot.slack.uploads()
        assert upload.data == A_TXT
        assert upload.name == "a.txt"
        assert upload.thread_ts == message.ts
        comment = upload.initial_comment or ""
        assert comment.startswith(
            "Result of Command 1 of 1 (getfile C:\\Temp\\a.txt) on ws-001.contoso.com:"
        )
        assert f"SHA-256 {hashlib.sha256(A_TXT).hexdigest()}" in comment
        assert "3.6 kB (3,600 bytes)" in comment
        assert comment in replies  # the upload's comment is a reply in the thread
        assert list((tmp_path / "data" / "results").iterdir()) == []  # no copy left here


# 4 kB of noise, so its gzip is over the limit too: the whole download is hashed.
BIG = b"".join(hashlib.sha256(str(n).encode()).digest() for n in range(128))
NOTE = "Fetch {file} from the Action center: action {action_id}, command {command}."


def with_big_file() -> Scenario:
    """The test tenant, with ``C:\\Temp\\big.bin`` (4,096 bytes) on ws-001."""
    base = build_scenario()
    first, *others = base.machines
    files = {**first.files, "C:\\Temp\\big.bin": SimFile(content=BIG)}
    return build_scenario(machines=[first.model_copy(update={"files": files}), *others])


def test_a_result_over_the_size_limit_is_described_not_uploaded(tmp_path: Path) -> None:
    env = {"LRBOT_MAX_RESULT_MB": 0.001, "LRBOT_LARGE_RESULT_NOTE": NOTE}  # 1,048 bytes
    with run_bot(tmp_path, with_big_file(), env=env) as bot:
        message = approve(bot, "ws-001.contoso.com", "getfile C:\\Temp\\big.bin")
        replies = finished(bot, message)
        assert bot.slack.calls("files.getUploadURLExternal") == []
        assert bot.slack.uploads() == []
        [too_large] = [r for r in replies if "limit" in r]
        action = bot.record(message).action_id
        assert too_large == (
            "The result of Command 1 of 1 (getfile C:\\Temp\\big.bin) is over the 1.0 kB limit"
            " for posting here, so it is not uploaded: big.bin, 4.1 kB (4,096 bytes),"
            f" SHA-256 {hashlib.sha256(BIG).hexdigest()}."
            f" Fetch big.bin from the Action center: action {action}, command 1."
        )
        assert any(r.startswith("Command 1 of 1") and "Completed" in r for r in replies)
        assert list((tmp_path / "data" / "results").iterdir()) == []  # nothing partial kept


def test_runscript_output_over_the_size_limit_gets_the_same_treatment(tmp_path: Path) -> None:
    document = script_result("long.ps1", SimScript(seconds=2, output=LONG_OUTPUT))
    with run_bot(tmp_path, with_long_script(), env={"LRBOT_MAX_RESULT_MB": 0.0005}) as bot:
        message = approve(bot, "ws-001.contoso.com", "runscript long.ps1")
        replies = finished(bot, message)
        assert bot.slack.uploads() == []
        [too_large] = [r for r in replies if "limit" in r]
        assert "(runscript long.ps1) is over the 524 bytes limit" in too_large
        assert f"output of long.ps1, {len(document)} bytes," in too_large
        assert f"SHA-256 {hashlib.sha256(document).hexdigest()}." in too_large
        assert "Download it from the Microsoft Defender portal: Action center" in too_large
        assert not [r for r in replies if "exited with code" in r]


def test_nul_padding_never_reaches_the_thread(tmp_path: Path) -> None:
    with run_bot(tmp_path) as bot:
        message = approve(bot, "ws-001.contoso.com", "runscript padded.ps1")
        replies = finished(bot, message)
        [result] = [r for r in replies if "exited with code" in r]
        assert result.startswith("Command 1 of 1 (runscript padded.ps1) exited with code 3.")
        assert "Output: line" in result
        for reply in bot.slack.thread(CHANNEL, message.ts):
            shown = reply.text + json.dumps(reply.blocks)
            assert "\x00" not in shown and "\\u0000" not in shown
