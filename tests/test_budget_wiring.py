"""Where the bot uses the call budget: lookups take the interactive reserve, polls stretch."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from bot.defender import simulated_defender
from bot.intake import Accepted, Intake
from bot.modal import ModalValues
from bot.records import RequestState
from bot.tracker import Tracker
from commands.budget import CallBudget, Priority
from commands.errors import BudgetExhausted
from commands.wire import LibraryFile, Machine
from tests.helpers.defender import Harness, machine

REQUEST = ModalValues(
    device="ws-001.contoso.com", commands_text="runscript ok.ps1", justification="evidence"
)


def test_intake_looks_up_with_the_reserve_when_background_has_spent_its_share(
    harness: Harness,
) -> None:
    budget = CallBudget(
        6, 100, interactive_reserve_minute=3, interactive_reserve_hour=0, clock=harness.clock.now
    )
    with harness.client(budget=budget) as client:
        for _ in range(3):
            client.get_machine(machine(1))
        with pytest.raises(BudgetExhausted):
            budget.acquire(Priority.BACKGROUND, max_wait=0)
        intake = Intake(client)
        try:
            accepted = intake.check(REQUEST)
        finally:
            intake.close()
    assert isinstance(accepted, Accepted)
    assert accepted.machine.id == machine(1)
    assert harness.waits == []
    assert budget.snapshot().minute.used == 6  # machine, library, active action


class PlainLookups:
    """A fake with only the DefenderLookups methods: no interactive view to lend."""

    def resolve_machine(self, query: str) -> Machine:
        return Machine.model_validate({"id": machine(1), "computerDnsName": query})

    def active_action(self, machine_id: str) -> None:
        return None

    def library_files(self) -> list[LibraryFile]:
        return [LibraryFile.model_validate({"fileName": "ok.ps1", "sha256": "ab" * 32})]


def test_intake_takes_a_fake_as_it_is() -> None:
    intake = Intake(PlainLookups())
    try:
        assert isinstance(intake.check(REQUEST), Accepted)
    finally:
        intake.close()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Running:
    """The store as the poll sees it: one running action."""

    def in_states(self, states: list[RequestState], **_: Any) -> list[Any]:
        if RequestState.PENDING in states:
            return [
                SimpleNamespace(
                    id="r-1",
                    action_id="a-1",
                    machine_id=machine(1),
                    state=RequestState.PENDING,
                    decided_at=datetime(2026, 1, 5, tzinfo=UTC),  # approved just now
                )
            ]
        return []

    def count_submitted_since(self, since: datetime) -> int:
        return 1

    def count_active(self) -> int:
        return 1


class SpentDefender:
    def get_actions(self, ids: list[str]) -> dict[str, Any]:
        raise BudgetExhausted(12.0, "background calls")


def tracker(budget: CallBudget | None, defender: Any = None) -> Tracker:
    return Tracker(
        Running(),  # type: ignore[arg-type]
        defender or SpentDefender(),
        SimpleNamespace(expire_due=list),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        poll_seconds=10.0,
        clock=lambda: datetime(2026, 1, 5, tzinfo=UTC),
        budget=budget,
    )


def test_a_poll_the_budget_refuses_is_told_at_info_and_tried_next_tick(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bot.tracker")
    loop = tracker(CallBudget())
    loop.tick()
    (record,) = [r for r in caplog.records if "API budget" in r.getMessage()]
    assert record.levelno == logging.INFO
    assert "poll of 1 actions waits" in record.getMessage()


def test_the_poll_interval_stretches_as_the_hour_runs_short() -> None:
    clock = Clock()
    budget = CallBudget(2000, 1500, interactive_reserve_minute=0, clock=clock)
    loop = tracker(budget)
    assert loop._interval() == 10.0
    loop.tick()  # one call a poll from now on
    for _ in range(1290):
        budget.acquire(Priority.BACKGROUND, max_wait=0)
    clock.now = 600.0
    assert loop._interval() == 3000 / 11  # 10 polls left until the calls leave at 3,600 s
    assert tracker(None)._interval() == 10.0


def test_the_bot_paces_with_one_budget_by_default() -> None:
    with simulated_defender() as (client, _sim):
        assert isinstance(client.budget, CallBudget)
        assert client.interactive().budget is client.budget
