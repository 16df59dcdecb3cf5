"""Several ``lrbot serve`` processes on one database, as replicas behind a load balancer.

A ``Fleet`` is a ``World`` (``tests.helpers.process``) whose processes run side by side:
each Slack request goes to the next live replica in turn, as a round-robin balancer would
send it, and the replica holding the ``worker`` lease (the one that submits, polls and
delivers; see ``bot/leases.py``) is read from the database::

    with bot_world(tmp_path, database_url=postgres_url, world=Fleet) as fleet:
        fleet.start_replicas(3)
        message = fleet.request("srv-000.contoso.com", "runscript ok.ps1")
        fleet.holder().kill()           # kill -9 the one doing the work
"""

from __future__ import annotations

import itertools
from pathlib import Path

import sqlalchemy as sa

from bot.leases import WORKER
from bot.records import RequestRecord
from bot.sandbox import FakeSlack, SlackRequests
from bot.store import leases
from commands.simulator import SimulatorServer
from commands.syntax import parse_sequence
from commands.wire import MachineAction
from tests.helpers import leaks
from tests.helpers.defender import most_active
from tests.helpers.process import BotProcess, World
from tests.helpers.seed import approve_all, database_lifecycle

__all__ = ["Fleet"]


class Fleet(World):
    """Replicas of the bot sharing ``database_url``; Slack's requests spread over them."""

    def __init__(
        self, slack: FakeSlack, sim: SimulatorServer, workdir: Path, database_url: str | None = None
    ) -> None:
        super().__init__(slack, sim, workdir, database_url)
        self._senders: dict[int, SlackRequests] = {}  # by PID
        self._turn = itertools.count()

    def start_replicas(self, count: int) -> list[BotProcess]:
        """``count`` more replicas, each answering ``/healthz``; started one after another so
        that the first holds the lease (the others find it held)."""
        started = []
        for _ in range(count):
            process = self._launch(())
            process.wait_ready()
            started.append(process)
        return started

    def spawn(self, options: tuple[str, ...] = ()) -> BotProcess:
        return self._launch(options)

    def _launch(self, options: tuple[str, ...]) -> BotProcess:
        log = self.workdir / f"lrbot-{len(self.processes) + 1}.log"
        process = BotProcess(self.environment(), self.workdir, log, options)
        self.processes.append(process)
        leaks.watch_output(
            f"lrbot serve #{len(self.processes)} (pid {process.pid})", process.log, log
        )
        self._senders[process.pid] = SlackRequests(process.url, self.secret, fake=self.slack)
        return process

    def alive(self) -> list[BotProcess]:
        return [p for p in self.processes if p.alive]

    @property
    def send(self) -> SlackRequests:
        """The next live replica's endpoint, in turn."""
        live = self.alive()
        assert live, "no replica is running"
        return self._senders[live[next(self._turn) % len(live)].pid]

    def holder(self) -> BotProcess:
        """The replica holding the worker lease now (by the PID in its holder name)."""
        with self.store.engine.connect() as db:
            holder = db.execute(
                sa.select(leases.c.holder).where(leases.c.name == WORKER)
            ).scalar_one()
        pid = int(str(holder).split(":")[1])
        [process] = [p for p in self.processes if p.pid == pid]
        return process

    def close(self) -> None:
        super().close()
        for sender in self._senders.values():
            sender.close()

    def approve_in_database(self, machine_ids: list[str], commands: str) -> list[RequestRecord]:
        """Requests made and approved on the fleet's database by the bot's own lifecycle
        (``tests.helpers.seed``); the outbox posts them like any other."""
        lifecycle = database_lifecycle(self.store, self.slack)
        return approve_all(lifecycle, self.sim, machine_ids, parse_sequence(commands))

    def most_active(self) -> int:
        """The most of our actions Defender held at once, from their creation and end times."""
        return most_active(map(MachineAction.model_validate, self.sim.actions()))
