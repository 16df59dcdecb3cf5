"""The leak guard finds what it is for: secrets planted in a log line, an exception, a Slack
message, an uploaded file, a database row (in a table the bot does not have yet), a file
and a process's output are each reported, by name and place.

Each test plants through the real paths (a logger, Slack's Web API, SQLAlchemy, a child
process) into the guard the autouse fixture gave it, checks the report, then clears what
it planted so that the fixture's own check passes.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.sandbox import FakeSlack
from bot.store import Store
from commands.simulator import LINK_MARKER, TOKEN_MARKER, Fault
from tests.helpers.bot import BOT_TOKEN, CHANNEL, running_bot
from tests.helpers.defender import SECRET
from tests.helpers.leaks import LeakGuard
from tests.helpers.runs import approve

LINK = f"https://st.invalid/blob/0a1b?sv=2020-08-04&sr=b&sp=r&sig={LINK_MARKER}x9Yz"
ACCESS_TOKEN = f"{TOKEN_MARKER}.abcDEF123"


def test_a_link_in_a_log_line_and_a_token_in_an_exception_are_found(
    leak_guard: LeakGuard,
) -> None:
    seen = leak_guard.log_records
    log = logging.getLogger("bot.outbox")
    log.debug("fetching %s", LINK)  # DEBUG counts too
    try:
        raise RuntimeError(f"401 for Bearer {ACCESS_TOKEN}")
    except RuntimeError:
        log.exception("result download failed")  # the message is clean: the traceback is not
    assert leak_guard.log_records >= seen + 2
    found = {(f.secret, f.where.split(" (")[0]) for f in leak_guard.scan_logs()}
    assert found == {
        ("a result download link's signature", "log record bot.outbox DEBUG"),
        ("a Defender access token (from the simulator)", "log record bot.outbox ERROR"),
    }
    with pytest.raises(AssertionError, match=r"2 secret\(s\) leaked"):
        leak_guard.check()
    leak_guard.forget_logs()
    assert leak_guard.findings() == []


def test_secrets_and_links_sent_to_slack_are_found_but_the_token_in_its_header_is_not(
    leak_guard: LeakGuard, tmp_path: Path
) -> None:
    with FakeSlack(token=BOT_TOKEN) as slack:
        slack.set_channel(CHANNEL, name="soc")
        leak_guard.watch_slack(slack, forbidden=("127.0.0.1:4242",))
        client = slack.client(BOT_TOKEN)
        client.chat_postMessage(channel=CHANNEL, text="Command 1 of 1: Completed")
        assert leak_guard.scan_slack() == []  # the bot token authenticates every call

        client.chat_postMessage(
            channel=CHANNEL,
            text="result",
            blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": f"<{LINK}|here>"}}],
        )
        upload = tmp_path / "out.txt"
        upload.write_text(f"DEFENDER_CLIENT_SECRET={SECRET}\nhttp://127.0.0.1:4242/api\n")
        client.files_upload_v2(channel=CHANNEL, file=str(upload), filename="out.txt")
    found = leak_guard.scan_slack()
    where = {(f.secret, f.where) for f in found}
    assert ("a result download link's signature", "Slack call 1 chat.postMessage parameters") in (
        where
    )
    assert ("a result download link (/blob/)", "Slack call 1 chat.postMessage body") in where
    uploaded = {f.secret for f in found if f.where == "Slack call 3 upload body"}
    assert uploaded == {"the Defender client secret", "Defender's address (127.0.0.1:4242)"}
    leak_guard.forget_all()


def test_a_secret_in_any_table_row_and_any_file_is_found(
    leak_guard: LeakGuard, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'lrbot.sqlite3'}"
    Store(url).close()  # the bot's tables
    engine = sa.create_engine(url)
    audit = sa.Table(  # one the bot does not have (yet): reflection finds it all the same
        "plugin_notes",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("detail", sa.JSON),
    )
    with engine.begin() as connection:
        audit.create(connection)
        connection.execute(audit.insert().values(detail={"auth": f"Bearer {ACCESS_TOKEN}"}))
    engine.dispose()
    results = tmp_path / "data" / "results"
    results.mkdir(parents=True)
    (results / "lrbot-result-x").write_bytes(b"-----BEGIN PRIVATE KEY-----\nMIIE...")
    leak_guard.watch_database(url)
    leak_guard.watch_directory(tmp_path / "data")

    [row] = leak_guard.scan_databases()
    assert row.secret == "a Defender access token (from the simulator)"
    assert row.where == "database table plugin_notes row 0 column detail"
    [file] = leak_guard.scan_files()
    assert file.secret == "a private key (PEM)"
    assert file.where == f"file {results / 'lrbot-result-x'}"
    leak_guard.forget_all()


def test_a_secret_in_a_process_output_is_found(leak_guard: LeakGuard, tmp_path: Path) -> None:
    code = f"import sys; print('starting'); print('token={BOT_TOKEN}', file=sys.stderr)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    leak_guard.watch_output("the child", lambda: done.stdout + done.stderr)
    [found] = leak_guard.scan_outputs()
    assert (found.secret, found.where) == ("the Slack bot token", "output of the child")
    assert "token=xoxb-" in found.excerpt
    leak_guard.forget_all()


def test_result_downloads_that_fail_leak_no_link(leak_guard: LeakGuard, tmp_path: Path) -> None:
    """The paths where a link is most at risk, under the guard: dropped connections to the
    blob (httpx's errors know the URL) retried by the client and then by the outbox (which
    logs and stores why), and a link that answers 404 (a result error in the thread)."""
    with running_bot(tmp_path) as bot:
        blob = bot.defender.sim.fault(Fault(method="GET", path_regex="^/blob/", drop=True, times=5))
        message = approve(bot, "ws-001.contoso.com", "getfile C:\\Temp\\a.txt")
        bot.wait_reply(message, "Submitted to Defender")
        bot.advance(60)
        bot.wait(lambda: bot.slack.uploads(), "the result, once the blob answers", timeout=20)
        assert blob.arrived.is_set()
        bot.wait(bot.settled, "the outbox to drain")

        bot.defender.sim.fault(Fault(method="GET", path_regex="^/blob/", status=404))
        second = approve(bot, "ws-001.contoso.com", "runscript ok.ps1")
        bot.wait_reply(second, "Submitted to Defender")
        bot.advance(60)
        error = bot.wait_reply(second, "Could not get the result")
        assert "answered 404" in error
        bot.wait(bot.settled, "the outbox to drain")
    assert leak_guard.log_records > 0
    # The fixture's check after this test is the assertion: nothing found anywhere.
