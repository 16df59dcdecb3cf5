"""What DefenderClient adds per call over a raw httpx request: median and p99.

Runs the Defender simulator on loopback over TLS (its self-signed CA trusted through
SSL_CERT_FILE / REQUESTS_CA_BUNDLE, as in production), signs in with MSAL, and times each
operation against the same HTTP request(s) sent by a bare ``httpx.Client`` with a fixed
bearer token. Raw and client calls alternate so that drift hits both alike.

    .venv/bin/python benchmarks/client_overhead.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from commands import odata
from commands.auth import MsalTokenProvider, StaticTokenProvider
from commands.client import DefenderClient
from commands.config import load_defender_settings
from commands.models import CommandSequence, RunScript
from commands.simulator import ManualClock, Scenario, SimLibraryFile, SimMachine, SimulatorServer

TENANT = "00000000-0000-0000-0000-000000000001"
SECRET = "bench-secret"  # noqa: S105 - the simulated tenant's secret


def scenario() -> Scenario:
    return Scenario(
        tenant_id=TENANT,
        client_id="lrbot-bench",
        client_secret=SECRET,
        machines=[
            SimMachine(id=f"{i + 1:040x}", computer_dns_name=f"ws-{i:03d}.contoso.com")
            for i in range(50)
        ],
        library=[SimLibraryFile(file_name="ok.ps1", content=b"'ok'")],
        runs_per_minute=10_000,
        max_sessions=10_000,
        api_calls_per_minute=10_000_000,
        api_calls_per_hour=100_000_000,
        page_size=10_000,
    )


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(calls: int, raw: Callable[[], object], ours: Callable[[], object]) -> list[float]:
    for _ in range(50):  # warm connections and caches
        raw()
        ours()
    raw_times: list[float] = []
    our_times: list[float] = []
    for _ in range(calls):
        start = time.perf_counter()
        raw()
        middle = time.perf_counter()
        ours()
        end = time.perf_counter()
        raw_times.append(middle - start)
        our_times.append(end - middle)
    return [
        statistics.median(raw_times),
        statistics.median(our_times),
        percentile(raw_times, 0.99),
        percentile(our_times, 0.99),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    calls = parser.parse_args().calls

    with (
        tempfile.TemporaryDirectory() as workdir,
        SimulatorServer(scenario(), clock=ManualClock(), tls=True) as sim,
    ):
        assert sim.ca_pem_path is not None
        bundle = Path(workdir) / "ca.pem"
        bundle.write_bytes(Path(sim.ca_pem_path).read_bytes())
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
            os.environ[name] = str(bundle)
        settings = load_defender_settings(
            _env_file=None,
            api_url=sim.base_url,
            authority_host=sim.authority_host,
            tenant_id=TENANT,
            client_id="lrbot-bench",
            client_secret=SECRET,
        )
        provider = MsalTokenProvider(settings)
        token = provider.token()
        sequence = CommandSequence.of(RunScript(script_name="ok.ps1"))
        with (
            DefenderClient(settings, token_provider=provider) as client,
            DefenderClient(settings, token_provider=StaticTokenProvider(token)) as static,
            httpx.Client(
                base_url=sim.base_url,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                timeout=30,
            ) as raw,
        ):
            machines = [f"{i + 1:040x}" for i in range(50)]
            ids = [client.run_live_response(m, sequence, "bench").id for m in machines]
            prefix = len(f"{sim.base_url}/api/machineactions?%24filter=")
            filters = odata.chunk_any_of("id", ids, odata.MAX_URL_LENGTH - prefix)

            def raw_actions() -> object:
                return [
                    raw.get("/api/machineactions", params={"$filter": f}).json() for f in filters
                ]

            rows = {
                "get_action": measure(
                    calls,
                    lambda: raw.get(f"/api/machineactions/{ids[0]}").json(),
                    lambda: client.get_action(ids[0]),
                ),
                "get_action (static token)": measure(
                    calls,
                    lambda: raw.get(f"/api/machineactions/{ids[0]}").json(),
                    lambda: static.get_action(ids[0]),
                ),
                # The simulator's list call is ~6 ms: fewer rounds keep the run under a minute.
                f"get_actions x50 ({len(filters)} req, n={calls // 5})": measure(
                    calls // 5, raw_actions, lambda: client.get_actions(ids)
                ),
                "get_machine": measure(
                    calls,
                    lambda: raw.get(f"/api/machines/{machines[0]}").json(),
                    lambda: client.get_machine(machines[0]),
                ),
            }

    print(f"n={calls} calls unless shown, loopback TLS, times in microseconds")
    header = ("operation", "raw med", "client med", "overhead", "raw p99", "client p99", "overhead")
    print("{:<32}{:>10}{:>12}{:>10}{:>10}{:>12}{:>10}".format(*header))
    for name, (raw_med, our_med, raw_p99, our_p99) in rows.items():
        values = [raw_med, our_med, our_med - raw_med, raw_p99, our_p99, our_p99 - raw_p99]
        cells = [f"{v * 1e6:.0f}" for v in values]
        print("{:<32}{:>10}{:>12}{:>10}{:>10}{:>12}{:>10}".format(name, *cells))


if __name__ == "__main__":
    main()
