"""One replica against three on one PostgreSQL database: latency, throughput, failover.

Each configuration runs ``lrbot serve`` processes (HTTP mode, MSAL over TLS) against the
stand-in Slack and the Defender simulator here (its clock 20 times fast: a 20 s script takes
a second), on a fresh database in a throwaway PostgreSQL cluster, with Slack's requests spread
over the replicas in turn as a load balancer would (``tests.helpers.fleet``):

``latency``     12 requests through the modal, the submission and the Approve click: from the
                click's 200 to Defender receiving the run, in real seconds (p50, max). With
                three replicas most clicks land on a replica that does not hold the ``worker``
                lease; the holder finds the approval by itself.
``throughput``  100 runs approved at once with ``LRBOT_RUNS_PER_MINUTE=60`` and
                ``LRBOT_MAX_ACTIVE_RUNS=10``: runs submitted in the first 60 s (the limit is the
                target), the busiest 60 s anywhere (never over the limit), the most actions
                Defender held at once (never over the cap), 429 answers (0), and the time until
                every run is final. (Not until every thread is told: about ten Slack calls a
                run, delivered in order, go at Slack's pace, which this does not measure.)
``failover``    20 runs in flight, then ``kill -9`` of the lease holder: the time until another
                replica holds the lease (one replica: until a restarted one does, start-up
                included) and until all runs are final, each exactly once at Defender. With
                three replicas also a frozen holder (SIGSTOP, the default 10 s lease): the time
                until a standby takes over, then SIGCONT: the thawed one must step down, so no
                run is sent twice.

    .venv/bin/python -m benchmarks.replicas [--replicas 1,3] [--only latency,throughput,failover]

Needs PostgreSQL's server binaries (``bash .ci/test`` installs them; or ``apt-get install
postgresql``). Exits 1 only if something broke: a run sent twice or not at all, a limit
exceeded, an error logged; the figures are the report.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bot.ids import Action
from bot.records import RequestRecord, RequestState
from bot.sandbox._slack_records import Message
from commands.simulator import RecordedRequest, Scenario, SimMachine, SimScript
from tests.helpers.bot import APPROVER
from tests.helpers.defender import build_scenario, machine
from tests.helpers.fleet import Fleet
from tests.helpers.postgres import PostgresCluster, running_cluster
from tests.helpers.process import BotProcess, bot_world

SCALE = 20.0
DEVICES = 100
COMMANDS = "runscript ok.ps1"
RUNS_PER_MINUTE = 60
MAX_ACTIVE = 10
PHASES = ("latency", "throughput", "failover")


def host(i: int) -> str:
    return f"srv-{i:03d}.contoso.com"


def device(i: int) -> str:
    return machine(2000 + i)


def servers() -> Scenario:
    return build_scenario(
        machines=[SimMachine(id=device(i), computer_dns_name=host(i)) for i in range(DEVICES)],
        scripts={"ok.ps1": SimScript(seconds=20, output="all good\n", exit_code=0)},
    )


@dataclass
class Report:
    rows: list[tuple[str, str]] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)

    def add(self, name: str, value: str) -> None:
        self.rows.append((name, value))
        print(f"  {name:<52} {value}", flush=True)

    def require(self, ok: bool, what: str) -> None:
        if not ok:
            self.broken.append(what)
            print(f"  BROKEN: {what}", flush=True)


@contextlib.contextmanager
def fleet_of(
    cluster: PostgresCluster, replicas: int, **settings: str
) -> Iterator[tuple[Fleet, list[BotProcess]]]:
    with (
        cluster.database() as url,
        tempfile.TemporaryDirectory(prefix="lrbot-replicas-") as tmp,
        bot_world(Path(tmp), servers(), time_scale=SCALE, database_url=url, world=Fleet) as fleet,
    ):
        fleet.overrides.update(
            LRBOT_RUNS_PER_MINUTE=str(RUNS_PER_MINUTE),
            LRBOT_MAX_ACTIVE_RUNS=str(MAX_ACTIVE),
            LRBOT_POLL_SECONDS="1",
            **settings,
        )
        started = fleet.start_replicas(replicas)
        yield fleet, started


def run_posts(fleet: Fleet) -> list[RecordedRequest]:
    return [
        r
        for r in fleet.sim.requests
        if r.method == "POST" and r.path.endswith("/runliveresponse") and r.status == 201
    ]


def budgeted(request: RecordedRequest) -> bool:
    """A call that counts against Defender's 100 a minute: an API call, not a run or a
    sign-in."""
    run = request.method == "POST" and request.path.endswith("/runliveresponse")
    return request.path.startswith("/api/") and not run


def finished(fleet: Fleet, count: int) -> bool:
    """``count`` requests in the database, every one finished (told or not yet)."""
    records = fleet.store.in_states(list(RequestState))
    return len(records) == count and all(r.state is RequestState.FINISHED for r in records)


def told(fleet: Fleet, count: int) -> list[RequestRecord] | None:
    """Every request, once ``count`` are finished and the outbox is empty."""
    records = fleet.store.in_states(list(RequestState))
    done = len(records) == count and all(r.state is RequestState.FINISHED for r in records)
    return records if done and fleet.drained() else None


def exactly_once(fleet: Fleet, records: list[RequestRecord], report: Report, label: str) -> None:
    twice = [r.id for r in records if len(fleet.run_posts(r.id)) != 1]
    report.require(not twice, f"{label}: runs not sent exactly once: {twice[:5]}")
    errors = [line for p in fleet.alive() for line in p.errors()]
    report.require(not errors, f"{label}: errors logged: {errors[:3]}")


def record_of(fleet: Fleet, message: Message) -> RequestRecord | None:
    with contextlib.suppress(LookupError):
        return fleet.record(message)
    return None


def timed(predicate: Callable[[], object], timeout: float, step: float = 0.01) -> float:
    """Seconds until ``predicate`` holds, polled every ``step`` (TimeoutError past ``timeout``)."""
    began = time.monotonic()
    while not predicate():
        if time.monotonic() - began > timeout:
            raise TimeoutError
        time.sleep(step)
    return time.monotonic() - began


# -- the sub-benchmarks ------------------------------------------------------------------


def bench_latency(cluster: PostgresCluster, replicas: int, report: Report) -> None:
    with fleet_of(cluster, replicas) as (fleet, _):
        latencies = []
        for i in range(12):
            message = fleet.request(host(i), COMMANDS)
            record = fleet.wait(lambda m=message: record_of(fleet, m), "the request's record")
            answer = fleet.click(Action.APPROVE, message, APPROVER)
            assert answer.status_code == 200, answer.text
            latencies.append(timed(lambda r=record: fleet.run_posts(r.id), timeout=60))
        records = fleet.wait(lambda: told(fleet, 12), "12 runs told", timeout=120)
        exactly_once(fleet, records, report, f"latency x{replicas}")
    report.add(
        f"{replicas} replica(s): click to Defender, p50 / max",
        f"{statistics.median(latencies):.2f} s / {max(latencies):.2f} s",
    )


def bench_throughput(cluster: PostgresCluster, replicas: int, report: Report) -> None:
    runs = DEVICES
    with fleet_of(cluster, replicas) as (fleet, _):
        began = time.monotonic()
        at_zero = len(fleet.sim.requests)
        fleet.approve_in_database([device(i) for i in range(runs)], COMMANDS)
        timed(lambda: finished(fleet, runs), timeout=400, step=0.1)
        final = time.monotonic() - began  # from the first approval
        records = fleet.store.in_states(list(RequestState))
        exactly_once(fleet, records, report, f"throughput x{replicas}")
        starts = sorted(r.at / SCALE for r in run_posts(fleet))
        first = starts[0]
        in_first_minute = sum(1 for t in starts if t < first + 60)
        busiest = max(sum(1 for t in starts if s <= t < s + 60) for s in starts)
        active = fleet.most_active()
        calls = sorted(r.at / SCALE for r in fleet.sim.requests[at_zero:] if budgeted(r))
        busiest_calls = max(sum(1 for t in calls if s <= t < s + 60) for s in calls)
        refused = [r for r in fleet.sim.requests[at_zero:] if r.status == 429]
    report.add(
        f"{replicas} replica(s): runs in the first 60 s (limit {RUNS_PER_MINUTE})",
        str(in_first_minute),
    )
    report.add(f"{replicas} replica(s): busiest 60 s", str(busiest))
    report.add(f"{replicas} replica(s): most active at once (cap {MAX_ACTIVE})", str(active))
    report.add(f"{replicas} replica(s): 429 answers", str(len(refused)))
    report.add(
        f"{replicas} replica(s): other Defender calls, busiest 60 s (budget 100)",
        str(busiest_calls),
    )
    report.add(f"{replicas} replica(s): {runs} runs approved to all final", f"{final:.1f} s")
    report.require(busiest <= RUNS_PER_MINUTE, f"throughput x{replicas}: rate limit exceeded")
    report.require(active <= MAX_ACTIVE, f"throughput x{replicas}: active cap exceeded")
    report.require(not refused, f"throughput x{replicas}: Defender answered 429")
    report.require(busiest_calls <= 100, f"throughput x{replicas}: call budget exceeded")


def bench_failover(cluster: PostgresCluster, replicas: int, report: Report) -> None:
    runs = 40
    lease = 3.0
    with fleet_of(cluster, replicas, LRBOT_LEASE_SECONDS=str(lease)) as (fleet, _):
        fleet.approve_in_database([device(i) for i in range(runs)], COMMANDS)
        fleet.wait(lambda: len(run_posts(fleet)) >= runs // 2, "half the runs at Defender", 120)
        holder = fleet.holder()
        killed = time.monotonic()
        at_kill = len(run_posts(fleet))
        holder.kill()
        if replicas == 1:
            fleet.spawn().wait_ready()
        timed(lambda: fleet.holder() is not holder, timeout=60, step=0.02)
        took_over = time.monotonic() - killed
        timed(lambda: finished(fleet, runs), timeout=300, step=0.1)
        recovered = time.monotonic() - killed
        records = fleet.store.in_states(list(RequestState))
        exactly_once(fleet, records, report, f"failover x{replicas}")
    what = "restart" if replicas == 1 else "a standby"
    report.add(
        f"{replicas} replica(s): kill -9 to lease held by {what} (lease {lease:g} s)",
        f"{took_over:.2f} s",
    )
    report.add(
        f"{replicas} replica(s): kill -9 ({at_kill} runs at Defender) to all {runs} final",
        f"{recovered:.1f} s",
    )
    if replicas > 1:
        bench_frozen(cluster, replicas, report)


def bench_frozen(cluster: PostgresCluster, replicas: int, report: Report) -> None:
    """A holder that stops without dying (a paused VM, a long GC): only the lease's expiry
    (the default, 10 s) can tell; thawed, it must find the lease gone and step down."""
    runs = 30
    with fleet_of(cluster, replicas) as (fleet, _):
        fleet.approve_in_database([device(i) for i in range(runs)], COMMANDS)
        fleet.wait(lambda: len(run_posts(fleet)) >= 10, "10 runs at Defender", 120)
        holder = fleet.holder()
        os.kill(holder.pid, signal.SIGSTOP)
        try:
            took_over = timed(lambda: fleet.holder() is not holder, timeout=60, step=0.05)
        finally:
            os.kill(holder.pid, signal.SIGCONT)
        timed(lambda: finished(fleet, runs), timeout=300, step=0.1)
        records = fleet.store.in_states(list(RequestState))
        exactly_once(fleet, records, report, f"frozen x{replicas}")
        report.require(holder.alive, "the thawed replica died")
        report.require(fleet.holder() is not holder, "the thawed replica took the lease back")
    report.add(f"{replicas} replicas: SIGSTOP to lease held by a standby", f"{took_over:.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", default="1,3", help="comma-separated fleet sizes")
    parser.add_argument("--only", default=",".join(PHASES), help="comma-separated phases")
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.replicas.split(",")]
    phases = [p for p in args.only.split(",") if p]
    unknown = set(phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phase {sorted(unknown)}; choose from {', '.join(PHASES)}")
    report = Report()
    benches = {"latency": bench_latency, "throughput": bench_throughput, "failover": bench_failover}
    with running_cluster() as cluster:
        for phase in phases:
            for replicas in sizes:
                print(f"{phase}: {replicas} replica(s)", flush=True)
                benches[phase](cluster, replicas, report)
    print("\nfigures:")
    for name, value in report.rows:
        print(f"  {name:<52} {value}")
    if report.broken:
        print("\nBROKEN:\n  " + "\n  ".join(report.broken))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
