"""Health, metrics and log lines, as the engineer on call sees them, from the real bot."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.http import HttpServer
from bot.ids import Action
from bot.logs import JsonFormatter
from bot.records import RequestState
from bot.settings import load_bot_settings
from commands.simulator import Fault
from tests.helpers.bot import APPROVER, CHANNEL, REQUESTER, BotHarness, running_bot
from tests.helpers.runs import approve

_VIEWS_OPEN = (("error", "expired_trigger_id"), ("method", "views.open"))
COMMANDS = "putfile tool.exe; runscript ok.ps1 -Days 3; getfile C:\\Temp\\a.txt"
RUN = "/api/machines/{id}/runliveresponse"


def get(bot: BotHarness, path: str) -> httpx.Response:
    assert bot.server is not None
    return httpx.get(bot.server.base_url + path, timeout=5, trust_env=False)


def scrape(bot: BotHarness) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` parsed: {(sample name, sorted labels): value}."""
    answer = get(bot, "/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: dict[Any, float], name: str, **labels: str) -> float:
    """The sum over every sample of ``name`` whose labels include ``labels``."""
    return sum(
        v for (n, have), v in samples.items() if n == name and set(labels.items()) <= set(have)
    )


def finish(bot: BotHarness, message: Any) -> None:
    bot.wait_reply(message, "Submitted to Defender")
    bot.advance(60)
    bot.wait_reply(message, "Succeeded")
    bot.wait(bot.settled, "the outbox to drain")


# --- metrics ---------------------------------------------------------------------------------


def test_metrics_count_what_a_run_did_and_a_429_defender_gave(tmp_path: Path) -> None:
    with running_bot(tmp_path) as bot:
        bot.defender.sim.fault(
            Fault(method="POST", path_regex="runliveresponse", status=429, retry_after=0.2)
        )
        message = approve(bot, "ws-001.contoso.com", COMMANDS)
        finish(bot, message)
        rejected = bot.request("ws-001.contoso.com", "runscript ok.ps1")
        bot.click(Action.REJECT, rejected, APPROVER)
        bot.wait_state(rejected, RequestState.REJECTED)

        samples = scrape(bot)
        assert value(samples, "lrbot_requests_total", outcome="requested") == 2
        assert value(samples, "lrbot_requests_total", outcome="approved") == 1
        assert value(samples, "lrbot_requests_total", outcome="rejected") == 1
        assert value(samples, "lrbot_requests_total", outcome="expired") == 0
        assert value(samples, "lrbot_runs_finished_total", status="Succeeded") == 1
        calls = "lrbot_defender_calls_total"
        assert value(samples, calls, method="POST", endpoint=RUN, status="429") == 1
        assert value(samples, calls, method="POST", endpoint=RUN, status="201") == 1
        assert value(samples, "lrbot_defender_throttled_total", endpoint=RUN) == 1
        # The batched polls, and a result link for each of the two results.
        assert total(samples, calls, endpoint="/api/machineactions", status="200") >= 1
        links = "/api/machineactions/{id}/GetLiveResponseResultDownloadLink"
        assert total(samples, calls, endpoint=links, status="200") == 2
        assert value(samples, "lrbot_queue_depth") == 0
        assert value(samples, "lrbot_store_up") == 1
        # Every click and form was acknowledged, and measured.
        ack = "lrbot_slack_ack_seconds_count"
        assert value(samples, ack, kind="slash_command") == 2
        assert value(samples, ack, kind="view_submission") == 2
        assert value(samples, ack, kind="block_actions") == 2
        # Submitted, started, 3 commands, a result's output and the final word at least.
        assert value(samples, "lrbot_status_reply_seconds_count") >= 6
        assert total(samples, "lrbot_slack_api_errors_total") == 0


def test_the_queue_and_its_reasons_are_gauges_read_from_the_store(tmp_path: Path) -> None:
    with running_bot(tmp_path, limits={"runs_per_minute": 1}) as bot:
        first = approve(bot, "ws-001.contoso.com", "runscript ok.ps1")
        bot.wait_reply(first, "Submitted to Defender")
        second = approve(bot, "srv-000.contoso.com", "runscript ok.ps1")
        bot.wait(
            lambda: any(
                e["kind"] == "queued"
                for e in bot.store_runtime.store.events_of(bot.record(second).id)
            ),
            "the second run to wait for the run rate",
        )
        samples = scrape(bot)
        assert value(samples, "lrbot_queue_depth") == 1
        assert value(samples, "lrbot_queue_waiting", reason="run_rate") == 1
        assert value(samples, "lrbot_requests_open", state="approved") == 1


def test_slack_errors_are_counted_by_method_and_error(tmp_path: Path) -> None:
    with running_bot(tmp_path) as bot:
        # A user Slack does not know: users.info answers user_not_found.
        bot.store_runtime.tracker.directory.display_name("U0NOBODY1")
        # A listener's own call (Bolt gives each request a client of its own).
        bot.slack.fail("views.open", "expired_trigger_id")
        bot.send.slash_command("", user_id=REQUESTER, channel_id=CHANNEL)
        bot.wait(lambda: bot.slack.call_count("views.open"), "the bot to try the modal")
        samples = bot.wait(
            lambda: (s := scrape(bot))[("lrbot_slack_api_errors_total", _VIEWS_OPEN)] and s,
            "the failed views.open counted",
        )
        assert samples[("lrbot_slack_api_errors_total", _VIEWS_OPEN)] == 1
        assert (
            value(
                samples, "lrbot_slack_api_errors_total", method="users.info", error="user_not_found"
            )
            == 1
        )


def test_two_bots_in_one_process_keep_their_own_metrics(tmp_path: Path) -> None:
    with (
        running_bot(tmp_path / "a") as one,
        running_bot(tmp_path / "b") as two,
    ):
        message = approve(one, "ws-001.contoso.com", "runscript ok.ps1")
        one.wait_reply(message, "Submitted to Defender")
        assert value(scrape(one), "lrbot_requests_total", outcome="approved") == 1
        assert value(scrape(two), "lrbot_requests_total", outcome="approved") == 0
        assert total(scrape(two), "lrbot_slack_ack_seconds_count") == 0


# --- health ----------------------------------------------------------------------------------


def readiness(bot: BotHarness) -> tuple[int, dict[str, Any]]:
    answer = get(bot, "/readyz")
    return answer.status_code, answer.json()


@contextmanager
def probing(bot: BotHarness) -> Iterator[None]:
    """The idle probes ``lrbot serve`` runs (the harness does not start them)."""
    health = bot.store_runtime.health
    health.start()
    try:
        yield
    finally:
        health.stop()


def test_healthz_answers_and_readyz_waits_for_slack_and_defender(tmp_path: Path) -> None:
    with running_bot(tmp_path, env={"LRBOT_READY_SECONDS": 1}) as bot:
        assert get(bot, "/healthz").status_code == 200
        status, body = readiness(bot)
        assert status == 503 and body["parts"]["database"] == "ok"
        assert body["parts"]["defender"] == "not reached yet"
        with probing(bot):
            bot.wait(lambda: readiness(bot)[0] == 200, "the bot to be ready")
        assert readiness(bot)[1] == {
            "ready": True,
            "parts": {"database": "ok", "slack": "ok", "defender": "ok"},
        }
        assert bot.slack.call_count("auth.test") >= 1


def test_readyz_names_defender_when_it_stops_answering(tmp_path: Path) -> None:
    with running_bot(tmp_path, env={"LRBOT_READY_SECONDS": 1}) as bot, probing(bot):
        bot.wait(lambda: readiness(bot)[0] == 200, "the bot to be ready")
        bot.defender.sim.fault(Fault(method="GET", path_regex="libraryfiles", drop=True, times=999))
        status, body = bot.wait(
            lambda: (r := readiness(bot))[1]["parts"]["defender"].startswith("failing") and r,
            "readiness to name Defender",
        )
        assert status == 503 and body["parts"]["database"] == "ok"
        bot.defender.sim.clear_faults()
        bot.wait(lambda: readiness(bot)[0] == 200, "the bot to be ready again", timeout=20)


def test_readyz_names_the_database_when_it_refuses_connections(
    tmp_path: Path, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    name = postgres_url.rsplit("/", 1)[1]
    admin_dsn = postgres_url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0]
    with (
        running_bot(tmp_path, env={"LRBOT_DATABASE_URL": postgres_url}) as bot,
        psycopg.connect(admin_dsn + "/postgres", autocommit=True) as admin,
    ):
        bot.store_runtime.health.probe_stale()
        assert readiness(bot)[0] == 200
        admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name]
        )
        try:
            status, body = readiness(bot)
            assert status == 503
            assert body["parts"]["database"].startswith("not answering")
            assert scrape(bot)[("lrbot_store_up", ())] == 0  # the rest still scrapes
            bot.store_runtime.deliverer.wake()
            bot.wait(
                lambda: any("outbox pass failed" in r.getMessage() for r in caplog.records),
                "the outbox to meet the outage",
            )
        finally:
            admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        bot.wait(lambda: readiness(bot)[0] == 200, "the database to answer again")
        # The outbox outlived the outage: a new request is posted.
        bot.request("ws-001.contoso.com", "runscript ok.ps1")


# --- logs ------------------------------------------------------------------------------------


@contextmanager
def json_lines() -> Iterator[io.StringIO]:
    """Every record from now on, as ``lrbot serve`` writes it by default."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_each_log_record_is_one_json_line_naming_the_run(tmp_path: Path) -> None:
    with json_lines() as stream, running_bot(tmp_path) as bot:
        message = approve(bot, "ws-001.contoso.com", COMMANDS)
        finish(bot, message)
        record = bot.record(message)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines and all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    about_run = [line for line in lines if line.get("action_id") == record.action_id]
    assert about_run, "no line names the action"
    assert all(
        line["request_id"] == record.id
        and line["user"] == REQUESTER
        and line["device_id"] == record.machine_id
        for line in about_run
    )
    # The submission is told with all four; the approval click names who clicked.
    assert any("submitted as action" in line["message"] for line in about_run)
    assert any(line.get("user") == APPROVER and line["logger"].startswith("bot.") for line in lines)


def test_an_exception_is_one_field_of_one_line() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("bot.test_observability")
    log.addHandler(handler)
    try:
        try:
            raise ValueError("bad\nthing")
        except ValueError:
            log.exception("it failed", extra={"request_id": "lr-12345678"})
    finally:
        log.removeHandler(handler)
    [line] = stream.getvalue().splitlines()
    parsed = json.loads(line)
    assert parsed["level"] == "ERROR" and parsed["request_id"] == "lr-12345678"
    assert parsed["exception"].startswith("Traceback") and "ValueError: bad" in parsed["exception"]


def test_socket_modes_health_port_serves_health_and_metrics_only(tmp_path: Path) -> None:
    """What ``lrbot serve`` starts on LRBOT_HEALTH_PORT in Socket Mode (no Slack endpoint)."""
    settings = load_bot_settings(_env_file=None)
    assert (settings.health_host, settings.health_port) == ("127.0.0.1", 9090)
    with running_bot(tmp_path) as bot:
        runtime = bot.store_runtime
        server = HttpServer(None, port=0, threads=2, ops=(runtime.health, runtime.metrics))
        server.start()
        try:
            with httpx.Client(base_url=server.base_url, timeout=5, trust_env=False) as http:
                assert http.get("/healthz").text == "ok\n"
                assert "lrbot_requests_total" in http.get("/metrics").text
                ready = http.get("/readyz")
                assert ready.status_code == 503 and ready.json()["parts"]["database"] == "ok"
                assert http.post("/slack/events", content=b"{}").status_code == 404
        finally:
            server.stop()
