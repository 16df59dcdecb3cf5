"""Three ``lrbot serve`` replicas on one PostgreSQL database, 50 runs, and ``kill -9`` of the
replica doing the work half-way: every run exactly once, every thread complete, the fleet's
limits never exceeded.

Slack's requests go to the replicas in turn, as a load balancer sends them; the replica
holding the ``worker`` lease submits, polls and delivers for all (``bot/leases.py``). The
kill lands on that replica once 20 runs have reached Defender. Afterwards:

- Defender received exactly one ``runliveresponse`` per request, and each action succeeded;
- every thread reads as every other's (ids, times and the device made equal), allowing the
  one post Slack may have taken from the killed replica without the replica hearing so
  (Slack has no idempotency key: see ``test_kill9.py``);
- no 60 s of real time saw more than ``LRBOT_RUNS_PER_MINUTE`` submissions and Defender
  never held more than ``LRBOT_MAX_ACTIVE_RUNS`` of our actions at once, across the fleet;
- the survivors logged no error, and one of them held the lease within the lease's lifetime.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from bot.ids import Action
from bot.records import RequestRecord, RequestState
from commands.simulator import RecordedRequest, Scenario, SimMachine, SimScript
from tests.helpers.bot import APPROVER, CHANNEL
from tests.helpers.defender import build_scenario, machine
from tests.helpers.fleet import Fleet
from tests.helpers.process import bot_world
from tests.helpers.runs import normalise

RUNS = 50
THROUGH_SLACK = 8  # before the kill; one more after it, the rest approved in the database
KILL_AFTER = 20  # runs at Defender
RUNS_PER_MINUTE = 30
MAX_ACTIVE = 5
LEASE_SECONDS = 3
SCALE = 20.0  # Defender's clock: a 20 s script takes a second
COMMANDS = "runscript ok.ps1"


def host(i: int) -> str:
    return f"srv-{i:03d}.contoso.com"


def fifty_servers() -> Scenario:
    machines = [SimMachine(id=machine(1000 + i), computer_dns_name=host(i)) for i in range(RUNS)]
    return build_scenario(
        machines=machines,
        scripts={"ok.ps1": SimScript(seconds=20, output="all good\n", exit_code=0)},
    )


@pytest.mark.timeout(600)
def test_three_replicas_fifty_runs_one_killed(tmp_path: Path, postgres_url: str) -> None:
    with bot_world(
        tmp_path, fifty_servers(), time_scale=SCALE, database_url=postgres_url, world=Fleet
    ) as fleet:
        fleet.overrides.update(
            LRBOT_RUNS_PER_MINUTE=str(RUNS_PER_MINUTE),
            LRBOT_MAX_ACTIVE_RUNS=str(MAX_ACTIVE),
            LRBOT_LEASE_SECONDS=str(LEASE_SECONDS),
            LRBOT_POLL_SECONDS="1",
        )
        fleet.start_replicas(3)
        first = fleet.holder()

        # Any replica takes any request: the modal, its submission and the click each go to
        # the next replica in turn.
        for i in range(THROUGH_SLACK):
            message = fleet.request(host(i), COMMANDS)
            assert fleet.click(Action.APPROVE, message, APPROVER).status_code == 200
        fleet.approve_in_database(
            [machine(1000 + i) for i in range(THROUGH_SLACK, RUNS - 1)], COMMANDS
        )

        fleet.wait(lambda: len(posts(fleet)) >= KILL_AFTER, "20 runs at Defender", timeout=120)
        killed_at = time.monotonic()
        first.kill()
        took_over = fleet.wait(
            lambda: (h := fleet.holder()) is not first and h, "another replica to take over"
        )
        failover = time.monotonic() - killed_at
        assert failover < LEASE_SECONDS + 2, f"failover took {failover:.1f} s"
        assert took_over.alive

        # A survivor takes the last request.
        message = fleet.request(host(RUNS - 1), COMMANDS)
        assert fleet.click(Action.APPROVE, message, APPROVER).status_code == 200

        records = fleet.wait(lambda: all_finished(fleet), "all 50 runs finished", timeout=300)
        assert len(records) == RUNS

        # Exactly once at Defender, and each action succeeded.
        for record in records:
            assert len(fleet.run_posts(record.id)) == 1, record.id
            [action] = fleet.actions_of(record.id)
            assert action["status"] == "Succeeded", record.id

        # Every thread complete, as every other's.
        threads = {r.id: same(fleet, r) for r in records}
        shape, _ = Counter(tuple(t) for t in threads.values()).most_common(1)[0]
        assert shape[-1].startswith("Finished on"), shape
        repeats = 0
        for request_id, replies in threads.items():
            cut = [r for i, r in enumerate(replies) if i == 0 or r != replies[i - 1]]
            assert tuple(cut) == shape, (request_id, replies)
            repeats += len(replies) - len(cut)
        assert repeats <= 1, "more than the one post the kill may have cut short"

        # The fleet's limits, as Defender saw them.
        starts = sorted(r.at / SCALE for r in posts(fleet))
        busiest = max(sum(1 for t in starts if s <= t < s + 60) for s in starts)
        assert busiest <= RUNS_PER_MINUTE
        assert fleet.most_active() <= MAX_ACTIVE
        assert not [r for r in fleet.sim.requests if r.status == 429]

        print(
            f"failover {failover:.2f} s; busiest minute {busiest} runs; most active"
            f" {fleet.most_active()}; {repeats} repeated posts"
        )
        for process in fleet.alive():
            assert not process.errors(), process.errors()


def posts(fleet: Fleet) -> list[RecordedRequest]:
    """The runs Defender accepted."""
    return [
        r
        for r in fleet.sim.requests
        if r.method == "POST" and r.path.endswith("/runliveresponse") and r.status == 201
    ]


def all_finished(fleet: Fleet) -> list[RequestRecord] | None:
    """Every request, once all are finished and told in full."""
    records = fleet.store.in_states(list(RequestState))
    done = len(records) == RUNS and all(r.state is RequestState.FINISHED for r in records)
    return records if done and fleet.drained() else None


def same(fleet: Fleet, record: RequestRecord) -> list[str]:
    """A request's thread with what differs between requests (ids, times, device) made equal."""
    assert record.message_ts is not None
    replies = [m.text for m in fleet.slack.thread(CHANNEL, record.message_ts)]
    return [normalise(text).replace(record.machine_name, "<device>") for text in replies]
