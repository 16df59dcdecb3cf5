"""DefenderClient with a CallBudget against the simulator: it paces instead of meeting 429s."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from commands.budget import CallBudget, Priority
from commands.client import DefenderClient
from commands.errors import BudgetExhausted, Throttled
from commands.models import CommandSequence, GetFile, RunScript
from tests.helpers.defender import Harness, build_scenario, machine, running_harness, transport

WS001 = machine(1)
A_TXT = "C:\\Temp\\a.txt"
SCRIPT = CommandSequence.of(RunScript(script_name="ok.ps1"))


class StatusTransport(httpx.BaseTransport):
    """A real HTTP transport that remembers the status of every API answer."""

    def __init__(self) -> None:
        self.inner = transport()
        self.answers: list[tuple[str, str, int]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        self.answers.append((request.method, request.url.path, response.status_code))
        return response

    def close(self) -> None:
        self.inner.close()


class GatedSleep:
    """The client's sleep: records the wait, holds until the test says go, then moves time."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.waits: list[float] = []
        self.asked = threading.Event()
        self.go = threading.Event()

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.asked.set()
        assert self.go.wait(10), "the test never let the wait end"
        self.harness.clock.advance(seconds)


def tiny_budget(harness: Harness, **limits: Any) -> CallBudget:
    values: dict[str, Any] = {
        "per_minute": 5,
        "per_hour": 100,
        "interactive_reserve_minute": 2,
        "interactive_reserve_hour": 0,
        "clock": harness.clock.now,  # the simulator's clock: the same windows as Defender's
    }
    values.update(limits)
    return CallBudget(**values)


def test_background_waits_while_an_interactive_lookup_goes_through(harness: Harness) -> None:
    sleep = GatedSleep(harness)
    budget = tiny_budget(harness)
    with harness.client(budget=budget, sleep=sleep) as client:
        for _ in range(3):  # background's share of the minute
            client.get_machine(WS001)
        harness.clock.advance(40)
        waiting: list[Any] = []
        poll = threading.Thread(target=lambda: waiting.append(client.get_machine(machine(2))))
        poll.start()
        assert sleep.asked.wait(10)
        sent = len(harness.api_requests())
        found = client.interactive().resolve_machine("ws-001.contoso.com")  # no wait at all
        assert found.id == WS001
        assert len(harness.api_requests()) == sent + 1
        assert sleep.waits == [20.0]  # the background poll's, until the first calls leave
        sleep.go.set()
        poll.join(10)
        assert [m.id for m in waiting] == [machine(2)]
        assert sleep.waits == [20.0]


def test_an_interactive_lookup_past_the_reserve_fails_fast_and_sends_nothing(
    harness: Harness,
) -> None:
    budget = tiny_budget(harness)
    with harness.client(budget=budget) as client:
        lookups = client.interactive()
        for _ in range(5):
            lookups.get_machine(WS001)
        with pytest.raises(BudgetExhausted) as caught:
            lookups.get_machine(WS001)
        assert caught.value.retry_after == 60.0  # past the 1.5 s an analyst can wait
        assert len(harness.api_requests()) == 5
        assert harness.waits == []
        with pytest.raises(BudgetExhausted):
            client.get_machine(WS001)  # background too, after 30 s at most: nothing asked


def test_views_share_the_connections_and_closing_one_closes_nothing(harness: Harness) -> None:
    budget = tiny_budget(harness)
    with harness.client(budget=budget) as client:
        view = client.interactive()
        view.close()
        assert client.get_machine(WS001).id == WS001
        assert view.get_machine(WS001).id == WS001
        assert (view.budget, client.budget) == (budget, budget)
        assert budget.snapshot().minute.used == 2


def test_only_non_run_calls_are_counted(harness: Harness) -> None:
    budget = tiny_budget(harness, per_minute=50)
    with harness.client(budget=budget) as client:
        sequence = CommandSequence.of(GetFile(path=A_TXT))
        action = client.run_live_response(WS001, sequence, "t")  # its own limit: not counted
        assert budget.snapshot().minute.used == 0
        harness.clock.advance(60)
        result = client.download_result(action.id, 0, max_bytes=1 << 20)  # link: 1, blob: 0
        result.path.unlink()
        assert budget.snapshot().hour.used == 1
        other = client.run_live_response(machine(2), SCRIPT, "t")
        client.cancel_action(other.id, "stop")  # a non-run endpoint
        assert budget.snapshot().hour.used == 2


LIMITS = {"api_calls_per_minute": 10, "api_calls_per_hour": 40, "page_size": 3}


def _workload(harness: Harness, background: DefenderClient, interactive: DefenderClient) -> None:
    """51 calls of every kind, all at once: far past 10 a minute and 40 an hour."""
    ids = [background.run_live_response(machine(100 + i), SCRIPT, "t").id for i in range(5)]
    done = background.run_live_response(WS001, CommandSequence.of(GetFile(path=A_TXT)), "t")
    harness.clock.advance(60)  # the GetFile finishes; no API call was made yet
    for i in range(12):
        assert len(background.get_actions(ids)) == 5  # two pages
        assert interactive.resolve_machine("ws-001.contoso.com").id == WS001
        background.result_link(done.id, 0)
        if i < 3:
            cancelled = background.run_live_response(machine(110 + i), SCRIPT, "t")
            background.cancel_action(cancelled.id, "stop")


def test_a_paced_client_never_meets_the_api_limit() -> None:
    with running_harness(build_scenario(**LIMITS)) as harness:
        budget = tiny_budget(
            harness,
            per_minute=10,
            per_hour=40,
            interactive_reserve_minute=2,
            interactive_reserve_hour=5,
        )
        status = StatusTransport()
        options: dict[str, Any] = {"budget": budget, "transport": status}
        with (
            harness.client(max_budget_wait_seconds=7200, **options) as background,
            harness.client(priority=Priority.INTERACTIVE, **options) as interactive,
        ):
            _workload(harness, background, interactive)
        api = [answer for answer in status.answers if answer[1].startswith("/api/")]
        answered = [a for a in api if not a[1].endswith("/runliveresponse") and a[2] == 200]
        assert len(answered) == 51
        # 401: the token expired as simulated hours passed, and was renewed.
        assert {code for _, _, code in api} <= {200, 201, 401}
        assert sum(harness.waits) > 3600  # it took the second hour: Defender would have said 429
        assert budget.snapshot().hour.used <= 40


def test_the_same_work_unpaced_meets_429() -> None:
    with running_harness(build_scenario(**LIMITS)) as harness:
        status = StatusTransport()
        with (
            harness.client(transport=status) as background,
            harness.client(transport=status) as interactive,
            pytest.raises(Throttled),
        ):
            _workload(harness, background, interactive)
        assert 429 in {code for _, _, code in status.answers}
