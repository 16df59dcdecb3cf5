"""A stand-in for Defender's live response API, served over real HTTP on loopback.

    from commands.simulator import Scenario, SimMachine, SimulatorServer, ManualClock

    clock = ManualClock()
    with SimulatorServer(Scenario(machines=[...]), clock=clock) as sim:
        ...                     # talk to sim.base_url; clock.advance(5) to make progress

Modules: ``scenario`` (configuration), ``clock``, ``odata`` (``$filter``), ``timeline``
(how an action progresses), ``validation``/``admission``/``planning`` (taking a run),
``state`` (the engine), ``routes`` and ``server`` (HTTP), ``tls``, ``demo``, ``cli``.
"""

from commands.simulator.auth import TOKEN_MARKER
from commands.simulator.clock import Clock, ManualClock, ScaledClock
from commands.simulator.demo import demo_scenario, machine_id
from commands.simulator.faults import Fault, FaultHandle
from commands.simulator.library import LINK_MARKER
from commands.simulator.scenario import Scenario, SimFile, SimLibraryFile, SimMachine, SimScript
from commands.simulator.server import RecordedRequest, SimulatorServer

__all__ = [
    "LINK_MARKER",
    "TOKEN_MARKER",
    "Clock",
    "Fault",
    "FaultHandle",
    "ManualClock",
    "RecordedRequest",
    "ScaledClock",
    "Scenario",
    "SimFile",
    "SimLibraryFile",
    "SimMachine",
    "SimScript",
    "SimulatorServer",
    "demo_scenario",
    "machine_id",
]
