"""``lrbot demo``: the whole product offline, with a scripted SOC channel printed as it happens.

The real bot (HTTP mode, signed requests, store, tracker, outbox) runs against the
Defender simulator and a stand-in Slack workspace. Ana asks for a triage collection on
ws-001; she tries to approve it herself and is refused; Lee approves; the commands run,
and the thread fills with progress and results. Then she runs the ``collect-triage``
playbook (``bot/data/playbooks.example.toml``) on ws-010: its expansion and preflight are on
the request message, Lee approves, it runs. Nothing leaves this machine.
"""

from __future__ import annotations

import logging
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from bot.defender import simulated_defender
from bot.http import HttpServer
from bot.ids import Action, Block
from bot.records import RequestState
from bot.runtime import build_runtime
from bot.sandbox import FakeSlack, SlackRequests
from bot.sandbox._slack_records import Call
from bot.settings import load_bot_settings

__all__ = ["run_demo"]

log = logging.getLogger(__name__)

CHANNEL = "C0SOC01"
ANA = "U0ANA01"  # the analyst who asks
LEE = "U0LEE02"  # the lead who approves
NAMES = {ANA: "Ana (analyst)", LEE: "Lee (SOC lead)", "UBOT": "Live Response"}

COMMAND_TEXT = (
    "ws-001 putfile procdump64.exe; runscript collect-triage.ps1 -Case IR-2026-0142;"
    " getfile C:\\Windows\\Temp\\triage.zip"
)
PLAYBOOKS = Path(__file__).resolve().parent / "data" / "playbooks.example.toml"
PLAYBOOK_TEXT = "ws-010 playbook collect-triage case=IR-2026-0142"
JUSTIFICATION = (
    "ws-001 beacons to 198.51.100.23 every 60 s (alert 4471). Collect triage before we isolate it."
)


class Transcript:
    """Prints what the channel shows, as Slack calls arrive."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.started = time.monotonic()
        # Slack calls arrive on the bot's threads while the script narrates: one line at a time.
        self._lock = threading.Lock()

    def say(self, who: str, text: str, indent: str = "") -> None:
        stamp = f"{time.monotonic() - self.started:5.1f}s"
        for user, name in NAMES.items():
            text = text.replace(f"<@{user}>", f"@{name.split(' ')[0]}")
        lines = text.strip().splitlines() or [""]
        with self._lock:
            print(f"{stamp} {indent}{who}: {lines[0]}", file=self.out)
            for line in lines[1:]:
                print(f"       {indent}{' ' * len(who)}  {line}", file=self.out)
            self.out.flush()

    def observe(self, call: Call) -> None:
        if not call.ok:
            return
        params = call.params
        if call.method == "chat.postMessage":
            indent = "  ↳ " if params.get("thread_ts") else ""
            self.say("Live Response", str(params.get("text", "")), indent)
        elif call.method == "chat.update":
            self.say("Live Response", "(request message updated) " + _first(params), "  ✎ ")
        elif call.method == "chat.postEphemeral":
            user = NAMES.get(str(params.get("user")), str(params.get("user")))
            self.say(f"only {user} sees", str(params.get("text", "")), "  ")
        elif call.method == "files.completeUploadExternal":
            files = params.get("files") or []
            names = ", ".join(
                str(f.get("title") or f.get("id")) for f in files if isinstance(f, dict)
            )
            self.say(
                "Live Response", f"uploaded {names}: {params.get('initial_comment', '')}", "  ↳ "
            )
        elif call.method == "views.open":
            self.say("Slack", "the request form opens, prefilled from the command", "  ")


def _first(params: dict[str, object]) -> str:
    text = str(params.get("text", ""))
    return text.splitlines()[0] if text else ""


Script = Callable[[FakeSlack, SlackRequests, object, "Transcript", float], int]


def run_demo(
    *,
    out: TextIO = sys.stdout,
    time_scale: float = 4.0,
    timeout: float = 120.0,
    script: Script | None = None,
) -> int:
    """Run the scripted demo (or ``script``, such as ``bot.demo_batch``'s); 0 when the run
    ended and its results reached the thread."""
    transcript = Transcript(out)
    with tempfile.TemporaryDirectory(prefix="lrbot-demo-") as workdir, FakeSlack() as slack:
        slack.set_user(ANA, real_name="Ana Analyst")
        slack.set_user(LEE, real_name="Lee Lead")
        slack.set_channel(CHANNEL, name="soc-incidents")
        slack.observers.append(transcript.observe)
        secret = secrets.token_hex(16)
        settings = load_bot_settings(
            SLACK_BOT_TOKEN="xoxb-demo",  # noqa: S106 - the stand-in Slack takes any token
            SLACK_SIGNING_SECRET=secret,
            SLACK_API_URL=slack.base_url,
            LRBOT_APPROVERS=LEE,
            LRBOT_POLL_SECONDS=1,
            LRBOT_DATABASE_URL=f"sqlite:///{Path(workdir) / 'lrbot.sqlite3'}",
            LRBOT_DATA_DIR=str(Path(workdir) / "data"),
            LRBOT_PLAYBOOKS=str(PLAYBOOKS),
        )
        with simulated_defender(time_scale=time_scale) as (defender, _sim):
            runtime = build_runtime(settings, defender)
            server = HttpServer(runtime.app, port=0)
            runtime.start()
            server.start()
            sender = SlackRequests(server.url, secret, fake=slack)
            try:
                if script is not None:
                    return script(slack, sender, runtime, transcript, timeout)
                # One request, one playbook, one batch: each ends before the next begins.
                from bot.demo_batch import batch_script

                for each in (_script, _playbook_script, batch_script):
                    failed = each(slack, sender, runtime, transcript, timeout)
                    if failed:
                        return failed
                return 0
            finally:
                server.stop()
                runtime.stop()


def _script(
    slack: FakeSlack, sender: SlackRequests, runtime: object, transcript: Transcript, timeout: float
) -> int:
    from bot.runtime import Runtime

    assert isinstance(runtime, Runtime)
    transcript.say(NAMES[ANA], f"/liveresponse {COMMAND_TEXT}")
    sender.slash_command(COMMAND_TEXT, user_id=ANA, channel_id=CHANNEL)
    view = slack.wait_for(lambda: slack.views()[-1], timeout=10, what="the request form")
    transcript.say(NAMES[ANA], f"fills in the justification: {JUSTIFICATION}")
    values = {
        str(Block.DEVICE): {str(Action.VALUE): "ws-001"},
        str(Block.COMMANDS_TEXT): {str(Action.VALUE): COMMAND_TEXT.split(" ", 1)[1]},
        str(Block.JUSTIFICATION): {str(Action.VALUE): JUSTIFICATION},
        str(Block.TICKET): {str(Action.VALUE): "IR-2026-0142"},
    }
    sender.view_submission(view, ANA, values)
    message = slack.wait_for(
        lambda: slack.messages(CHANNEL)[0], timeout=10, what="the request message"
    )
    transcript.say(NAMES[ANA], "clicks Approve on her own request")
    sender.block_action(str(Action.APPROVE), user_id=ANA, message=message)
    slack.wait_for(lambda: slack.ephemerals(ANA), timeout=10, what="the refusal")
    transcript.say(NAMES[LEE], "clicks Approve")
    sender.block_action(
        str(Action.APPROVE), user_id=LEE, message=slack.message(CHANNEL, message.ts)
    )
    [record] = runtime.store.in_states(list(RequestState))

    def finished() -> bool:
        current = runtime.store.get(record.id)
        return bool(
            current and current.state.is_closed and runtime.store.next_outbox_time() is None
        )

    slack.wait_for(
        finished, timeout=timeout, what="the run to end and its thread to fill", recheck=0.2
    )
    final = runtime.store.get(record.id)
    assert final is not None
    transcript.say(
        "demo",
        f"request {final.id} ended: {final.action_status or final.state}; "
        f"{len(slack.thread(CHANNEL, message.ts))} replies in its thread, "
        f"{len(slack.uploads())} file(s) uploaded",
    )
    return 0 if final.action_status == "Succeeded" else 1


def _playbook_script(
    slack: FakeSlack, sender: SlackRequests, runtime: object, transcript: Transcript, timeout: float
) -> int:
    """A playbook typed with its parameter, shown in full and preflighted, approved, run."""
    from bot.runtime import Runtime

    assert isinstance(runtime, Runtime)
    views_before = len(slack.views())
    messages_before = len(slack.messages(CHANNEL))
    transcript.say(NAMES[ANA], f"/liveresponse {PLAYBOOK_TEXT}")
    sender.slash_command(PLAYBOOK_TEXT, user_id=ANA, channel_id=CHANNEL)
    view = slack.wait_for(
        lambda: slack.views()[views_before], timeout=10, what="the form with the playbook"
    )
    transcript.say(NAMES[ANA], "the form shows the playbook and its parameter; she gives a reason")
    values = {
        str(Block.DEVICE): {str(Action.VALUE): "ws-010"},
        str(Block.PLAYBOOK): {str(Action.VALUE): "collect-triage"},
        str(Block.PLAYBOOK_PARAMS): {str(Action.VALUE): "case=IR-2026-0142"},
        str(Block.JUSTIFICATION): {str(Action.VALUE): "Same beacon seen from ws-010 (alert 4472)."},
    }
    sender.view_submission(view, ANA, values)
    message = slack.wait_for(
        lambda: slack.messages(CHANNEL)[messages_before], timeout=10, what="the playbook request"
    )
    for block in message.blocks:
        text = str((block.get("text") or {}).get("text", ""))
        if text.startswith(("*Commands*", "*Preflight*", "*1.*", "*2.*", "*3.*")):
            transcript.say("Live Response", text, "  │ ")
    transcript.say(NAMES[LEE], "reads the expansion and the preflight, clicks Approve")
    sender.block_action(
        str(Action.APPROVE), user_id=LEE, message=slack.message(CHANNEL, message.ts)
    )
    found = slack.wait_for(
        lambda: next(
            (r for r in runtime.store.in_states(list(RequestState)) if r.message_ts == message.ts),
            None,
        ),
        timeout=10,
        what="the playbook request's record",
    )
    assert found is not None
    record = found

    def finished() -> bool:
        current = runtime.store.get(record.id)
        return bool(
            current and current.state.is_closed and runtime.store.next_outbox_time() is None
        )

    slack.wait_for(finished, timeout=timeout, what="the playbook run to end", recheck=0.2)
    final = runtime.store.get(record.id)
    assert final is not None
    transcript.say(
        "demo", f"playbook request {final.id} ended: {final.action_status or final.state}"
    )
    return 0 if final.action_status == "Succeeded" else 1
