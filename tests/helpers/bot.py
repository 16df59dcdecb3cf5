"""The real bot in HTTP mode against the stand-in Slack and the Defender simulator.

``BotHarness`` starts everything on loopback: the fake Slack Web API, the simulator on a
``ManualClock`` (tests move Defender's time with ``advance``), and the bot itself (store in
a temporary SQLite file unless ``LRBOT_DATABASE_URL`` says otherwise, tracker and outbox
threads, waitress serving ``/slack/events``).
Tests then act as people do, with signed requests, and wait for what Slack would show.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from bot.http import HttpServer
from bot.ids import Action, Block
from bot.records import RequestRecord, RequestState
from bot.runtime import Runtime, build_runtime
from bot.sandbox import FakeSlack, SlackRequests
from bot.sandbox._slack_records import Message, OpenedView
from bot.settings import load_bot_settings
from commands.client import DefenderClient
from commands.simulator import Scenario
from tests.helpers import leaks
from tests.helpers.defender import Harness, running_harness

__all__ = [
    "APPROVER",
    "APPROVER_2",
    "CHANNEL",
    "LEADS",
    "OUTSIDER",
    "REQUESTER",
    "BotHarness",
    "running_bot",
]

T = TypeVar("T")

CHANNEL = "C0SOC0001"
REQUESTER = "U0REQ0001"
APPROVER = "U0APP0001"
APPROVER_2 = "U0APP0002"  # an approver through the user group only
OUTSIDER = "U0OUT0001"
LEADS = "S0LEADS01"
# Recognisable (see ``tests.helpers.leaks``): the leak guard looks for these markers.
BOT_TOKEN = f"xoxb-{leaks.SLACK_BOT}-test-token"
APP_TOKEN = f"xapp-1-{leaks.SLACK_APP}-test-token"  # unused in HTTP mode: it must not show
JUSTIFICATION = "Beaconing to 198.51.100.23 from this host; collect evidence before isolation."


class BotHarness:
    """Everything running, and the verbs a test needs."""

    def __init__(
        self,
        slack: FakeSlack,
        defender: Harness,
        workdir: Path,
        env: dict[str, Any],
        limits: dict[str, int],
        defender_settings: dict[str, Any] | None = None,
    ) -> None:
        self.slack = slack
        self.defender = defender
        self.workdir = workdir
        self.env = env
        self.limits = limits
        self.defender_settings = defender_settings or {}
        self.secret = f"{leaks.SIGNING}-{secrets.token_hex(16)}"
        self.database_url = str(
            env.get("LRBOT_DATABASE_URL") or f"sqlite:///{workdir / 'lrbot.sqlite3'}"
        )
        self.runtime: Runtime | None = None
        self.server: HttpServer | None = None
        self.client: DefenderClient | None = None
        self.sender: SlackRequests | None = None

    # -- process ------------------------------------------------------------------------

    def start(self) -> None:
        defaults: dict[str, Any] = {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_APP_TOKEN": APP_TOKEN,
            "SLACK_SIGNING_SECRET": self.secret,
            "SLACK_API_URL": self.slack.base_url,
            "LRBOT_APPROVERS": f"{APPROVER},{LEADS}",
            "LRBOT_POLL_SECONDS": 0.05,
            "LRBOT_DATABASE_URL": self.database_url,
            "LRBOT_DATA_DIR": str(self.workdir / "data"),
        }
        # ``env`` overrides any default (say, LRBOT_DATABASE_URL for PostgreSQL).
        settings = load_bot_settings(_env_file=None, **{**defaults, **self.env})
        self.client = self.defender.client(self.defender.settings(**self.defender_settings))
        self.runtime = build_runtime(settings, self.client, **self.limits)
        self.server = HttpServer(
            self.runtime.app, port=0, ops=(self.runtime.health, self.runtime.metrics)
        )
        self.runtime.start()
        self.server.start()
        self.sender = SlackRequests(self.server.url, self.secret, fake=self.slack)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self.runtime is not None:
            self.runtime.stop()
        if self.client is not None:
            self.client.close()
        self.server = self.runtime = self.client = self.sender = None

    def restart(self) -> None:
        """A new bot process on the same database (as after a crash or a deploy)."""
        self.stop()
        self.start()

    @property
    def send(self) -> SlackRequests:
        assert self.sender is not None, "the bot is not running"
        return self.sender

    @property
    def store_runtime(self) -> Runtime:
        assert self.runtime is not None, "the bot is not running"
        return self.runtime

    # -- what people do -----------------------------------------------------------------

    def slash(self, text: str, user: str = REQUESTER) -> OpenedView:
        """Type ``/liveresponse text``; the modal that opens."""
        before = len(self.slack.views())
        answer = self.send.slash_command(text, user_id=user, channel_id=CHANNEL)
        assert answer.status_code == 200, answer.text
        return self.wait(lambda: self.slack.views()[before], "the request modal")

    def submit(
        self,
        view: OpenedView,
        values: dict[str, str],
        user: str = REQUESTER,
    ) -> dict[str, Any]:
        """Submit the modal with ``{block_id: value}``; Slack's JSON answer ({} when accepted)."""
        state = {block: {str(Action.VALUE): value} for block, value in values.items()}
        answer = self.send.view_submission(view, user, state)
        assert answer.status_code == 200, answer.text
        return answer.json() if answer.content else {}

    def request(
        self,
        device: str,
        commands: str,
        user: str = REQUESTER,
        justification: str = JUSTIFICATION,
        ticket: str = "",
    ) -> Message:
        """Ask for a run through the modal's text field; the request message in the channel."""
        before = len(self.slack.messages(CHANNEL))
        view = self.slash("", user)
        values = {
            str(Block.DEVICE): device,
            str(Block.COMMANDS_TEXT): commands,
            str(Block.JUSTIFICATION): justification,
        }
        if ticket:
            values[str(Block.TICKET)] = ticket
        answer = self.submit(view, values, user)
        assert not answer.get("errors"), answer
        return self.wait(lambda: self.slack.messages(CHANNEL)[before], "the request message")

    def click(self, action: Action, message: Message, user: str) -> None:
        answer = self.send.block_action(
            str(action), user_id=user, message=self.slack.message(CHANNEL, message.ts)
        )
        assert answer.status_code == 200, answer.text

    # -- what Slack and the store show --------------------------------------------------

    def wait(self, predicate: Callable[[], T], what: str, timeout: float = 10.0) -> T:
        return self.slack.wait_for(predicate, timeout=timeout, what=what, recheck=0.05)

    def thread(self, message: Message) -> list[str]:
        return [m.text for m in self.slack.thread(CHANNEL, message.ts)]

    def wait_reply(self, message: Message, fragment: str, timeout: float = 10.0) -> str:
        """The first thread reply containing ``fragment``."""
        return self.wait(
            lambda: next((t for t in self.thread(message) if fragment in t), None),
            f"a thread reply containing {fragment!r}",
            timeout,
        )

    def current(self, message: Message) -> Message:
        return self.slack.message(CHANNEL, message.ts)

    def record(self, message: Message) -> RequestRecord:
        """The stored request behind a request message."""
        runtime = self.store_runtime
        for record in runtime.store.in_states(list(RequestState)):
            if record.message_ts == message.ts:
                return record
        raise LookupError(message.ts)

    def wait_state(self, message: Message, *states: RequestState) -> RequestRecord:
        return self.wait(
            lambda: (r := self.record(message)).state in states and r,
            f"the request to reach {', '.join(states)}",
        )

    def settled(self) -> bool:
        """Nothing left for the outbox to deliver."""
        return self.store_runtime.store.next_outbox_time() is None

    def advance(self, seconds: float) -> None:
        """Move Defender's clock."""
        self.defender.clock.advance(seconds)

    def buttons(self, message: Message) -> set[str]:
        ids = set()
        for block in self.current(message).blocks or []:
            for element in block.get("elements", []) if block.get("type") == "actions" else []:
                ids.add(str(element.get("action_id")))
        return ids


@contextmanager
def running_bot(
    tmp_path: Path,
    scenario: Scenario | None = None,
    *,
    env: dict[str, Any] | None = None,
    limits: dict[str, int] | None = None,
    defender_start: datetime | None = None,
    defender_settings: dict[str, Any] | None = None,
) -> Iterator[BotHarness]:
    """Slack, Defender and the bot, all on loopback; stopped on exit.

    Defender's clock starts at a fixed date unless ``defender_start`` is given (say, now:
    what the bot compares with its own clock then matches, as with a real tenant).
    ``defender_settings`` overrides the client's settings (say, a short ``timeout_seconds``).
    ``env`` overrides the bot's settings, the database included (``LRBOT_DATABASE_URL``:
    a SQLite file in ``tmp_path`` by default).
    """
    with (
        FakeSlack(token=BOT_TOKEN) as slack,
        running_harness(scenario, start=defender_start) as defender,
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
        bot = BotHarness(slack, defender, tmp_path, env or {}, limits or {}, defender_settings)
        # Under the leak guard: everything the bot wrote down is scanned after the test.
        leaks.watch_slack(slack, forbidden=(defender.sim.base_url.split("://", 1)[1],))
        leaks.watch_database(bot.database_url)
        leaks.watch_directory(tmp_path)
        bot.start()
        try:
            yield bot
        finally:
            bot.stop()
