"""SIGTERM (a deploy, ``docker stop``): ``lrbot serve`` takes no new Slack requests, ends
within LRBOT_SHUTDOWN_SECONDS, and the next start finishes every run it left, exactly once."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from bot.ids import Action
from bot.records import RequestState
from commands.simulator import Fault
from tests.helpers.bot import APPROVER_2, CHANNEL, REQUESTER
from tests.helpers.process import bot_world

BOUND = 3.0
MARGIN = 5.0  # the interpreter's own exit, on a busy 2-core machine


def test_sigterm_with_runs_in_flight_stops_in_bound_and_the_next_start_ends_them(
    tmp_path: Path,
) -> None:
    with bot_world(tmp_path) as world:
        world.overrides["LRBOT_SHUTDOWN_SECONDS"] = str(BOUND)
        first = world.start()
        # One run at Defender, running; another one's submission in flight, its answer held.
        running = world.request("ws-001.contoso.com", "runscript ok.ps1")
        assert world.click(Action.APPROVE, running, APPROVER_2).status_code == 200
        world.wait(lambda: world.record(running).action_id, "the first run submitted")
        post = world.sim.fault(Fault(method="POST", path_regex="/runliveresponse$", hold=True))
        held = world.request("srv-000.contoso.com", "runscript ok.ps1")
        assert world.click(Action.APPROVE, held, APPROVER_2).status_code == 200
        assert post.arrived.wait(10), "the second run was not submitted"
        # And one still waiting for its approval.
        waiting = world.request("srv-001.contoso.com", "runscript ok.ps1")

        started = time.monotonic()
        assert first.terminate(BOUND + MARGIN) == 0
        assert time.monotonic() - started < BOUND + MARGIN
        assert "stopping: no new Slack requests" in first.log()
        assert not first.errors()
        with pytest.raises(httpx.TransportError):  # nobody takes Slack's requests now
            world.send.slash_command("", user_id=REQUESTER, channel_id=CHANNEL)
        assert world.record(held).state is RequestState.SUBMITTING  # left to the store

        post.release()
        world.start()
        for message in (running, held):
            record = world.finished(message)
            assert record.action_status == "Succeeded"
            assert len(world.run_posts(record.id)) == 1
            [action] = world.actions_of(record.id)
            assert action["status"] == "Succeeded"
        assert world.record(waiting).state is RequestState.AWAITING_APPROVAL
        assert world.click(Action.APPROVE, waiting, APPROVER_2).status_code == 200
        assert world.finished(waiting).action_status == "Succeeded"
        for process in world.processes:
            assert not process.errors(), process.errors()
