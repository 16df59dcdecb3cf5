"""A simulated Defender on loopback with a manual clock, and a client wired to it.

``Harness.sleep`` is what the client gets as its ``sleep``: it records the wait and moves
the simulator's clock instead of sleeping, so Retry-After and backoff cost no real time.
"""

from __future__ import annotations

import random
import ssl
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from commands.budget import CallBudget
from commands.client import DefenderClient
from commands.config import DefenderSettings, load_defender_settings
from commands.errors import AuthenticationError, TransportError
from commands.simulator import (
    ManualClock,
    Scenario,
    SimFile,
    SimLibraryFile,
    SimMachine,
    SimScript,
    SimulatorServer,
)
from commands.wire import MachineAction
from tests.helpers import leaks

__all__ = [
    "CLIENT_ID",
    "SECRET",
    "TENANT",
    "Harness",
    "SimTokenProvider",
    "build_scenario",
    "machine",
    "most_active",
    "running_harness",
    "transport",
]

TENANT = "00000000-0000-0000-0000-000000000001"
CLIENT_ID = "lrbot-sim"
SECRET = f"{leaks.CLIENT_SECRET}-Zq8!"  # recognisable: see tests.helpers.leaks
SCOPE = "https://api.securitycenter.microsoft.com/.default"
# Loading the system CA bundle costs ~40 ms per httpx client: load it once for all tests.
SSL_CONTEXT = ssl.create_default_context()


def transport() -> httpx.HTTPTransport:
    """A real HTTP transport sharing the test run's TLS context."""
    return httpx.HTTPTransport(verify=SSL_CONTEXT)


def machine(n: int) -> str:
    """A machine id: 40 lowercase hex characters."""
    return f"{n:040x}"


def build_scenario(**overrides: Any) -> Scenario:
    """A tenant for client tests: named machines, scripts with every outcome, generous budgets."""
    machines = [
        SimMachine(
            id=machine(1),
            computer_dns_name="ws-001.contoso.com",
            files={
                "C:\\Temp\\a.txt": b"hello from ws-001\n" * 200,
                "C:\\Temp\\raw.bin": SimFile(content=b"x", raw_result=b"plain, not gzip"),
            },
        ),
        SimMachine(id=machine(2), computer_dns_name="ws-0011.contoso.com"),
        SimMachine(id=machine(3), computer_dns_name="ws-001.fabrikam.com"),
        SimMachine(
            id=machine(4), computer_dns_name="laptop-7.contoso.com", health_status="Inactive"
        ),
        SimMachine(id=machine(5), computer_dns_name="dc-01.contoso.com", remediation=False),
        SimMachine(
            id=machine(6),
            computer_dns_name="old-01.contoso.com",
            os_platform="Windows7",
            version="SP1",
            supported=False,
        ),
        SimMachine(id=machine(7), computer_dns_name="twin.contoso.com"),
        SimMachine(id=machine(8), computer_dns_name="twin.contoso.com"),
        SimMachine(id=machine(9), computer_dns_name="o'brien-pc.contoso.com"),
        *(
            SimMachine(id=machine(100 + i), computer_dns_name=f"srv-{i:03d}.contoso.com")
            for i in range(30)
        ),
    ]
    settings: dict[str, Any] = {
        "tenant_id": TENANT,
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "machines": machines,
        "library": [
            SimLibraryFile(file_name="tool.exe", content=b"MZ tool"),
            SimLibraryFile(file_name="ok.ps1", content=b"'ok'", has_parameters=True),
            SimLibraryFile(file_name="fail.ps1", content=b"throw"),
            SimLibraryFile(file_name="hang.ps1", content=b"sleep 9999"),
            SimLibraryFile(file_name="padded.ps1", content=b"'padded'"),
        ],
        "scripts": {
            "ok.ps1": SimScript(seconds=5, output="all good\n", exit_code=0),
            "fail.ps1": SimScript(seconds=3, fail=True, errors="boom"),
            "hang.ps1": SimScript(timeout=True),
            "padded.ps1": SimScript(
                seconds=1,
                raw_result=b'{"script_name":"padded.ps1","exit_code":3,'
                b'"script_output":"line\\n\\u0000\\u0000","script_errors":""}\x00\x00\x00',
            ),
        },
        "command_seconds": 2.0,
        "pending_seconds": 1.0,
        "runs_per_minute": 1000,
        "max_sessions": 1000,
        "api_calls_per_minute": 1_000_000,
        "api_calls_per_hour": 10_000_000,
    }
    settings.update(overrides)
    return Scenario(**settings)


class SimTokenProvider:
    """Client-credentials tokens from the simulator over plain HTTP (MSAL insists on https).

    Failures surface as ``MsalTokenProvider``'s do: ``TransportError`` when the authority is
    unreachable or failing (5xx), ``AuthenticationError`` when it refuses.
    """

    def __init__(self, token_url: str, secret: str = SECRET) -> None:
        self._token_url = token_url
        self._secret = secret
        self._token: str | None = None
        self._lock = threading.Lock()
        self.requests = 0

    def token(self, force_refresh: bool = False) -> str:
        with self._lock:
            if self._token is None or force_refresh:
                form = {
                    "grant_type": "client_credentials",
                    "client_id": CLIENT_ID,
                    "client_secret": self._secret,
                    "scope": SCOPE,
                }
                try:
                    with httpx.Client(transport=transport(), timeout=5) as http:
                        answer = http.post(self._token_url, data=form)
                except httpx.TransportError as exc:
                    raise TransportError(f"sign-in authority: {type(exc).__name__}") from None
                if answer.status_code >= 500:
                    raise TransportError(f"sign-in authority answered {answer.status_code}")
                body = answer.json()
                if answer.status_code != 200 or "access_token" not in body:
                    raise AuthenticationError(
                        str(body.get("error", "no_token")), str(body.get("error_description", ""))
                    )
                self._token = str(body["access_token"])
                self.requests += 1
            return self._token


@dataclass
class Harness:
    """The simulator, its clock, a token provider, and the waits the client asked for."""

    sim: SimulatorServer
    clock: ManualClock
    tokens: SimTokenProvider
    waits: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)

    def settings(self, **overrides: Any) -> DefenderSettings:
        values: dict[str, Any] = {
            "_env_file": None,
            "api_url": self.sim.base_url,
            "tenant_id": TENANT,
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "timeout_seconds": 5,
        }
        values.update(overrides)
        return load_defender_settings(**values)

    def client(
        self,
        settings: DefenderSettings | None = None,
        *,
        budget: CallBudget | None = None,
        **options: Any,
    ) -> DefenderClient:
        """A client with recorded sleeps. No budget unless given: tests that poll fast would
        spend a real one in seconds (give one on ``self.clock.now`` to pace in Defender's time).
        """
        values: dict[str, Any] = {
            "token_provider": self.tokens,
            "transport": transport(),
            "download_transport": transport(),
            "sleep": self.sleep,
            "rng": random.Random(7),
            "budget": budget,
        }
        values.update(options)
        return DefenderClient(settings or self.settings(), **values)

    def api_requests(self, method: str = "*", prefix: str = "/api") -> list[Any]:
        return [
            r for r in self.sim.requests if r.path.startswith(prefix) and method in ("*", r.method)
        ]


@contextmanager
def running_harness(
    scenario: Scenario | None = None, *, tls: bool = False, start: datetime | None = None
) -> Iterator[Harness]:
    """A simulator on loopback with a ManualClock (from ``start``, if given), stopped on exit."""
    clock = ManualClock(start)
    with SimulatorServer(scenario or build_scenario(), clock=clock, tls=tls) as sim:
        yield Harness(sim, clock, SimTokenProvider(sim.token_url))


def most_active(actions: Iterable[MachineAction]) -> int:
    """The most of ``actions`` active at any moment: each from its creation until it is
    final, at equal times the end counted first."""
    events: list[tuple[float, int]] = []
    for action in actions:
        assert action.creation_time is not None and action.last_update_time is not None
        events.append((action.creation_time.timestamp(), 1))
        if action.is_final:
            events.append((action.last_update_time.timestamp(), -1))  # final from that instant
    active = peak = 0
    for _, step in sorted(events):
        active += step
        peak = max(peak, active)
    return peak
