"""How fast the bot acknowledges slash commands and button clicks under a burst: p50 and p99.

Starts the real bot in HTTP mode (waitress, Bolt, the store in a temporary SQLite file, the
tracker and the outbox, default settings) against the stand-in Slack and the Defender
simulator, all on loopback. A client in its own process (so that its threads do not share the
bot's GIL) fires rounds of ``--concurrency`` signed requests released together by a barrier,
and times each from sending it to the bot's HTTP answer: the ack Slack waits 3 s for. The mix:
``/liveresponse <text>`` (opens the modal), Approve by a non-approver (refused ephemerally),
Approve and Reject by approvers on requests posted for the round, Withdraw by someone else
(refused). The next round's requests are created as each round is fired, so the outbox posts
them during the burst. The first round warms up and is not counted. Target: p99 under 250 ms.
Afterwards it checks that the work behind each ack (modal, refusal, decision) was done.

    .venv/bin/python benchmarks/ack_latency.py [--rounds 25] [--concurrency 20] [--pause 0.1]
        [--slack-ms 0]

Exits 1 only if the bot answered something other than 200: the figures are the report.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import logging
import multiprocessing
import os
import resource
import secrets
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from urllib.parse import urlsplit

from bot.defender import simulated_defender
from bot.http import HttpServer
from bot.ids import Action
from bot.intake import Accepted
from bot.modal import ModalValues
from bot.records import RequestRecord
from bot.runtime import build_runtime
from bot.sandbox import FakeSlack, SlackRequests
from bot.sandbox._slack_records import Call
from bot.sandbox.slack_requests import SignedRequest
from bot.settings import load_bot_settings
from commands.simulator import demo_scenario

CHANNEL = "C0SOC0001"
REQUESTER = "U0REQ0001"
APPROVER = "U0APP0001"
APPROVER_2 = "U0APP0002"  # an approver through the user group only
OUTSIDER = "U0OUT0001"
LEADS = "S0LEADS01"
BOT_TOKEN = "xoxb-bench-token"  # noqa: S105 - the stand-in Slack's token
TARGET_MS = 250.0

SLASH = "slash /liveresponse <text>"
APPROVE_REFUSED = "approve by non-approver"
APPROVE = "approve (fresh request)"
REJECT = "reject (fresh request)"
WITHDRAW_REFUSED = "withdraw by someone else"
MIX = (SLASH, APPROVE_REFUSED, APPROVE, REJECT, WITHDRAW_REFUSED)
FRESH = (APPROVE, REJECT)
REFUSED = (APPROVE_REFUSED, WITHDRAW_REFUSED)
CLICKS = {
    APPROVE_REFUSED: (Action.APPROVE, OUTSIDER),
    APPROVE: (Action.APPROVE, APPROVER),
    REJECT: (Action.REJECT, APPROVER_2),
    WITHDRAW_REFUSED: (Action.WITHDRAW, OUTSIDER),
}
# What listeners call on Slack after acking (the outbox's own calls are not slowed).
LISTENER_METHODS = frozenset({"views.open", "views.update", "chat.postEphemeral"})
DEVICES = ("ws-001", "ws-010", "ws-011")
GETFILE = "getfile C:\\Windows\\Temp\\triage.zip"
COMMAND_TEXT = f"{DEVICES[0]} {GETFILE}"
JUSTIFICATION = "Beaconing to 198.51.100.23 from this host; collect evidence before isolation."

Job = tuple[str, bytes, dict[str, str]]
Result = tuple[str, int, float, str]


# -- the client process ------------------------------------------------------------------


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def client_main(conn: Connection, url: str, concurrency: int) -> None:
    """Fire each batch received at once, one keep-alive connection per thread; send the times."""
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path
    jobs: list[Job | None] = [None] * concurrency
    results: list[Result | None] = [None] * concurrency
    start = threading.Barrier(concurrency + 1, timeout=30)
    done = threading.Barrier(concurrency + 1, timeout=30)
    stopping = threading.Event()

    def worker(index: int) -> None:
        connection = http.client.HTTPConnection(host, port, timeout=10)
        while True:
            start.wait()
            if stopping.is_set():
                break
            job = jobs[index]
            results[index] = None if job is None else _post(connection, path, job)
            done.wait()
        connection.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    cpu_began = cpu_seconds()
    while (batch := conn.recv()) is not None:
        jobs[:] = [*batch, *[None] * (concurrency - len(batch))]
        start.wait()
        done.wait()
        conn.send([r for r in results if r is not None])
    stopping.set()
    start.wait()
    for thread in threads:
        thread.join(5)
    conn.send(cpu_seconds() - cpu_began)


def _post(connection: http.client.HTTPConnection, path: str, job: Job) -> Result:
    kind, body, headers = job
    began = time.perf_counter()
    try:
        connection.request("POST", path, body=body, headers=headers)
        answer = connection.getresponse()
        text = answer.read()
        status = answer.status
    except OSError as exc:
        connection.close()  # reconnects on the next request
        return kind, 0, time.perf_counter() - began, repr(exc)
    elapsed = time.perf_counter() - began
    return kind, status, elapsed, "" if status == 200 else text[:300].decode(errors="replace")


# -- the bot and its world ---------------------------------------------------------------


def wait_for(predicate: Callable[[], object], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


class World:
    """The bot in HTTP mode, the stand-in Slack and the simulator, on loopback."""

    def __init__(self, workdir: Path, stack: contextlib.ExitStack) -> None:
        self.slack = stack.enter_context(FakeSlack(token=BOT_TOKEN))
        scenario = demo_scenario().model_copy(
            update={"api_calls_per_minute": 100_000, "api_calls_per_hour": 1_000_000}
        )
        defender, _sim = stack.enter_context(simulated_defender(scenario))
        self.slack.set_channel(CHANNEL, name="soc-incidents")
        for user, name in [
            (REQUESTER, "Rae Requester"),
            (APPROVER, "Abe Approver"),
            (APPROVER_2, "Ada Approver"),
            (OUTSIDER, "Otto Outsider"),
        ]:
            self.slack.set_user(user, real_name=name)
        self.slack.set_usergroup(LEADS, [APPROVER_2])
        secret = secrets.token_hex(16)
        settings = load_bot_settings(
            _env_file=None,
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=secret,
            SLACK_API_URL=self.slack.base_url,
            LRBOT_APPROVERS=f"{APPROVER},{LEADS}",
            LRBOT_DATABASE_URL=f"sqlite:///{workdir / 'lrbot.sqlite3'}",
            LRBOT_DATA_DIR=str(workdir / "data"),
        )
        self.runtime = build_runtime(settings, defender)
        self.server = HttpServer(self.runtime.app, port=0)
        self.runtime.start()
        stack.callback(self.runtime.stop)
        self.server.start()
        stack.callback(self.server.stop)
        self.sender = stack.enter_context(SlackRequests(self.server.url, secret, fake=self.slack))
        self.accepted: list[Accepted] = []
        for device in DEVICES:  # one run at a time per device: spread the approvals
            accepted = self.runtime.intake.check(
                ModalValues(device=device, commands_text=GETFILE, justification=JUSTIFICATION)
            )
            assert not isinstance(accepted, dict), accepted
            self.accepted.append(accepted)
        self.created: list[str] = []

    def slow_slack(self, seconds: float) -> None:
        """From now on, the calls listeners make take ``seconds`` more, as over the internet."""

        def delay(call: Call) -> None:
            if call.method in LISTENER_METHODS:
                time.sleep(seconds)

        if seconds > 0:
            self.slack.observers.append(delay)

    def create_requests(self, count: int) -> list[str]:
        """``count`` new requests awaiting approval; the outbox posts them in the channel."""
        create = self.runtime.lifecycle.create
        start = len(self.created)
        ids = [
            create(REQUESTER, CHANNEL, self.accepted[(start + i) % len(self.accepted)]).id
            for i in range(count)
        ]
        self.created.extend(ids)
        self.runtime.deliverer.wake()
        return ids

    def posted(self, ids: list[str]) -> list[RequestRecord]:
        """The requests once their messages (with buttons) are in the channel."""
        records: list[RequestRecord] = []

        def all_posted() -> bool:
            while len(records) < len(ids):
                record = self.runtime.store.get(ids[len(records)])
                if record is None or not record.message_ts:
                    return False
                records.append(record)
            return True

        wait_for(all_posted, f"{len(ids)} request messages", timeout=30)
        return records

    def caught_up(self, slashes: int, refusals: int, decisions: list[str]) -> bool:
        """Whether the work promised by the acks is done: modals, refusals, decisions."""
        store = self.runtime.store
        return (
            self.slack.call_count("views.open") >= slashes
            and self.slack.call_count("chat.postEphemeral") >= refusals
            and all((r := store.get(i)) is not None and r.decided_by for i in decisions)
        )


def build_round(
    world: World,
    kinds: list[str],
    fresh: list[RequestRecord],
    targets: list[RequestRecord],
    round_no: int,
) -> list[Job]:
    """One signed request per kind: fresh requests for approvals, ``targets`` for refusals."""
    jobs: list[Job] = []
    fresh = list(fresh)
    for i, kind in enumerate(kinds):
        request: SignedRequest
        if kind == SLASH:
            request = world.sender.build_slash_command(
                COMMAND_TEXT, user_id=REQUESTER, channel_id=CHANNEL
            )
        else:
            record = fresh.pop() if kind in FRESH else targets[(round_no + i) % len(targets)]
            assert record.message_ts is not None
            action, user = CLICKS[kind]
            message = world.slack.message(CHANNEL, record.message_ts)
            request = world.sender.build_block_action(str(action), user_id=user, message=message)
        jobs.append((kind, request.body, request.headers))
    return jobs


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(results: list[Result]) -> None:
    by_kind: dict[str, list[float]] = defaultdict(list)
    for kind, _status, seconds, _error in results:
        by_kind[kind].append(seconds * 1000)
    by_kind["all"] = [seconds * 1000 for _kind, _status, seconds, _error in results]
    header = ("kind", "count", "p50", "p90", "p99", "max", f"p99<{TARGET_MS:.0f}")
    print("{:<28}{:>7}{:>9}{:>9}{:>9}{:>9}{:>9}".format(*header))
    for kind in [*MIX, "all"]:
        samples = by_kind.get(kind)
        if not samples:
            continue
        p99 = percentile(samples, 0.99)
        cells = [percentile(samples, f) for f in (0.5, 0.9, 0.99)] + [max(samples)]
        verdict = "yes" if p99 < TARGET_MS else "NO"
        print(
            f"{kind:<28}{len(samples):>7}" + "".join(f"{c:>9.1f}" for c in cells) + f"{verdict:>9}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--pause", type=float, default=0.1, help="seconds between rounds")
    parser.add_argument(
        "--slack-ms",
        type=float,
        default=0.0,
        help="add this to each Slack call a listener makes after its ack (views.open,"
        " chat.postEphemeral), as Slack over the internet would; 0: loopback speed",
    )
    args = parser.parse_args()
    rounds, concurrency = args.rounds, args.concurrency
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # A burst larger than waitress's pool queues by design; one warning per queued request.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)

    per_round = [MIX[i % len(MIX)] for i in range(concurrency)]
    results: list[Result] = []
    spawn = multiprocessing.get_context("spawn")
    with (
        tempfile.TemporaryDirectory(prefix="lrbot-ack-") as workdir,
        contextlib.ExitStack() as stack,
    ):
        world = World(Path(workdir), stack)
        ours, theirs = spawn.Pipe()
        client = spawn.Process(
            target=client_main, args=(theirs, world.server.url, concurrency), daemon=True
        )
        client.start()
        theirs.close()  # so that a client that dies is an EOFError here, not a hang
        stack.callback(client.kill)
        targets = world.posted(world.create_requests(5))  # refused clicks leave these be
        world.slow_slack(args.slack_ms / 1000)
        fresh_per_round = sum(kind in FRESH for kind in per_round)
        upcoming = world.create_requests(fresh_per_round)
        load_before = os.getloadavg()
        cpu_before, began = cpu_seconds(), time.perf_counter()
        for round_no in range(rounds + 1):
            jobs = build_round(world, per_round, world.posted(upcoming), targets, round_no)
            # The next round's requests arrive now: the outbox posts them during this burst.
            upcoming = world.create_requests(fresh_per_round if round_no < rounds else 0)
            ours.send(jobs)
            answers: list[Result] = ours.recv()
            if round_no:  # the first round warms connections and caches
                results.extend(answers)
            time.sleep(args.pause)
        wall, cpu_bot = time.perf_counter() - began, cpu_seconds() - cpu_before
        load_after = os.getloadavg()
        ours.send(None)
        cpu_client = float(ours.recv())
        client.join(5)

        # Each ack promised work that follows it: check that it happened.
        slashes = (rounds + 1) * per_round.count(SLASH)
        refusals = (rounds + 1) * sum(kind in REFUSED for kind in per_round)
        decisions = world.created[len(targets) :]
        drain_began = time.perf_counter()
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: world.caught_up(slashes, refusals, decisions), "the work", 30)
        drained = time.perf_counter() - drain_began
        slack = world.slack
        opened, told = slack.call_count("views.open"), slack.call_count("chat.postEphemeral")
        decided = sum(bool((r := world.runtime.store.get(i)) and r.decided_by) for i in decisions)
        group_reads = slack.call_count("usergroups.users.list")

    slack_note = f", Slack calls after the ack +{args.slack_ms:.0f} ms" if args.slack_ms else ""
    print(
        f"{rounds} rounds x {concurrency} concurrent signed requests (+1 warm-up round),"
        f" {args.pause:.2f} s apart{slack_note}; ack = client send -> HTTP answer, ms"
    )
    report(results)
    print(
        f"work behind the acks: {opened}/{slashes} modals opened, {told}/{refusals} refusals"
        f" told, {decided}/{len(decisions)} decisions stored, {drained:.2f} s after the last"
        f" ack; user group read from Slack {group_reads} time(s)"
    )
    print(
        f"machine: {os.cpu_count()} CPUs, load average {load_before[0]:.2f} before,"
        f" {load_after[0]:.2f} after; over {wall:.1f} s the bot process (bot, stand-in Slack,"
        f" simulator) used {cpu_bot / wall:.0%} of a core, the client {cpu_client / wall:.0%}"
    )
    failures = [r for r in results if r[1] != 200]
    for kind, status, _seconds, error in failures[:5]:
        print(f"non-200 answer: {kind}: {status} {error}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
