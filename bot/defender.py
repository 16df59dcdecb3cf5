"""The Defender client the bot runs with: the real tenant, or the built-in simulator.

With the simulator, the whole real path is kept (MSAL over TLS to a sign-in authority,
the API over HTTP) and only the trust anchor differs: the simulator's own self-signed
certificate, handed to the clients here instead of being installed machine-wide.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Iterator

import httpx

from commands.auth import MsalTokenProvider
from commands.budget import CallBudget
from commands.client import DefenderClient
from commands.config import DefenderSettings, load_defender_settings
from commands.simulator import ScaledClock, Scenario, SimulatorServer, demo_scenario

__all__ = ["real_defender", "simulated_defender", "simulator_sign_in"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def real_defender(
    settings: DefenderSettings, *, budget: CallBudget | None = None
) -> Iterator[DefenderClient]:
    """A client for the tenant the settings name; TLS trust from the environment.

    ``budget`` paces its calls; by default a new ``CallBudget()`` (Defender's limits):
    one client, so one budget, per process.
    """
    settings.require_credentials()
    client = DefenderClient(
        settings,
        token_provider=MsalTokenProvider(settings),
        budget=budget if budget is not None else CallBudget(),
    )
    try:
        yield client
    finally:
        client.close()


@contextlib.contextmanager
def simulated_defender(
    scenario: Scenario | None = None,
    *,
    time_scale: float = 1.0,
    budget: CallBudget | None = None,
) -> Iterator[tuple[DefenderClient, SimulatorServer]]:
    """A simulator on loopback and a client signed in to it through MSAL.

    ``budget`` as for ``real_defender``; it counts real seconds, so with ``time_scale``
    above 1 it paces more strictly than the simulator's faster clock requires.
    """
    with simulator_sign_in(scenario, time_scale=time_scale) as (sim, settings, msal_http, trust):
        client = DefenderClient(
            settings,
            token_provider=MsalTokenProvider(settings, http_client=msal_http),
            transport=httpx.HTTPTransport(verify=trust),
            download_transport=httpx.HTTPTransport(verify=trust),
            budget=budget if budget is not None else CallBudget(),
        )
        log.info("Defender simulator at %s", sim.base_url)
        try:
            yield client, sim
        finally:
            client.close()


@contextlib.contextmanager
def simulator_sign_in(
    scenario: Scenario | None = None, *, time_scale: float = 1.0
) -> Iterator[tuple[SimulatorServer, DefenderSettings, httpx.Client, ssl.SSLContext]]:
    """A simulator on loopback (TLS), the settings that name it, an HTTP client for MSAL
    that trusts it, and that trust for the API's clients."""
    scenario = scenario or demo_scenario()
    with SimulatorServer(scenario, clock=ScaledClock(time_scale), tls=True) as sim:
        assert sim.ca_pem_path is not None
        trust = ssl.create_default_context(cafile=str(sim.ca_pem_path))
        settings = load_defender_settings(
            api_url=sim.base_url,
            authority_host=sim.authority_host,
            tenant_id=scenario.tenant_id,
            client_id=scenario.client_id,
            client_secret=scenario.client_secret,
        )
        with httpx.Client(verify=trust, timeout=10) as msal_http:
            yield sim, settings, msal_http, trust
