"""Approved requests written straight into a bot's database by the bot's own lifecycle.

A load of approvals without a load of HTTP, for the tests and benchmarks that measure what
comes after approval (the interactive share of Defender's call budget would pace a thousand
modals, and that is not what they measure). The bot's outbox posts the requests like any
other; nothing here is a mock: it is ``Lifecycle.create`` and ``Lifecycle.decide``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from slack_sdk import WebClient

from bot.directory import Directory
from bot.intake import Accepted
from bot.lifecycle import Lifecycle
from bot.policy import Policy
from bot.records import RequestRecord
from bot.sandbox import FakeSlack
from bot.store import Store
from commands.models import CommandSequence, PutFile, RunScript
from commands.simulator import SimulatorServer
from commands.wire import Machine
from tests.helpers.bot import APPROVER, BOT_TOKEN, CHANNEL, JUSTIFICATION, REQUESTER

__all__ = ["accepted", "approve_all", "database_lifecycle"]


def database_lifecycle(store: Store, slack: FakeSlack) -> Lifecycle:
    """The lifecycle a replica builds, on ``store``, with ``APPROVER`` the one approver."""
    return Lifecycle(
        store,
        Policy.simple((), (APPROVER,)),
        Directory(WebClient(token=slack.token or BOT_TOKEN, base_url=slack.base_url), 300),
        defender=None,  # type: ignore[arg-type]  # nothing is cancelled here
        clock=lambda: datetime.now(UTC),
    )


def accepted(sim: SimulatorServer, machine_id: str, commands: CommandSequence) -> Accepted:
    """What the modal would accept for ``machine_id``, read from the simulator itself."""
    machine = Machine.model_validate(sim.state.get_machine(machine_id))
    files = {
        c.script_name if isinstance(c, RunScript) else c.file_name
        for c in commands.commands
        if isinstance(c, RunScript | PutFile)
    }
    library: dict[str, str | None] = {
        f.file_name: f.sha256 for f in sim.scenario.library if f.file_name in files
    }
    return Accepted(machine, None, commands, library, JUSTIFICATION, None)


def approve_all(
    lifecycle: Lifecycle,
    sim: SimulatorServer,
    machine_ids: Iterable[str],
    commands: CommandSequence,
) -> list[RequestRecord]:
    """A request per device by ``REQUESTER``, all created first, then each approved as the
    Approve button would: with the digest of the payload it showed."""
    records = [
        lifecycle.create(REQUESTER, CHANNEL, accepted(sim, m, commands)) for m in machine_ids
    ]
    for record in records:
        outcome = lifecycle.decide(record.id, APPROVER, approve=True, digest=record.digest)
        assert outcome.ok, outcome.message
    return records
