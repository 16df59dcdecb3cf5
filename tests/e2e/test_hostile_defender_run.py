"""A run followed while Defender answers nonsense for a while: it is not lost, and it ends.

The simulator answers chosen requests with exact bytes (``Fault(body=…)``): polls that are
not JSON, nest too deeply, are no collection, hold an action of the wrong shape or with an
undocumented status, or link to a next page; result downloads with gzip cut short. Then
Defender is sane again. The run still ends once with its thread complete, nothing is
logged as an error, and the bot keeps serving.
"""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from commands.simulator import Fault
from tests.e2e.test_faults import (
    COMMANDS,
    POLLS,
    RUNSCRIPT_THREAD,
    THREAD,
    assert_ran_once,
    assert_still_serving,
    finish,
)
from tests.helpers.bot import BotHarness
from tests.helpers.runs import approve, run_bot

pytestmark = pytest.mark.usefixtures("no_errors_logged")

DEVICE = "ws-001.contoso.com"


def garbage_polls(action_id: str) -> list[Any]:
    action = {"id": action_id, "machineId": "x", "type": "LiveResponse"}
    return [
        b"<html>502 Bad Gateway</html>",
        b"[" * 100_000,
        b"\xff\xfe\x00",
        {"value": "not a list"},
        {"value": [action | {"status": 5}]},
        {"value": [action | {"commands": [{"commandStatus": "Completed"}]}]},  # no index
        {"value": [action | {"creationDateTimeUtc": "yesterday"}]},
        {"value": [{"id": action_id, "commands": [{"index": "one"}]}], "extra": [1, {}]},
        {"value": [], "@odata.nextLink": "http://[::1"},
        {"value": [action | {"status": "InProgress", "commands": [{"index": 99}]}]},
    ]


def serve_garbage(bot: BotHarness, bodies: list[Any], path: str = POLLS) -> None:
    """Answer the next requests to ``path`` with ``bodies``, one each; wait until all were read."""
    handles = [
        bot.defender.sim.fault(
            Fault(
                method="GET",
                path_regex=path,
                status=200,
                body=b if isinstance(b, bytes) else json.dumps(b).encode(),
            )
        )
        for b in bodies
    ]
    bot.store_runtime.tracker.wake()
    bot.wait(lambda: all(h.arrived.is_set() for h in handles), "every garbage answer to be read")


def test_garbage_polls_then_sane_answers_the_run_completes(tmp_path: Path) -> None:
    with run_bot(tmp_path) as bot:
        message = approve(bot, DEVICE, COMMANDS)
        bot.wait_reply(message, "Submitted to Defender")
        action_id = bot.record(message).action_id
        assert action_id
        serve_garbage(bot, garbage_polls(action_id))
        finish(bot, message)
        assert_ran_once(bot, message, THREAD)
        assert_still_serving(bot)


def test_an_unknown_action_status_is_not_final_and_is_warned_of_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.tracker")
    with run_bot(tmp_path) as bot:
        message = approve(bot, DEVICE, "runscript ok.ps1")
        bot.wait_reply(message, "Submitted to Defender")
        record = bot.record(message)
        assert record.action_id
        paused = {"id": record.action_id, "status": "Paused", "type": "LiveResponse"}
        serve_garbage(bot, [{"value": [paused]}] * 4)
        assert bot.record(message).action_status == record.action_status  # kept, not "Paused"
        assert "Paused" not in bot.current(message).text
        finish(bot, message)
        assert_ran_once(bot, message, RUNSCRIPT_THREAD)
        warnings = [r for r in caplog.records if "not a known status" in r.getMessage()]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert record.id in warnings[0].getMessage() and "'Paused'" in warnings[0].getMessage()


def test_a_truncated_gzip_result_is_told_in_the_thread(tmp_path: Path) -> None:
    with run_bot(tmp_path) as bot:
        message = approve(bot, DEVICE, "getfile C:\\Temp\\a.txt")
        bot.wait_reply(message, "Submitted to Defender")
        cut = gzip.compress(b"hello from ws-001\n" * 200)[:-6]
        bot.defender.sim.fault(Fault(method="GET", path_regex=r"^/blob/", status=200, body=cut))
        finish(bot, message)
        note = bot.wait_reply(message, "Could not get the result")
        assert "command 1" in note.lower() and "gzip stream is truncated" in note
        assert bot.thread(message)[-1].startswith("Finished")
        assert_still_serving(bot)
