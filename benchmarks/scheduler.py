"""The scheduler's figures against the simulator, its clock scaled so that minutes pass in seconds.

Four sub-benchmarks (all by default, or those named with ``--only``), each a few seconds to
about a minute and a half of real time; about three and a half minutes in all:

``rate``     100 runs of 60 s approved at once on 100 devices, the bot and Defender both at
             10 runs a minute and 25 running at once: submissions per simulated minute after
             the first minute's burst, as a fraction of the limit (target >= 0.95), 429 answers
             (target 0) and the most actions active at once (target <= 25, from the actions'
             creation and end times). A second pass, 40 runs of 3 min, makes the cap bind.
``polls``    1, 25 and 50 actions running: Defender calls per poll (target 1 each), counted
             from the simulator's log over ten poll intervals.
``latency``  40 runs of two scripts whose lengths are not multiples of the poll interval, 25
             at once: from each change in the simulator (started, a command completed, the
             action final) to its thread reply arriving at the stand-in Slack, in real seconds;
             p99 against the poll interval + 1 s.
``memory``   ``python -m bot serve`` in its own process (HTTP mode, MSAL and the real client
             over TLS, SQLite on disk) against the simulator and the stand-in Slack here, with
             LRBOT_RUNS_PER_MINUTE and LRBOT_MAX_ACTIVE_RUNS raised; 1,000 runs finished and
             their threads delivered (10 through the slash command, the modal and the Approve
             click, the rest created and approved by the bot's own lifecycle on its database,
             100 at a time): VmRSS from /proc (target < 150 MB), sampled along the way.

The in-process sub-benchmarks give the simulator and the bot one scaled clock: the bot's
run-rate window, Defender's windows and the poll interval (10 simulated seconds) all count
simulated time; the call budget counts real time with its limits scaled. The bot's own work
is not scaled, so a figure that includes it (rate, latency) is measured at a lower scale than
the counts. Everything listens on loopback.

    .venv/bin/python -m benchmarks.scheduler [--only rate,polls,latency,memory] [--scale S]

Exits 1 only if something broke (a run that did not finish, a process that died): the
figures, and whether they meet their targets, are the report.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import re
import secrets
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import httpx

from bot.ids import Action, Block
from bot.records import RequestState
from bot.runtime import Runtime, build_runtime
from bot.sandbox import FakeSlack, SlackRequests
from bot.sandbox._slack_records import Call
from bot.settings import load_bot_settings
from bot.store import Store
from commands.auth import MsalTokenProvider
from commands.budget import CallBudget
from commands.client import DefenderClient
from commands.config import load_defender_settings
from commands.models import CommandSequence
from commands.simulator import (
    RecordedRequest,
    ScaledClock,
    Scenario,
    SimLibraryFile,
    SimMachine,
    SimScript,
    SimulatorServer,
    machine_id,
)
from commands.syntax import parse_sequence
from commands.wire import MachineAction
from tests.helpers.defender import most_active
from tests.helpers.seed import approve_all, database_lifecycle

CHANNEL = "C0SOC0001"
REQUESTER = "U0REQ0001"
APPROVER = "U0APP0001"
BOT_TOKEN = "xoxb-bench-token"  # noqa: S105 - the stand-in Slack's token
JUSTIFICATION = "Scheduler benchmark: collect evidence before isolation."
POLL_SIM_SECONDS = 10.0  # LRBOT_POLL_SECONDS's default, in simulated seconds
RUNS_PER_MINUTE = 10  # Defender's limits, and the bot's defaults
MAX_ACTIVE = 25
MEMORY_TARGET_MB = 150.0
SUBS = ("rate", "polls", "latency", "memory")

log = logging.getLogger("scheduler")


# -- the table -----------------------------------------------------------------------------


@dataclass
class Row:
    figure: str
    value: str
    target: str
    ok: bool | None  # None: context, no target

    @property
    def verdict(self) -> str:
        return "" if self.ok is None else ("pass" if self.ok else "FAIL")


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, figure: str, value: str, target: str = "", ok: bool | None = None) -> None:
        row = Row(figure, value, target, ok)
        self.rows.append(row)
        verdict = f" (target {target}: {row.verdict})" if target else ""
        print(f"  {figure}: {value}{verdict}", flush=True)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  {text}", flush=True)

    def print(self) -> None:
        width = max(len(r.figure) for r in self.rows)
        value_width = max(len(r.value) for r in self.rows)
        target_width = max(len(r.target) for r in self.rows)
        header = (
            f"{'figure':<{width}}  {'value':>{value_width}}  {'target':<{target_width}}  result"
        )
        print()
        print(header)
        print("-" * len(header))
        for r in self.rows:
            cells = f"{r.figure:<{width}}  {r.value:>{value_width}}  {r.target:<{target_width}}"
            print(f"{cells}  {r.verdict}")
        for note in self.notes:
            print(f"note: {note}")


# -- time ----------------------------------------------------------------------------------


class SimTime:
    """One scaled clock for the simulator and the bot, and its mapping back to real time."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.clock = ScaledClock(scale)
        self._sim0 = self.clock.now()
        self._real0 = time.monotonic()

    def now(self) -> datetime:
        """The bot's clock."""
        return datetime.fromtimestamp(self.clock.now(), UTC)

    def real(self, simulated: float) -> float:
        """The ``time.monotonic()`` at which the simulated clock read ``simulated``."""
        return self._real0 + (simulated - self._sim0) / self.scale


# -- the simulated tenant ------------------------------------------------------------------


def host(index: int) -> str:
    return f"ws-{index:04d}.contoso.com"


def scenario(
    machines: int,
    scripts: dict[str, float],
    *,
    runs_per_minute: int = 10_000,
    max_sessions: int = 10_000,
    scale: float = 1.0,
) -> Scenario:
    """``machines`` online Windows devices and a script of each given length (seconds); API
    budgets generous (the bot paces itself), run limits as given."""
    return Scenario(
        client_id="lrbot-bench",
        machines=[
            SimMachine(id=machine_id(host(i)), computer_dns_name=host(i)) for i in range(machines)
        ],
        library=[
            SimLibraryFile(file_name=name, content=f"Write-Output '{name}'".encode())
            for name in [*scripts, "evidence.txt"]
        ],
        scripts={
            name: SimScript(seconds=s, output=f"{name}: done\n") for name, s in scripts.items()
        },
        pending_seconds=1.5,
        command_seconds=2.0,
        runs_per_minute=runs_per_minute,
        max_sessions=max_sessions,
        api_calls_per_minute=10_000_000,
        api_calls_per_hour=100_000_000,
        page_size=10_000,
        # A token outlives the benchmark even on a fast clock: MSAL signs in once.
        token_lifetime_seconds=3600 * max(scale, 1.0),
    )


def sequence(text: str) -> CommandSequence:
    return parse_sequence(text)


# -- the bot in this process ---------------------------------------------------------------


@dataclass
class Post:
    """A reply in a request's thread, as the stand-in Slack received it."""

    at: float  # time.monotonic()
    thread_ts: str
    text: str


class World:
    """The bot (tracker, outbox, store), the simulator and the stand-in Slack, one clock."""

    def __init__(
        self,
        stack: contextlib.ExitStack,
        workdir: Path,
        tenant: Scenario,
        scale: float,
        *,
        runs_per_minute: int,
        max_active: int,
    ) -> None:
        self.time = SimTime(scale)
        self.slack = stack.enter_context(FakeSlack(token=BOT_TOKEN))
        self.slack.set_channel(CHANNEL, name="soc-incidents")
        self.slack.set_user(REQUESTER, real_name="Rae Requester")
        self.slack.set_user(APPROVER, real_name="Abe Approver")
        self.posts: list[Post] = []
        self.slack.observers.append(self._observe)
        self.sim = stack.enter_context(SimulatorServer(tenant, clock=self.time.clock, tls=True))
        self.client = stack.enter_context(self._client())
        stack.callback(self._msal_http.close)
        self.poll_seconds = POLL_SIM_SECONDS / scale  # real seconds
        settings = load_bot_settings(
            _env_file=None,
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=secrets.token_hex(16),
            SLACK_API_URL=self.slack.base_url,
            LRBOT_APPROVERS=APPROVER,
            LRBOT_POLL_SECONDS=str(self.poll_seconds),
            LRBOT_RUNS_PER_MINUTE=str(runs_per_minute),
            LRBOT_MAX_ACTIVE_RUNS=str(max_active),
            LRBOT_DATABASE_URL=f"sqlite:///{workdir / 'lrbot.sqlite3'}",
            LRBOT_DATA_DIR=str(workdir / "data"),
        )
        self.runtime: Runtime = build_runtime(
            settings, self.client, clock=self.time.now, time_scale=scale
        )
        self.runtime.start()
        stack.callback(self.runtime.stop)

    def _client(self) -> DefenderClient:
        """As ``bot.defender.simulated_defender`` makes it, with the budget's limits scaled."""
        sim = self.sim
        assert sim.ca_pem_path is not None
        trust = ssl.create_default_context(cafile=sim.ca_pem_path)
        self._msal_http = httpx.Client(verify=trust, timeout=10)
        settings = load_defender_settings(
            _env_file=None,
            api_url=sim.base_url,
            authority_host=sim.authority_host,
            tenant_id=sim.scenario.tenant_id,
            client_id=sim.scenario.client_id,
            client_secret=sim.scenario.client_secret,
        )
        return DefenderClient(
            settings,
            token_provider=MsalTokenProvider(settings, http_client=self._msal_http),
            transport=httpx.HTTPTransport(verify=trust),
            download_transport=httpx.HTTPTransport(verify=trust),
            budget=self._budget(),
        )

    def _budget(self) -> CallBudget:
        """Defender's call limits (100/min, 1,500/h, the bot's reserves) in simulated time.

        The budget counts on real time, like the tracker's wait that it stretches, so its
        limits are scaled instead: per real minute, ``scale`` simulated minutes' worth."""
        scale = self.time.scale
        return CallBudget(
            per_minute=round(100 * scale),
            per_hour=round(1500 * scale),
            interactive_reserve_minute=round(20 * scale),
            interactive_reserve_hour=round(200 * scale),
        )

    def _observe(self, call: Call) -> None:
        thread = call.params.get("thread_ts")
        if call.method == "chat.postMessage" and thread and call.ok:
            self.posts.append(Post(time.monotonic(), str(thread), str(call.params.get("text"))))

    def approve(self, devices: Iterable[int], commands: CommandSequence) -> list[str]:
        """Create a request per device, then approve them all, as fast as the store allows."""
        ids = [machine_id(host(i)) for i in devices]
        return [r.id for r in approve_all(self.runtime.lifecycle, self.sim, ids, commands)]

    def count(self, *states: RequestState) -> int:
        return len(self.runtime.store.in_states(list(states)))

    def wait(self, predicate: Callable[[], object], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.05)

    def finish(self, runs: int, timeout: float) -> None:
        """Wait for ``runs`` runs to finish and for their threads to be complete."""
        store = self.runtime.store
        self.wait(
            lambda: self.count(RequestState.FINISHED) >= runs and store.next_outbox_time() is None,
            f"{runs} runs to finish and the outbox to drain",
            timeout,
        )

    def actions(self) -> list[MachineAction]:
        return [MachineAction.model_validate(a) for a in self.sim.actions()]

    def run_posts(self) -> list[RecordedRequest]:
        return [
            r
            for r in self.sim.requests
            if r.method == "POST" and r.path.endswith("/runliveresponse")
        ]


@contextlib.contextmanager
def world(
    tenant: Scenario, scale: float, *, runs_per_minute: int, max_active: int
) -> Iterator[World]:
    with (
        tempfile.TemporaryDirectory(prefix="lrbot-sched-") as workdir,
        contextlib.ExitStack() as stack,
    ):
        yield World(
            stack,
            Path(workdir),
            tenant,
            scale,
            runs_per_minute=runs_per_minute,
            max_active=max_active,
        )


# -- analysis ------------------------------------------------------------------------------


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def steady_rate(times: list[float], limit: int) -> float:
    """Submissions per minute after the first minute's burst: (n - limit) over the time from
    the first submission to the last. The best possible schedule meets ``limit`` exactly."""
    times = sorted(times)
    span = times[-1] - times[0]
    return (len(times) - limit) / (span / 60) if span > 0 else float("inf")


def answers(requests: list[RecordedRequest]) -> str:
    counts = Counter(r.status for r in requests)
    return ", ".join(f"{n} x {status}" for status, n in sorted(counts.items(), key=str))


# -- rate: 100 runs approved at once -------------------------------------------------------


def bench_rate(report: Report, scale: float, cap_scale: float) -> None:
    print(
        f"rate: 100 runs of 60 s approved at once, limits {RUNS_PER_MINUTE}/min and"
        f" {MAX_ACTIVE} active, scale {scale:g}",
        flush=True,
    )
    limits = {"runs_per_minute": RUNS_PER_MINUTE, "max_sessions": MAX_ACTIVE}
    tenant = scenario(100, {"short.ps1": 60.0}, **limits, scale=scale)
    with world(tenant, scale, runs_per_minute=RUNS_PER_MINUTE, max_active=MAX_ACTIVE) as w:
        began = time.monotonic()
        w.approve(range(100), sequence("runscript short.ps1"))
        approved = time.monotonic() - began
        w.finish(100, timeout=12 * 60 / scale + 60)
        elapsed = time.monotonic() - began
        posts, actions = w.run_posts(), w.actions()
    created = [p.at for p in posts if p.status == 201]
    refused = [p for p in posts if p.status == 429]
    fraction = steady_rate(created, RUNS_PER_MINUTE) / RUNS_PER_MINUTE
    late = [d / scale * 1000 for d in slot_delays(created, RUNS_PER_MINUTE)]
    report.add(
        f"rate: submissions/min over the limit (100 runs, scale {scale:g})",
        f"{fraction:.3f}",
        ">= 0.95",
        fraction >= 0.95,
    )
    report.add("rate: 429 answers (100 runs)", str(len(refused)), "0", not refused)
    peak = most_active(actions)
    report.add(
        "rate: most actions active at once", str(peak), f"<= {MAX_ACTIVE}", peak <= MAX_ACTIVE
    )
    report.note(
        f"rate: 100 approvals took {approved:.2f} s real; all finished in {elapsed:.1f} s real"
        f" ({elapsed * scale / 60:.1f} simulated min); runliveresponse answers: {answers(posts)};"
        f" a slot the sliding window freed was used {percentile(late, 0.5):.0f} ms (median),"
        f" {percentile(late, 0.9):.0f} ms (p90) of real time later, which the scale makes"
        f" {scale:g} times as long in simulated time"
    )

    print(
        f"rate: 40 runs of 3 min approved at once, the cap of {MAX_ACTIVE} binding,"
        f" scale {cap_scale:g}",
        flush=True,
    )
    tenant = scenario(40, {"long.ps1": 180.0}, **limits, scale=cap_scale)
    with world(tenant, cap_scale, runs_per_minute=RUNS_PER_MINUTE, max_active=MAX_ACTIVE) as w:
        w.approve(range(40), sequence("runscript long.ps1"))
        w.finish(40, timeout=12 * 60 / cap_scale + 60)
        posts, actions = w.run_posts(), w.actions()
    refused = [p for p in posts if p.status == 429]
    peak = most_active(actions)
    report.add("rate, cap binding: 429 answers (40 runs)", str(len(refused)), "0", not refused)
    report.add(
        "rate, cap binding: most actions active at once",
        str(peak),
        f"<= {MAX_ACTIVE}",
        peak <= MAX_ACTIVE,
    )


def slot_delays(times: list[float], limit: int) -> list[float]:
    """For each submission after the first ``limit``: how long after the sliding window let
    it go (60 s after the one ``limit`` places before it) it went, in simulated seconds."""
    times = sorted(times)
    return [times[i] - (times[i - limit] + 60) for i in range(limit, len(times))]


# -- polls: calls per poll interval for 1, 25 and 50 running -------------------------------


def bench_polls(report: Report, scale: float, intervals: int = 10) -> None:
    for running in (1, 25, 50):
        print(f"polls: {running} running actions, {intervals} poll intervals", flush=True)
        tenant = scenario(running, {"long.ps1": 500.0}, scale=scale)
        # The limits are not what is measured here: room for all of them at once.
        with world(tenant, scale, runs_per_minute=1000, max_active=1000) as w:
            w.approve(range(running), sequence("runscript long.ps1"))
            w.wait(
                functools.partial(running_all, w, running),
                f"{running} runs in progress",
                timeout=30,
            )
            seen = len(w.sim.requests)
            began = time.monotonic()
            time.sleep(intervals * w.poll_seconds)
            window = time.monotonic() - began
            calls = [r for r in w.sim.requests[seen:] if r.path.startswith("/api/")]
            still = w.count(RequestState.IN_PROGRESS)
        assert still == running, f"only {still} of {running} were still running"
        polls = [r for r in calls if r.path == "/api/machineactions"]
        per_interval = len(calls) / (window / w.poll_seconds)
        per_poll = len(polls) / max(1, len(poll_rounds(polls)))
        report.add(
            f"polls: Defender calls per poll, {running} running",
            f"{per_poll:.2f}",
            "1",
            round(per_poll, 2) == 1.0 and len(calls) == len(polls),
        )
        report.note(
            f"polls, {running} running: {len(calls)} Defender calls in {window:.2f} s real"
            f" ({window / w.poll_seconds:.1f} poll intervals): {per_interval:.2f} per interval;"
            f" {Counter(r.path for r in calls)}"
        )


def running_all(w: World, count: int) -> bool:
    return w.count(RequestState.IN_PROGRESS) == count


def poll_rounds(polls: list[RecordedRequest]) -> list[list[RecordedRequest]]:
    """Polls grouped into rounds: calls less than a simulated second apart are one poll."""
    rounds: list[list[RecordedRequest]] = []
    for request in sorted(polls, key=lambda r: r.at):
        if rounds and request.at - rounds[-1][-1].at < 1.0:
            rounds[-1].append(request)
        else:
            rounds.append([request])
    return rounds


# -- latency: a change in the simulator to its reply in the thread -------------------------

_COMMAND = re.compile(r"Command (\d+) of \d+")


def bench_latency(report: Report, scale: float, runs: int = 40) -> None:
    # Script lengths that are not multiples of the poll interval: changes land at every phase.
    lengths = {"step-a.ps1": 7.3, "step-b.ps1": 11.9, "step-c.ps1": 17.1, "step-d.ps1": 23.7}
    names = list(lengths)
    print(f"latency: {runs} runs of two scripts each, {MAX_ACTIVE} at once", flush=True)
    tenant = scenario(runs, lengths, scale=scale)
    with world(tenant, scale, runs_per_minute=1000, max_active=MAX_ACTIVE) as w:
        for i in range(runs):
            first, second = names[i % 4], names[(i + 1 + i // 4) % 4]
            if first == second:
                second = names[(i + 2) % 4]
            w.approve([i], sequence(f"runscript {first}; runscript {second}"))
        w.finish(runs, timeout=runs * 60 / scale + 60)
        records = w.runtime.store.in_states([RequestState.FINISHED])
        actions = {a.id: a for a in w.actions()}
        posts = list(w.posts)
        sim_time = w.time
        poll = w.poll_seconds
    by_thread = {
        r.message_ts: actions[r.action_id] for r in records if r.message_ts and r.action_id
    }
    samples: dict[str, list[float]] = {"started": [], "command": [], "finished": []}
    for post in posts:
        action = by_thread.get(post.thread_ts)
        if action is None:
            continue
        changed: datetime | None = None
        if post.text.startswith("Running on "):
            kind, changed = "started", action.commands[0].start_time
        elif post.text.startswith("Finished on "):
            kind, changed = "finished", action.last_update_time
        elif (match := _COMMAND.match(post.text)) and ": Completed" in post.text:
            kind, changed = "command", action.commands[int(match[1]) - 1].end_time
        if changed is not None:
            samples[kind].append(post.at - sim_time.real(changed.timestamp()))
    everything = [s for kind in samples.values() for s in kind]
    target = poll + 1.0
    for kind, values in [*samples.items(), ("all", everything)]:
        if not values:
            continue
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        ok = p99 <= target if kind == "all" else None
        report.add(
            f"latency: {kind} (n={len(values)}) p50 / p99 / max, s real",
            f"{p50:.2f} / {p99:.2f} / {max(values):.2f}",
            f"p99 <= {target:.2f}" if kind == "all" else "",
            ok,
        )
    report.note(
        f"latency: poll interval {poll:.2f} s real ({POLL_SIM_SECONDS:g} s simulated at scale"
        f" {scale:g}); a change waits up to one interval for the poll, the rest is the bot's work"
    )


# -- memory: lrbot serve after 1,000 finished runs ------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_mb(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM (the peak) of process ``pid``, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


class BotProcess:
    """``python -m bot serve`` in HTTP mode, configured through its environment only."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.port = free_port()
        self.log_path = cwd / "lrbot.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        args = [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1"]
        self.popen = subprocess.Popen(
            [*args, "--port", str(self.port)],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )
        self.url = f"http://127.0.0.1:{self.port}/slack/events"

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0, trust_env=False) as http:
            while True:
                self.check()
                with contextlib.suppress(httpx.TransportError):
                    if http.get(f"http://127.0.0.1:{self.port}/healthz").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"lrbot serve not ready after {timeout:.0f} s")
                time.sleep(0.05)

    def check(self) -> None:
        if self.popen.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"lrbot serve exited ({self.popen.returncode}):\n{tail}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log.close()


def bot_environment(
    slack: FakeSlack, sim: SimulatorServer, secret: str, workdir: Path
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "LRBOT_", "DEFENDER_"))
        and k not in ("CURL_CA_BUNDLE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    assert sim.ca_pem_path is not None
    scenario_ = sim.scenario
    env.update(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=secret,
        SLACK_API_URL=slack.base_url,
        LRBOT_APPROVERS=APPROVER,
        LRBOT_DATABASE_URL=f"sqlite:///{workdir / 'lrbot.sqlite3'}",
        LRBOT_DATA_DIR=str(workdir / "data"),
        # Raised so that 1,000 runs finish in about a minute of real time: the bot keeps its
        # limits on real time, the simulator runs each action in a few milliseconds.
        LRBOT_RUNS_PER_MINUTE="2000",
        LRBOT_MAX_ACTIVE_RUNS="60",  # two poll calls hold them all
        LRBOT_POLL_SECONDS="2.5",  # 48 calls a minute, 60% of the background share
        DEFENDER_API_URL=sim.base_url,
        DEFENDER_AUTHORITY_HOST=sim.authority_host,
        DEFENDER_TENANT_ID=scenario_.tenant_id,
        DEFENDER_CLIENT_ID=scenario_.client_id,
        DEFENDER_CLIENT_SECRET=scenario_.client_secret or "",
        REQUESTS_CA_BUNDLE=sim.ca_pem_path,
        SSL_CERT_FILE=sim.ca_pem_path,
        NO_PROXY="127.0.0.1,localhost",
    )
    return env


def bench_memory(report: Report, runs: int = 1000, through_slack: int = 10) -> None:
    scale = 600.0  # an action of a few simulated seconds takes milliseconds
    print(
        f"memory: lrbot serve, {runs} runs ({through_slack} through the modal), scale {scale:g}",
        flush=True,
    )
    tenant = scenario(runs, {"ok.ps1": 3.0}, scale=scale)
    finished: list[float] = []

    def observe(call: Call) -> None:
        if call.method == "chat.postMessage" and str(call.params.get("text", "")).startswith(
            "Finished on "
        ):
            finished.append(time.monotonic())

    with (
        tempfile.TemporaryDirectory(prefix="lrbot-mem-") as tmp,
        contextlib.ExitStack() as stack,
        FakeSlack(token=BOT_TOKEN) as slack,
        SimulatorServer(tenant, clock=ScaledClock(scale), tls=True) as sim,
    ):
        workdir = Path(tmp)
        slack.set_channel(CHANNEL, name="soc-incidents")
        slack.set_user(REQUESTER, real_name="Rae Requester")
        slack.set_user(APPROVER, real_name="Abe Approver")
        slack.observers.append(observe)
        secret = secrets.token_hex(16)
        env = bot_environment(slack, sim, secret, workdir)
        bot = BotProcess(env, workdir)
        try:
            bot.wait_ready()
            idle = rss_mb(bot.popen.pid)
            samples: list[tuple[int, float]] = []
            began = time.monotonic()
            # The real path first: the outbox delivers in order, so a request posted behind
            # thousands of thread replies would wait for all of them.
            with SlackRequests(bot.url, secret, fake=slack) as sender:
                for i in range(through_slack):
                    request_through_slack(slack, sender, bot, host(i))
            # The rest through the bot's own lifecycle on its database, while it runs, a
            # batch at a time: a queue of a thousand approvals is not what is measured here.
            store = Store(env["LRBOT_DATABASE_URL"])
            stack.callback(store.close)
            seeder = database_lifecycle(store, slack)
            putfile = sequence("putfile evidence.txt")
            seeded, batch = through_slack, 100
            milestones = [runs // 4, runs // 2, 3 * runs // 4]
            deadline = shown = time.monotonic()
            deadline += 150
            while len(finished) < runs or store.next_outbox_time() is not None:
                bot.check()
                if seeded < runs and seeded - len(finished) < 2 * batch:
                    ids = [machine_id(host(i)) for i in range(seeded, min(runs, seeded + batch))]
                    approve_all(seeder, sim, ids, putfile)
                    seeded = min(runs, seeded + batch)
                if time.monotonic() > shown + 10:
                    shown = time.monotonic()
                    print(f"  ... {len(finished)} finished", flush=True)
                if milestones and len(finished) >= milestones[0]:
                    samples.append((milestones.pop(0), rss_mb(bot.popen.pid)[0]))
                if time.monotonic() > deadline:
                    raise TimeoutError(f"only {len(finished)} of {runs} runs finished")
                time.sleep(0.1)
            done = time.monotonic() - began
            states = Counter(r.state for r in store.in_states(list(RequestState)))
            time.sleep(2)  # a few idle ticks after the work
            rss, peak = rss_mb(bot.popen.pid)
            samples.append((runs, rss))
            polls = [r for r in sim.requests if r.path == "/api/machineactions"]
            statuses = answers([r for r in sim.requests if r.path.startswith("/api/")])
        finally:
            bot.stop()
    report.add(
        f"memory: lrbot serve RSS after {runs} finished runs, MB",
        f"{rss:.1f}",
        f"< {MEMORY_TARGET_MB:.0f}",
        rss < MEMORY_TARGET_MB,
    )
    report.add("memory: peak RSS (VmHWM), MB", f"{peak:.1f}")
    report.note(
        f"memory: RSS {idle[0]:.1f} MB once ready; "
        + ", ".join(f"{n} finished: {mb:.1f} MB" for n, mb in samples)
        + f"; {through_slack} requests through Slack and {runs - through_slack} in the database"
        f"; all finished and delivered {done:.1f} s after the"
        f" start; states {dict(states)}; {len(polls)} polls; Defender answers: {statuses}"
    )


def request_through_slack(
    slack: FakeSlack, sender: SlackRequests, bot: BotProcess, device: str
) -> None:
    """``/liveresponse``, the modal submitted, the request message's Approve clicked."""
    views = len(slack.views())
    answer = sender.slash_command("", user_id=REQUESTER, channel_id=CHANNEL)
    assert answer.status_code == 200, answer.text
    view = slack.wait_for(lambda: slack.views()[views], timeout=10, what="the modal", recheck=0.05)
    values = {
        str(Block.DEVICE): device,
        str(Block.COMMANDS_TEXT): "runscript ok.ps1",
        str(Block.JUSTIFICATION): JUSTIFICATION,
    }
    state = {block: {str(Action.VALUE): value} for block, value in values.items()}
    answer = sender.view_submission(view, REQUESTER, state)
    assert answer.status_code == 200 and not answer.content, answer.text
    # The outbox posts the seeded requests meanwhile: this one is the one naming the device.
    message = slack.wait_for(
        lambda: next((m for m in slack.messages(CHANNEL) if device in m.text), None),
        timeout=10,
        what=f"the request for {device}",
        recheck=0.05,
    )
    assert message is not None
    answer = sender.block_action(
        str(Action.APPROVE), user_id=APPROVER, message=slack.message(CHANNEL, message.ts)
    )
    assert answer.status_code == 200, answer.text
    bot.check()


# -- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--only", default=",".join(SUBS), help=f"comma-separated, of {', '.join(SUBS)}"
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=None,
        help="simulated seconds per real second for rate, polls and latency (default: 10 for"
        " the rate and latency, whose figures include the bot's own work, which the scale"
        " multiplies; 20 for the counts); the poll interval is 10 simulated seconds",
    )
    args = parser.parse_args()
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SUBS)
    if unknown:
        parser.error(f"unknown sub-benchmark(s): {', '.join(sorted(unknown))}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    report = Report()
    runners: dict[str, Callable[[], None]] = {
        "rate": lambda: bench_rate(report, args.scale or 10.0, args.scale or 20.0),
        "polls": lambda: bench_polls(report, args.scale or 20.0),
        "latency": lambda: bench_latency(report, args.scale or 10.0),
        "memory": lambda: bench_memory(report),
    }
    broke = False
    began = time.monotonic()
    for name in SUBS:
        if name not in chosen:
            continue
        started = time.monotonic()
        try:
            runners[name]()
        except Exception as exc:  # a broken sub-benchmark is reported, the others still run
            broke = True
            log.exception("%s broke", name)
            report.add(f"{name}: broke", type(exc).__name__, "", False)
        print(f"{name}: {time.monotonic() - started:.1f} s", flush=True)
    report.print()
    print(f"total {time.monotonic() - began:.0f} s, {os.cpu_count()} CPUs")
    return 1 if broke else 0


if __name__ == "__main__":
    sys.exit(main())
