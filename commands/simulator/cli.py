"""``lrbot simulator``: serve the Defender simulator until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from pydantic import ValidationError

from commands.simulator.clock import ScaledClock
from commands.simulator.demo import demo_scenario
from commands.simulator.scenario import Scenario
from commands.simulator.server import SimulatorServer

__all__ = ["load_scenario", "serve_simulator"]


def load_scenario(path: str | None) -> Scenario:
    """The scenario in a JSON file, or the built-in demo when ``path`` is None."""
    if path is None:
        return demo_scenario()
    return Scenario.model_validate_json(Path(path).read_text(encoding="utf-8"))


def _describe(sim: SimulatorServer) -> str:
    scenario = sim.scenario
    lines = [
        f"Defender simulator at {sim.base_url} (API paths start with /api)",
        f"  sign-in authority: {sim.authority_host}   token endpoint: {sim.token_url}",
        f"  tenant id:     {scenario.tenant_id}",
        f"  client id:     {scenario.client_id}",
        f"  client secret: {scenario.client_secret}   (a fake, for this simulator only)",
    ]
    if sim.ca_pem_path:
        lines.append(f"  CA certificate to trust: {sim.ca_pem_path}")
    lines.append(f"  time scale: {sim.clock.scale:g} simulated seconds per second")
    for machine in scenario.machines:
        lines.append(
            f"  machine {machine.id}  {machine.computer_dns_name:<28}"
            f" {machine.os_platform:<18} {machine.health_status}"
        )
    return "\n".join(lines)


def serve_simulator(args: argparse.Namespace) -> int:
    """Serve until interrupted; 2 when the scenario file cannot be read."""
    try:
        scenario = load_scenario(args.scenario)
    except (OSError, ValidationError) as problem:
        print(f"lrbot simulator: cannot load the scenario: {problem}", file=sys.stderr)
        return 2
    clock = ScaledClock(args.time_scale)
    with SimulatorServer(
        scenario, clock=clock, tls=args.tls, host=args.host, port=args.port
    ) as sim:
        print(_describe(sim), flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping", file=sys.stderr)
    return 0
