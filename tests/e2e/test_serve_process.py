"""``lrbot serve`` as a real process: its log lines (JSON by default, or text), and its
health and metrics on the Slack port, with the readiness probes ``serve`` runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bot.ids import Action
from tests.helpers.bot import APPROVER, REQUESTER
from tests.helpers.process import World, bot_world

TEXT_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) \S+ ")


def ops(world: World, path: str) -> httpx.Response:
    assert world.bot is not None
    return httpx.get(f"http://127.0.0.1:{world.bot.port}{path}", timeout=5, trust_env=False)


def test_serve_logs_json_lines_naming_the_run_and_serves_health_and_metrics(
    tmp_path: Path,
) -> None:
    with bot_world(tmp_path) as world:
        process = world.start()
        message = world.request("ws-001.contoso.com", "runscript ok.ps1")
        assert world.click(Action.APPROVE, message, APPROVER).status_code == 200
        record = world.finished(message)
        # Its probes reach Slack and Defender even though nothing else calls them now.
        world.wait(lambda: ops(world, "/readyz").status_code == 200, "the bot to be ready")
        assert ops(world, "/readyz").json()["parts"] == {
            "database": "ok",
            "slack": "ok",
            "defender": "ok",
        }
        samples = [
            s
            for family in text_string_to_metric_families(ops(world, "/metrics").text)
            for s in family.samples
        ]
        finished = {
            tuple(sorted(s.labels.items())): s.value
            for s in samples
            if s.name == "lrbot_runs_finished_total"
        }
        assert finished == {(("status", "Succeeded"),): 1}
        # The real client paces with Defender's budget: the lookups, polls and probes in it.
        budget = {
            (s.name, s.labels["window"]): s.value
            for s in samples
            if s.name.startswith("lrbot_defender_budget_")
        }
        assert budget[("lrbot_defender_budget_limit", "minute")] == 100
        assert budget[("lrbot_defender_budget_limit", "hour")] == 1500
        assert 1 <= budget[("lrbot_defender_budget_used", "minute")] <= 100
        assert budget[("lrbot_defender_budget_used", "hour")] >= 1
        world.kill()
        lines = [json.loads(line) for line in process.log().splitlines()]
    assert lines and all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    about_run = [line for line in lines if line.get("action_id") == record.action_id]
    assert any("submitted as action" in line["message"] for line in about_run)
    for line in about_run:
        assert line["request_id"] == record.id
        assert line["device_id"] == record.machine_id
        assert line["user"] == REQUESTER


def test_serve_logs_text_when_asked(tmp_path: Path) -> None:
    with bot_world(tmp_path) as world:
        process = world.start(("--log-format", "text"))
        world.kill()
        lines = process.log().splitlines()
    # A record is a line of its own (a multi-line message, such as MSAL's, continues below).
    assert TEXT_LINE.match(lines[0]), lines[0]
    records = [line for line in lines if TEXT_LINE.match(line)]
    assert any("serving Slack requests" in line for line in records)
    assert not any(line.startswith('{"ts"') for line in lines)
