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
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from slack_sdk import WebClient

from bot.directory import Directory
from bot.intake import Accepted
from bot.leases import WORKER
from bot.lifecycle import Lifecycle
from bot.policy import Policy
from bot.records import RequestRecord
from bot.sandbox import FakeSlack, SlackRequests
from bot.store import leases
from commands.models import PutFile, RunScript
from commands.simulator import SimulatorServer
from commands.syntax import parse_sequence
from commands.wire import Machine
from tests.helpers import leaks
from tests.helpers.bot import APPROVER, BOT_TOKEN, CHANNEL, JUSTIFICATION, REQUESTER
from tests.helpers.process import BotProcess, World

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
        """Requests made and approved by the bot's own lifecycle on the fleet's database, as
        a replica does for a modal and a click: a load of approvals without a load of HTTP
        (the interactive share of Defender's call budget would pace that, and is not what a
        test of the fleet's work measures). The outbox posts them like any other."""
        lifecycle = Lifecycle(
            self.store,
            Policy.simple((), (APPROVER,)),
            Directory(WebClient(token=BOT_TOKEN, base_url=self.slack.base_url), 300),
            defender=None,  # type: ignore[arg-type]  # nothing is cancelled here
            clock=lambda: datetime.now(UTC),
        )
        sequence = parse_sequence(commands)
        files = {
            c.script_name if isinstance(c, RunScript) else c.file_name
            for c in sequence.commands
            if isinstance(c, RunScript | PutFile)
        }
        library: dict[str, str | None] = {
            f.file_name: f.sha256 for f in self.sim.scenario.library if f.file_name in files
        }
        made = []
        for machine_id in machine_ids:
            machine = Machine.model_validate(self.sim.state.get_machine(machine_id))
            accepted = Accepted(machine, None, sequence, library, JUSTIFICATION, None)
            record = lifecycle.create(REQUESTER, CHANNEL, accepted)
            outcome = lifecycle.decide(record.id, APPROVER, approve=True, digest=record.digest)
            assert outcome.ok, outcome.message
            made.append(record)
        return made
