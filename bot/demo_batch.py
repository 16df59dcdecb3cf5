"""``lrbot demo --batch``: one batch request, offline, with its summary printed.

Ana asks for the triage archive from three workstations at once; Lee approves the batch
once; each device's run reports in the one thread, and the summary table ends it.
"""

from __future__ import annotations

import sys
from typing import TextIO

from bot.demo import ANA, CHANNEL, LEE, NAMES, Transcript, run_demo
from bot.ids import Action, Block
from bot.records import RequestState
from bot.sandbox import FakeSlack, SlackRequests

__all__ = ["DEVICES", "batch_script", "run_batch_demo"]

DEVICES = "ws-001, ws-010, ws-011"
COMMANDS = "getfile C:\\Windows\\Temp\\triage.zip"
JUSTIFICATION = "The same beacon (alert 4471) on three finance workstations: collect triage."


def run_batch_demo(
    *, out: TextIO = sys.stdout, time_scale: float = 4.0, timeout: float = 120.0
) -> int:
    """0 when every device's run succeeded and the summary reached the thread."""
    return run_demo(out=out, time_scale=time_scale, timeout=timeout, script=batch_script)


def batch_script(
    slack: FakeSlack, sender: SlackRequests, runtime: object, transcript: Transcript, timeout: float
) -> int:
    from bot.runtime import Runtime

    assert isinstance(runtime, Runtime)
    transcript.say(NAMES[ANA], f"/liveresponse, devices: {DEVICES}; commands: {COMMANDS}")
    sender.slash_command("", user_id=ANA, channel_id=CHANNEL)
    view = slack.wait_for(lambda: slack.views()[-1], timeout=10, what="the request form")
    values = {
        str(Block.DEVICE): {str(Action.VALUE): DEVICES},
        str(Block.COMMANDS_TEXT): {str(Action.VALUE): COMMANDS},
        str(Block.JUSTIFICATION): {str(Action.VALUE): JUSTIFICATION},
    }
    # The demo's earlier requests come first: count only what this one adds.
    before, uploaded = len(slack.messages(CHANNEL)), len(slack.uploads())
    sender.view_submission(view, ANA, values)
    message = slack.wait_for(lambda: slack.messages(CHANNEL)[before], timeout=10, what="the batch")
    transcript.say(NAMES[LEE], "clicks Approve all")
    sender.block_action(str(Action.BATCH_APPROVE), user_id=LEE, message=message)

    def summary() -> str | None:
        replies = [m.text for m in slack.thread(CHANNEL, message.ts)]
        done = runtime.store.next_outbox_time() is None
        return next((t for t in replies if t.startswith("Batch finished")), None) if done else None

    table = slack.wait_for(summary, timeout=timeout, what="the batch summary", recheck=0.2)
    records = [r for r in runtime.store.in_states(list(RequestState)) if r.message_ts == message.ts]
    transcript.say(
        "demo",
        f"batch of {len(records)} devices ended;"
        f" {len(slack.uploads()) - uploaded} file(s) uploaded",
    )
    return 0 if table and table.startswith(f"Batch finished: {len(records)} of") else 1
