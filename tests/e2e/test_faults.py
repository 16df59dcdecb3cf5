"""Faults a run must survive, each as the people in the channel would notice it: the run still
happens exactly once (one action per request at Defender), its thread is complete, in order
and says nothing twice, no error is logged, and the bot keeps serving (a fresh request
afterwards runs to its end).

Covered elsewhere, not repeated here: Slack 429 and 500 on ``chat.postMessage`` during a run
(``test_runs_slack.py``), duplicate deliveries of a click (``test_approval.py``), a 429 and a
dropped answer on one submission (``test_runs_submission.py``), a 429 on
``files.getUploadURLExternal`` (``test_runs_results.py``), and the client's own retries
(``tests/test_client*.py``).
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.ids import Action
from bot.records import RequestState
from bot.sandbox._slack_records import Message
from bot.sandbox.slack_api import UPLOAD
from commands.simulator import Fault, RecordedRequest
from tests.helpers.bot import APPROVER, CHANNEL, BotHarness
from tests.helpers.defender import build_scenario
from tests.helpers.runs import approve, run_bot, run_posts

pytestmark = pytest.mark.usefixtures("no_errors_logged")

COMMANDS = "runscript ok.ps1; getfile C:\\Temp\\a.txt"
A_TXT = b"hello from ws-001\n" * 200
# The thread of COMMANDS, by each reply's first word.
THREAD = [
    "Approved",
    "Submitted",
    "Running",
    "Command",  # 1 Completed
    "Command",  # 1's output
    "Command",  # 2 Completed
    "Result",  # 2's file, uploaded
    "Finished",
]
RUNSCRIPT_THREAD = ["Approved", "Submitted", "Running", "Command", "Command", "Finished"]
POLLS = r"^/api/machineactions$"
LINKS = r"/GetLiveResponseResultDownloadLink\("


# --- helpers ---------------------------------------------------------------------------------


def finish(bot: BotHarness, message: Message) -> list[str]:
    """Advance Defender past the run's end; the thread once everything was delivered."""
    bot.advance(60)
    bot.wait_reply(message, "Finished on")
    bot.wait(bot.settled, "the outbox to drain")
    return bot.thread(message)


def actions_of(bot: BotHarness, message: Message) -> list[dict[str, object]]:
    """The simulator's actions whose Comment names the request behind ``message``."""
    marker = f"lrbot {bot.record(message).id} "
    return [a for a in bot.defender.sim.actions() if str(a["requestorComment"]).startswith(marker)]


def assert_ran_once(bot: BotHarness, message: Message, kinds: list[str] = THREAD) -> list[str]:
    """One action, a complete thread in order with no line twice, and the final message."""
    replies = bot.thread(message)
    assert [r.split(" ")[0] for r in replies] == kinds, replies
    assert len(replies) == len(set(replies)), replies
    assert ": Succeeded" in replies[-1]
    assert ": Succeeded." in bot.current(message).text
    assert len(actions_of(bot, message)) == 1
    record = bot.record(message)
    assert record.state is RequestState.FINISHED
    if "Result" in kinds:
        assert "exited with code 0" in replies[4] and "all good" in replies[4]
        [upload] = [u for u in bot.slack.uploads() if u.completed and u.thread_ts == message.ts]
        assert upload.data == A_TXT
    return replies


def assert_still_serving(bot: BotHarness, device: str = "srv-005.contoso.com") -> None:
    """A fresh request, with no fault left, runs to its end."""
    bot.defender.sim.clear_faults()
    bot.slack.clear_failures()
    posts = len(run_posts(bot))
    message = approve(bot, device, "runscript ok.ps1")
    bot.wait_reply(message, "Submitted to Defender")
    finish(bot, message)
    assert_ran_once(bot, message, RUNSCRIPT_THREAD)
    assert len(run_posts(bot)) == posts + 1


def requests_to(bot: BotHarness, method: str, pattern: str) -> list[RecordedRequest]:
    """What Defender (or its sign-in authority) received, with each answer's status."""
    sim = bot.defender.sim
    return [r for r in sim.requests if r.method == method and re.search(pattern, r.path)]


def failed_polls(caplog: pytest.LogCaptureFixture) -> int:
    """Tracker passes whose poll failed after the client's own retries."""
    return sum(
        1
        for r in caplog.records
        if r.name == "bot.tracker"
        and r.getMessage().startswith("poll of ")
        and "failed" in r.getMessage()
    )


@pytest.fixture(autouse=True)
def quick_outbox_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    # A Slack 5xx or a failed download waits a random backoff of up to 4 s; its length is
    # not what these tests are about.
    monkeypatch.setattr("bot.outbox._backoff", lambda attempts: 0.3)


# --- Defender: 429, 500, timeouts, resets ----------------------------------------------------


def test_a_429_storm_on_polls_over_several_intervals_delays_the_run_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with run_bot(tmp_path) as bot:
        message = approve(bot, "ws-001.contoso.com", COMMANDS)
        bot.wait_reply(message, "Submitted to Defender")
        # Each poll is tried 4 times (3 retries, waiting Retry-After): 12 fail 3 passes.
        storm = Fault(method="GET", path_regex=POLLS, status=429, times=12, retry_after=2)
        bot.defender.sim.fault(storm)
        finish(bot, message)
        assert failed_polls(caplog) == 3
        assert len(run_posts(bot)) == 1
        assert_ran_once(bot, message)
        assert_still_serving(bot)


def test_a_429_storm_on_submissions_submits_every_queued_run_once(tmp_path: Path) -> None:
    with run_bot(tmp_path) as bot:
        devices = ["ws-001.contoso.com", "srv-000.contoso.com", "srv-001.contoso.com"]
        messages = [bot.request(device, "runscript ok.ps1") for device in devices]
        bot.defender.sim.fault(
            Fault(method="POST", path_regex="runliveresponse", status=429, times=3, retry_after=1)
        )
        for message in messages:  # all three approved while the storm lasts (1 s a 429)
            bot.click(Action.APPROVE, message, APPROVER)
        for message in messages:
            bot.wait_reply(message, "Submitted to Defender")
        # The throttled three, then one for each run.
        assert [p.status for p in run_posts(bot)] == [429] * 3 + [201] * 3
        queued = [r for m in messages for r in bot.thread(m) if "queued" in r]
        assert queued and all("Defender's rate limit: trying again in 1 s" in r for r in queued)
        for message in messages:
            finish(bot, message)
        for message in messages:
            kinds = list(RUNSCRIPT_THREAD)
            if any("queued" in r for r in bot.thread(message)):
                kinds.insert(1, "Approved")  # "Approved and queued: Defender's rate limit…"
            assert_ran_once(bot, message, kinds)
        assert len(run_posts(bot)) == 6
        assert_still_serving(bot)


def test_500s_on_polls_and_on_result_links_delay_the_results_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with run_bot(tmp_path) as bot:
        message = approve(bot, "ws-001.contoso.com", COMMANDS)
        bot.wait_reply(message, "Submitted to Defender")
        sim = bot.defender.sim
        sim.fault(Fault(method="GET", path_regex=POLLS, status=500, times=8))  # 2 passes
        sim.fault(Fault(method="GET", path_regex=LINKS, status=500, times=6))  # 1 item retry
        finish(bot, message)
        assert failed_polls(caplog) == 2
        # Command 1's link: 4 failures, a retry of the item, 2 more, then one answered; then
        # command 2's, answered at once.
        assert [r.status for r in requests_to(bot, "GET", LINKS)] == [500] * 6 + [200] * 2
        assert_ran_once(bot, message)
        assert_still_serving(bot)


def test_timeouts_retry_reads_and_reconcile_a_submission_never_resent(tmp_path: Path) -> None:
    # Defender's clock as a real tenant's (reconciliation looks back a day from ours), and a
    # client that gives up on an answer after half a second.
    with run_bot(
        tmp_path, defender_start=datetime.now(UTC), defender_settings={"timeout_seconds": 0.5}
    ) as bot:
        sim = bot.defender.sim
        # Answers held until the client hangs up: slower than its timeout.
        sim.fault(Fault(method="POST", path_regex="runliveresponse", hold=True))
        message = approve(bot, "ws-001.contoso.com", COMMANDS)
        submitted = bot.wait_reply(message, "Submitted to Defender")
        assert [p.status for p in run_posts(bot)] == [None]  # never answered
        record = bot.record(message)
        kinds = [e["kind"] for e in bot.store_runtime.store.events_of(record.id)]
        assert "submit_unknown" in kinds and "reconciled_not_found" not in kinds
        assert record.action_id is not None and record.action_id in submitted

        polls_before = len(requests_to(bot, "GET", POLLS))
        sim.fault(Fault(method="GET", path_regex=POLLS, hold=True, times=2))
        finish(bot, message)
        answers = [r.status for r in requests_to(bot, "GET", POLLS)[polls_before:]]
        assert answers[:3] == [None, None, 200]  # 2 timed out, the retry answered
        assert len(run_posts(bot)) == 1
        assert_ran_once(bot, message)
        assert_still_serving(bot)


def test_connection_resets_on_polls_are_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with run_bot(tmp_path) as bot:
        message = approve(bot, "ws-001.contoso.com", COMMANDS)
        bot.wait_reply(message, "Submitted to Defender")
        # Closed without an answer: one pass fails after its retries, the next gets through.
        bot.defender.sim.fault(Fault(method="GET", path_regex=POLLS, drop=True, times=6))
        finish(bot, message)
        assert failed_polls(caplog) == 1
        assert len(run_posts(bot)) == 1
        assert_ran_once(bot, message)
        assert_still_serving(bot)


def test_the_token_endpoint_down_for_a_while_pauses_polling_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token_path = r"/oauth2/v2\.0/token$"
    with run_bot(tmp_path) as bot:
        message = approve(bot, "ws-001.contoso.com", COMMANDS)
        bot.wait_reply(message, "Submitted to Defender")
        sim = bot.defender.sim
        asked = len(requests_to(bot, "POST", token_path))
        sim.fault(Fault(method="POST", path_regex=token_path, status=503, times=4))
        sim.expire_tokens()  # every call now needs a new token, which it cannot get
        bot.advance(6.5)  # command 1 completes meanwhile
        bot.wait(lambda: failed_polls(caplog) >= 4, "4 polls failing for want of a token")
        finish(bot, message)
        answers = [r.status for r in requests_to(bot, "POST", token_path)[asked:]]
        assert answers == [503] * 4 + [200]
        assert len(run_posts(bot)) == 1
        assert_ran_once(bot, message)
        assert_still_serving(bot)


# --- Slack: rate limits and 5xx on updates and uploads ---------------------------------------


@pytest.mark.parametrize(
    ("method", "status"),
    [
        ("chat.update", 429),
        ("chat.update", 500),
        ("files.getUploadURLExternal", 500),
        (UPLOAD, 429),
        (UPLOAD, 500),
        ("files.completeUploadExternal", 429),
        ("files.completeUploadExternal", 500),
    ],
)
def test_slack_failing_an_update_or_an_upload_step_delivers_later_once(
    tmp_path: Path, method: str, status: int
) -> None:
    with run_bot(tmp_path) as bot:
        message = approve(bot, "ws-001.contoso.com", COMMANDS)
        bot.wait_reply(message, "Submitted to Defender")
        bot.wait(bot.settled, "the outbox to drain")
        bot.slack.fail(method, status=status, retry_after=1, times=2)
        finish(bot, message)
        failed = [c for c in bot.slack.calls(method) if c.status != 200]
        assert len(failed) == 2
        later = [c for c in bot.slack.calls(method) if c.status == 200 and c.time > failed[-1].time]
        assert later, f"{method} was never called again"
        assert_ran_once(bot, message)
        # One file in the thread; a file whose bytes went up but whose completion failed is
        # left incomplete (Slack never shares it) and a new one is uploaded.
        assert len([u for u in bot.slack.uploads() if u.completed]) == 1
        shared = [m for m in bot.slack.thread(CHANNEL, message.ts) if m.files]
        assert len(shared) == 1
        assert_still_serving(bot)


# --- the database locked ---------------------------------------------------------------------


def test_a_locked_database_delays_the_work_and_loses_none(tmp_path: Path) -> None:
    with run_bot(tmp_path) as bot:
        running = approve(bot, "ws-001.contoso.com", COMMANDS)
        bot.wait_reply(running, "Submitted to Defender")
        waiting = bot.request("srv-000.contoso.com", "runscript ok.ps1")
        bot.wait(bot.settled, "the outbox to drain")

        # Another process takes the write lock for 1.5 s.
        lock = sqlite3.connect(
            tmp_path / "lrbot.sqlite3", timeout=5, isolation_level=None, check_same_thread=False
        )
        lock.execute("BEGIN EXCLUSIVE")
        locked = time.time()
        released_at: list[float] = []

        def release() -> None:
            lock.execute("COMMIT")
            released_at.append(time.time())

        timer = threading.Timer(1.5, release)
        timer.start()
        try:
            bot.advance(60)  # the running run ends meanwhile
            sent = time.monotonic()
            answer = bot.send.block_action(
                str(Action.APPROVE),
                user_id=APPROVER,
                message=bot.slack.message(CHANNEL, waiting.ts),
            )
            acked = time.monotonic() - sent
            assert answer.status_code == 200, answer.text
            assert acked < 3.0, f"the click was answered after {acked:.2f} s"

            bot.wait_reply(waiting, "Approved by")
            bot.wait_reply(running, "Finished on")
        finally:
            timer.join()
            lock.close()
        [released] = released_at
        # Nothing was decided or followed while the lock was held: both replies came after.
        progress = [
            c.time
            for c in bot.slack.calls("chat.postMessage")
            if c.time > locked
            and c.params.get("thread_ts") in (running.ts, waiting.ts)
            and c.params.get("text", "").startswith(("Running", "Approved"))
        ]
        assert len(progress) == 2 and min(progress) >= released

        bot.wait_reply(waiting, "Submitted to Defender")
        finish(bot, waiting)
        bot.wait(bot.settled, "the outbox to drain")
        assert_ran_once(bot, running)
        assert_ran_once(bot, waiting, RUNSCRIPT_THREAD)
        assert len(run_posts(bot)) == 2
        assert_still_serving(bot)


# --- an expired result link ------------------------------------------------------------------


def test_a_result_link_expired_before_its_download_is_fetched_afresh(tmp_path: Path) -> None:
    with run_bot(tmp_path, build_scenario(link_seconds=60)) as bot:
        message = approve(bot, "ws-001.contoso.com", COMMANDS)
        bot.wait_reply(message, "Submitted to Defender")
        # Command 1's link is made, and its answer held while Defender's clock passes the
        # link's lifetime: the bot gets a link that has already expired.
        held = bot.defender.sim.fault(Fault(method="GET", path_regex=LINKS, hold=True))
        bot.advance(60)
        bot.wait(held.arrived.is_set, "the first result link to be asked for")
        bot.advance(61)
        held.release()
        finish(bot, message)
        first = r"/GetLiveResponseResultDownloadLink\(index=0\)"
        assert len(requests_to(bot, "GET", first)) == 2  # the expired link, then a fresh one
        # The expired link refused, then both results.
        assert [r.status for r in requests_to(bot, "GET", r"^/blob/")] == [403, 200, 200]
        assert_ran_once(bot, message)
        assert_still_serving(bot)
