"""``lrbot serve`` as a real process, for tests that kill it with SIGKILL.

The stand-in Slack and the Defender simulator (over TLS, signed in to with MSAL, on a
scaled clock) run in the test process; the bot runs as ``python -m bot serve`` in HTTP
mode, configured only through its environment, on a SQLite file that outlives it::

    with bot_world(tmp_path) as world:
        world.start()                   # a new process on the same database
        message = world.request("ws-001.contoso.com", "runscript ok.ps1")
        world.click(Action.APPROVE, message, APPROVER)
        world.kill()                    # SIGKILL: no cleanup, no last words
        world.start()

Every process started is killed on the way out, and its log is printed then (pytest shows
it for a failed test).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar, overload

import httpx

from bot.ids import Action, Block
from bot.records import RequestRecord, RequestState
from bot.sandbox import FakeSlack, SlackRequests
from bot.sandbox._slack_records import Message, OpenedView
from bot.store import Store
from commands.simulator import RecordedRequest, ScaledClock, Scenario, SimulatorServer
from tests.helpers import leaks
from tests.helpers.bot import (
    APPROVER,
    APPROVER_2,
    BOT_TOKEN,
    CHANNEL,
    JUSTIFICATION,
    LEADS,
    OUTSIDER,
    REQUESTER,
)
from tests.helpers.defender import build_scenario

__all__ = ["BotProcess", "World", "bot_world"]

T = TypeVar("T")
W = TypeVar("W", bound="World")

START_SECONDS = 30.0  # a cold interpreter on a busy 2-core machine, with margin
_FOREIGN = ("SLACK_", "LRBOT_", "DEFENDER_")
_TRUST = ("CURL_CA_BUNDLE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
_PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class BotProcess:
    """One ``lrbot serve`` process: started, then ready (``/healthz``), then killed."""

    def __init__(
        self, env: dict[str, str], cwd: Path, log_path: Path, options: tuple[str, ...] = ()
    ) -> None:
        self.log_path = log_path
        self.port = _free_port()
        # At DEBUG: everything it could ever log is in the leak guard's scan.
        args = [sys.executable, "-m", "bot", "--log-level", "DEBUG", *options, "serve"]
        args += ["--port", str(self.port), "--host", "127.0.0.1"]
        self._log: IO[bytes] = log_path.open("wb")
        self.popen = subprocess.Popen(
            args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def errors(self) -> list[str]:
        """The lines it logged at ERROR or above (JSON by default, or text)."""
        found = []
        for line in self.log().splitlines():
            try:
                level = json.loads(line).get("level")
            except (ValueError, AttributeError):
                level = "ERROR" if " ERROR " in line or " CRITICAL " in line else None
            if level in ("ERROR", "CRITICAL"):
                found.append(line)
        return found

    def terminate(self, timeout: float) -> int:
        """SIGTERM, as a deploy or ``docker stop`` sends it; its exit status once it ended
        by itself within ``timeout`` s (AssertionError otherwise, after a SIGKILL)."""
        os.kill(self.pid, signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"lrbot serve still running {timeout:g} s after SIGTERM") from None

    def wait_ready(self, timeout: float = START_SECONDS) -> None:
        """Poll ``GET /healthz`` until it answers; fail with the log if the process ends."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0, trust_env=False) as http:
            while True:
                if not self.alive:
                    raise AssertionError(
                        f"lrbot serve exited ({self.popen.returncode}) before it was ready:\n"
                        + self.log()
                    )
                with contextlib.suppress(httpx.TransportError):
                    if http.get(f"http://127.0.0.1:{self.port}/healthz").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"lrbot serve not ready after {timeout:.0f} s:\n{self.log()}"
                    )
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(0.05)  # the pause between attempts; ends early on exit

    def kill(self) -> None:
        """SIGKILL, then reap it."""
        if self.alive:
            os.kill(self.pid, signal.SIGKILL)
        self.popen.wait(10)
        self._log.close()


class World:
    """Slack and Defender in this process, and the bot processes started against them."""

    def __init__(
        self, slack: FakeSlack, sim: SimulatorServer, workdir: Path, database_url: str | None = None
    ) -> None:
        self.slack = slack
        self.sim = sim
        self.workdir = workdir
        self.secret = f"{leaks.SIGNING}-{secrets.token_hex(16)}"
        self.database_url = database_url or f"sqlite:///{workdir / 'lrbot.sqlite3'}"
        self.processes: list[BotProcess] = []
        self.overrides: dict[str, str] = {}  # more settings for the next processes
        self._sender: SlackRequests | None = None
        self._store: Store | None = None

    # -- processes ----------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        """The inherited environment without our settings, plus exactly these."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN)}
        for name in (*_TRUST, *_PROXIES):
            env.pop(name, None)
        scenario = self.sim.scenario
        assert self.sim.ca_pem_path is not None, "MSAL needs https: start the simulator with TLS"
        env.update(
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=self.secret,
            SLACK_API_URL=self.slack.base_url,
            LRBOT_APPROVERS=f"{APPROVER},{LEADS}",
            LRBOT_POLL_SECONDS="0.2",
            LRBOT_DATABASE_URL=self.database_url,
            LRBOT_DATA_DIR=str(self.workdir / "data"),
            DEFENDER_API_URL=self.sim.base_url,
            DEFENDER_AUTHORITY_HOST=self.sim.authority_host,
            DEFENDER_TENANT_ID=scenario.tenant_id,
            DEFENDER_CLIENT_ID=scenario.client_id,
            DEFENDER_CLIENT_SECRET=scenario.client_secret or "",
            REQUESTS_CA_BUNDLE=self.sim.ca_pem_path,  # MSAL (requests)
            SSL_CERT_FILE=self.sim.ca_pem_path,  # the API client (httpx)
            NO_PROXY="127.0.0.1,localhost",
        )
        env.update(self.overrides)
        return env

    def start(self, options: tuple[str, ...] = ()) -> BotProcess:
        """A new bot process on the same database, once it answers ``/healthz``;
        ``options`` go before ``serve`` (say, ``--log-format text``)."""
        process = self.spawn(options)
        process.wait_ready()
        return process

    def spawn(self, options: tuple[str, ...] = ()) -> BotProcess:
        """A new bot process on the same database, once it begins: its first call to Slack
        (Bolt's ``auth.test``) comes just before its tracker and outbox start."""
        assert self.bot is None or not self.bot.alive, "one bot at a time"
        log = self.workdir / f"lrbot-{len(self.processes) + 1}.log"
        began = self.slack.call_count("auth.test")
        process = BotProcess(self.environment(), self.workdir, log, options)
        self.processes.append(process)
        leaks.watch_output(
            f"lrbot serve #{len(self.processes)} (pid {process.pid})", process.log, log
        )
        if self._sender is not None:
            self._sender.close()
        self._sender = SlackRequests(process.url, self.secret, fake=self.slack)

        def begun() -> bool:
            if not process.alive:
                raise AssertionError(f"lrbot serve exited early:\n{process.log()}")
            return self.slack.call_count("auth.test") > began

        self.wait(begun, "the bot to begin", timeout=START_SECONDS)
        return process

    @property
    def bot(self) -> BotProcess | None:
        return self.processes[-1] if self.processes else None

    def kill(self) -> None:
        """``kill -9`` the running bot."""
        assert self.bot is not None and self.bot.alive, "no bot is running"
        self.bot.kill()

    def close(self) -> None:
        for process in self.processes:
            process.kill()
        if self._sender is not None:
            self._sender.close()
        if self._store is not None:
            self._store.close()

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path.name} (pid {p.pid})\n{p.log()}" for p in self.processes)

    @property
    def send(self) -> SlackRequests:
        assert self._sender is not None, "no bot was started"
        return self._sender

    @property
    def store(self) -> Store:
        """The bot's database, read from the test (open it once a bot has created it)."""
        if self._store is None:
            self._store = Store(self.database_url)
        return self._store

    # -- what people do -----------------------------------------------------------------

    def submit_form(self, device: str, commands: str, user: str = REQUESTER) -> None:
        """Open the request modal and submit it; returns once Slack has the bot's 200."""
        views = len(self.slack.views())
        answer = self.send.slash_command("", user_id=user, channel_id=CHANNEL)
        assert answer.status_code == 200, answer.text
        view: OpenedView = self.wait(lambda: self.slack.views()[views], "the request modal")
        values = {
            str(Block.DEVICE): device,
            str(Block.COMMANDS_TEXT): commands,
            str(Block.JUSTIFICATION): JUSTIFICATION,
        }
        state = {block: {str(Action.VALUE): value} for block, value in values.items()}
        answer = self.send.view_submission(view, user, state)
        assert answer.status_code == 200 and not answer.content, answer.text

    def request(self, device: str, commands: str, user: str = REQUESTER) -> Message:
        """Ask for a run through the modal; the request message once it is in the channel."""
        before = len(self.slack.messages(CHANNEL))
        self.submit_form(device, commands, user)
        return self.request_message(before)

    def request_message(self, index: int = -1) -> Message:
        """A request message in the channel (the latest by default), once it is there."""
        return self.wait(lambda: self.slack.messages(CHANNEL)[index], "the request message")

    def click(self, action: Action, message: Message, user: str) -> httpx.Response:
        """A click on the request message as it is now; the bot's HTTP answer."""
        current = self.slack.message(CHANNEL, message.ts)
        return self.send.block_action(str(action), user_id=user, message=current)

    # -- what Slack, Defender and the database show -------------------------------------

    def wait(self, predicate: Callable[[], T], what: str, timeout: float = 20.0) -> T:
        return self.slack.wait_for(predicate, timeout=timeout, what=what, recheck=0.05)

    def thread(self, message: Message) -> list[str]:
        return [m.text for m in self.slack.thread(CHANNEL, message.ts)]

    def record(self, message: Message) -> RequestRecord:
        for record in self.store.in_states(list(RequestState)):
            if record.message_ts == message.ts:
                return record
        raise LookupError(message.ts)

    def drained(self) -> bool:
        """Nothing left in the outbox: everything the bot owes Slack was delivered."""
        return self.store.next_outbox_time() is None

    def finished(self, message: Message) -> RequestRecord:
        """Wait until the run is over and its thread complete; the record then."""
        return self.wait(
            lambda: (
                (r := self.record(message)).state is RequestState.FINISHED and self.drained() and r
            ),
            "the run to finish and the outbox to drain",
        )

    def actions_of(self, request_id: str) -> list[dict[str, Any]]:
        """The simulator's actions whose Comment names the request."""
        marker = f"lrbot {request_id} "
        return [a for a in self.sim.actions() if str(a["requestorComment"]).startswith(marker)]

    def run_posts(self, request_id: str) -> list[RecordedRequest]:
        """The ``runliveresponse`` POSTs Defender received for the request."""
        return [
            r
            for r in self.sim.requests
            if r.method == "POST"
            and r.path.endswith("/runliveresponse")
            and f"lrbot {request_id} " in str((r.body or {}).get("Comment", ""))
        ]


@overload
def bot_world(
    workdir: Path,
    scenario: Scenario | None = None,
    *,
    time_scale: float = 20.0,
    database_url: str | None = None,
) -> contextlib.AbstractContextManager[World]: ...


@overload
def bot_world(
    workdir: Path,
    scenario: Scenario | None = None,
    *,
    time_scale: float = 20.0,
    database_url: str | None = None,
    world: type[W],
) -> contextlib.AbstractContextManager[W]: ...


@contextlib.contextmanager
def bot_world(
    workdir: Path,
    scenario: Scenario | None = None,
    *,
    time_scale: float = 20.0,
    database_url: str | None = None,
    world: type[World] = World,
) -> Iterator[Any]:  # a World, or the ``world`` asked for: the overloads say which
    """Slack and Defender on loopback for bot processes; every process killed on exit.

    The bots share a SQLite file in ``workdir`` unless ``database_url`` names another
    database; ``world`` may be a subclass (``tests.helpers.fleet.Fleet``)."""
    scenario = scenario or build_scenario()
    with (
        FakeSlack(token=BOT_TOKEN) as slack,
        SimulatorServer(scenario, clock=ScaledClock(time_scale), tls=True) as sim,
    ):
        slack.set_channel(CHANNEL, name="soc-incidents")
        for user, name in [
            (REQUESTER, "Rae Requester"),
            (APPROVER, "Abe Approver"),
            (APPROVER_2, "Ada Approver"),
            (OUTSIDER, "Otto Outsider"),
        ]:
            slack.set_user(user, real_name=name)
        slack.set_usergroup(LEADS, [APPROVER_2])
        made = world(slack, sim, workdir, database_url)
        leaks.watch_slack(slack, forbidden=(sim.base_url.split("://", 1)[1],))
        leaks.watch_database(made.database_url)
        leaks.watch_directory(workdir)
        try:
            yield made
        finally:
            made.close()
            print(made.logs())  # pytest shows it when the test failed
