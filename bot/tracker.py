"""Submits approved runs to Defender and follows them to their final status.

One thread, one loop: expire stale approvals, reconcile submissions whose outcome is
unknown, submit what is due (within the run-rate and active-run limits), then poll every
running action in one batched call. Each observed change is one store transition whose
outbox items carry the thread replies, so nothing is told twice or lost in a crash.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa

from bot import views
from bot.directory import Directory
from bot.lifecycle import Lifecycle, change_transition, defender_comment
from bot.logs import about
from bot.records import CommandState, RequestRecord, RequestState
from bot.store import Store, Transition
from bot.time_limits import expected_seconds
from commands.budget import CallBudget
from commands.digest import library_changes, payload_digest
from commands.errors import (
    ActiveRequestAlreadyExists,
    ApiError,
    BudgetExhausted,
    DefenderError,
    OutcomeUnknown,
    Throttled,
)
from commands.models import CommandSequence
from commands.wire import (
    ACTIVE_STATUSES,
    FINAL_COMMAND_STATUSES,
    FINAL_STATUSES,
    LibraryFile,
    MachineAction,
)

__all__ = ["Tracker", "TrackerDefender"]

log = logging.getLogger(__name__)

RESULT_KINDS = frozenset({"RunScript", "GetFile"})
KNOWN_STATUSES = ACTIVE_STATUSES | FINAL_STATUSES
_MINUTE = timedelta(minutes=1)
DEVICE_BUSY = (
    "the device already has a live response action (perhaps started by someone else);"
    " this run starts when that one ends"
)
RATE_WAIT = "the run rate is at its limit; it is submitted when the window has room"


class TrackerDefender(Protocol):
    def run_live_response(
        self, machine_id: str, sequence: CommandSequence, comment: str
    ) -> MachineAction: ...
    def get_actions(self, ids: Iterable[str]) -> dict[str, MachineAction]: ...
    def actions_for_machine(
        self, machine_id: str, since: datetime | None = None
    ) -> list[MachineAction]: ...
    def cancel_action(self, action_id: str, comment: str) -> MachineAction: ...
    def active_action(self, machine_id: str) -> MachineAction | None: ...
    def library_files(self) -> list[LibraryFile]: ...


class Tracker:
    """The submit-and-follow loop."""

    def __init__(
        self,
        store: Store,
        defender: TrackerDefender,
        lifecycle: Lifecycle,
        directory: Directory,
        *,
        poll_seconds: float,
        clock: Callable[[], datetime],
        runs_per_minute: int = 10,
        max_active: int = 25,
        wake_outbox: Callable[[], None] = lambda: None,
        budget: CallBudget | None = None,
        start_deadline: timedelta = timedelta(minutes=120),
        time_scale: float = 1.0,
    ) -> None:
        self.store = store
        self.defender = defender
        self.lifecycle = lifecycle
        self.directory = directory
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.runs_per_minute = runs_per_minute
        self.max_active = max_active
        self.wake_outbox = wake_outbox
        self.start_deadline = start_deadline
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._paused_until: datetime | None = None
        # When the run-rate window next has room, while it alone holds approved runs back:
        # the wait for the next poll ends then, so a slot is not left unused for a poll.
        self._rate_opens_at: datetime | None = None
        # Clock seconds per real second: 1, except on a simulator's faster clock.
        self.time_scale = time_scale
        # Machine id → someone else's action holding that device, followed in the batched
        # poll: POSTing again every poll until it ends would spend the run rate (10/min).
        self._blockers: dict[str, str] = {}
        # Defender's non-run API budget, shared with everything else that calls Defender:
        # when its hour runs short, polls (one call each) come further apart.
        self.budget = budget
        self._poll_calls = 0
        self._stretched = False
        # Approved runs whose wait for the run rate is already in the audit trail.
        self._rate_queued: set[str] = set()
        self._unknown_statuses: set[tuple[str, str]] = set()  # (request id, status) warned of
        # Several replicas: only the one holding the worker lease runs this loop, and it
        # submits only while ``fence()`` says the lease is still its own.
        self.fence: Callable[[], bool] = lambda: True
        # How often the resting loop looks for runs approved on another replica (None: it
        # is woken instead, as a lone process is).
        self.pickup_seconds: float | None = None
        self._seen_approved: set[str] = set()
        self._pass_library: list[LibraryFile] | None = None  # this submission pass's read
        # Wall-clock time after which runs left in 'submitting' by a previous holder are
        # treated as of unknown outcome (None: done).
        self._recover_at: float | None = None

    # -- running ------------------------------------------------------------------------

    def start(self, recover_at: float | None = None) -> None:
        """Start the loop. Runs left in 'submitting' are reconciled at once, or only from the
        wall-clock time ``recover_at``: a previous holder that may still be alive could be
        in the middle of that very POST until then."""
        if self._thread is not None:  # stopped a moment ago: let that pass end first
            self._thread.join()
        self._stop.clear()
        self._recover_at = recover_at
        if recover_at is None:
            self._recover()
        self._thread = threading.Thread(target=self._loop, name="tracker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if not self._thread.is_alive():  # a zero wait only asks it to stop
                self._thread = None

    def wake(self) -> None:
        self._wake.set()

    def waiting_for_rate(self) -> int:
        """Approved runs known to wait for room in the run rate (for the metrics)."""
        return len(self._rate_queued)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("tracker tick failed; trying again next interval")
            self._rest(self._interval())

    def _rest(self, seconds: float) -> None:
        """Wait ``seconds`` for the next tick (less when woken); meanwhile, should approved
        runs wait for the run rate alone, submit them as soon as its window has room."""
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0:
            opens = self._rate_opens_in()
            step = left if opens is None else min(left, opens)
            if self.pickup_seconds is not None:
                step = min(step, self.pickup_seconds)
            if self._wake.wait(step):
                break
            if self._approved_elsewhere() or (opens is not None and opens < left):
                try:
                    self._submit_due()
                except Exception:
                    log.exception("submitting between polls failed; trying again next tick")
                self.wake_outbox()
        self._wake.clear()

    def _approved_elsewhere(self) -> bool:
        """Runs approved (on any replica) since this loop last looked: nobody woke us."""
        if self.pickup_seconds is None:
            return False
        try:
            approved = set(self.store.request_ids([RequestState.APPROVED]))
        except sa.exc.SQLAlchemyError:  # the database is away: the next tick says so
            return False
        new = bool(approved - self._seen_approved)
        self._seen_approved = approved
        return new

    def _rate_opens_in(self) -> float | None:
        """Real seconds until the run-rate window has room, if runs wait for it alone."""
        if self._rate_opens_at is None:
            return None
        seconds = (self._rate_opens_at - self.clock()).total_seconds() / self.time_scale
        return max(seconds, 0.01)

    def _interval(self) -> float:
        """The poll interval, stretched when the budget's hour runs short."""
        if self.budget is None:
            return self.poll_seconds
        interval = self.budget.stretched_interval(self.poll_seconds, self._poll_calls)
        if (interval > self.poll_seconds) != self._stretched:
            self._stretched = not self._stretched
            log.info("polling every %.1f s (%s)", interval, self.budget.snapshot())
        return interval

    def _recover(self) -> None:
        """A submission in flight when the process stopped has an unknown outcome."""
        self._recover_at = None
        for record in self.store.in_states([RequestState.SUBMITTING]):
            with _about(record):
                self._change(
                    record,
                    {"state": RequestState.UNKNOWN},
                    ("submit_unknown", None, {"cause": "process restarted during submission"}),
                    expect=[RequestState.SUBMITTING],
                )

    def tick(self) -> None:
        """One pass over everything due; public so tests and the demo can drive it."""
        self.lifecycle.expire_due()
        if self._recover_at is not None and time.time() >= self._recover_at:
            self._recover()
        for record in self.store.in_states([RequestState.UNKNOWN]):
            with _about(record):
                self._reconcile(record)
        self._submit_due()
        self._poll()
        self._deadlines()
        self.wake_outbox()

    # -- submission ---------------------------------------------------------------------

    def _submit_due(self) -> None:
        self._rate_opens_at = None
        # One read of the library serves every submission of this pass (a batch of twenty
        # devices asks for the same files): read at the first, seconds before the last.
        self._pass_library = None
        now = self.clock()
        if self._paused_until is not None and now < self._paused_until:
            return
        # Room under both limits, counted once: a long queue must not cost queries per run.
        rate_room = self.runs_per_minute - self.store.count_submitted_since(now - _MINUTE)
        active_room = self.max_active - self.store.count_active()
        room = min(rate_room, active_room)
        if room <= 0:
            if rate_room <= 0 < active_room:
                self._await_rate(now)
                self._queued(self.store.request_ids([RequestState.APPROVED]))
            return
        busy_machines = {
            r.machine_id
            for r in self.store.in_states(
                [RequestState.SUBMITTING, RequestState.PENDING, RequestState.IN_PROGRESS]
            )
        }
        approved = self.store.in_states([RequestState.APPROVED])
        for index, record in enumerate(approved):
            if self._stop.is_set():
                return  # stopping: submit nothing new; the next start finds them approved
            if room <= 0:
                if rate_room <= 0 < active_room:
                    self._await_rate(now)
                    left = [
                        r
                        for r in approved[index:]
                        if r.machine_id not in busy_machines and r.machine_id not in self._blockers
                    ]
                    self._queued([r.id for r in left], left)
                return
            if record.machine_id in busy_machines:
                self._wait(record, "another run of ours is active on this device; it goes next")
                continue
            if record.machine_id in self._blockers:
                continue  # the thread already says why; the poll tells when the device is free
            with _about(record):
                submitted = self._submit(record)
            if not submitted:
                return
            # Defender counts a refused run against its rate as well
            room, rate_room, active_room = room - 1, rate_room - 1, active_room - 1
            busy_machines.add(record.machine_id)

    def _queued(self, ids: list[str], records: list[RequestRecord] | None = None) -> None:
        """Record once per wait that a run waits for room in the run rate: the audit trail
        lists it, the thread does not (the wait is short and the message says queued)."""
        self._rate_queued &= set(ids)  # submitted or ended since: a later wait is a new one
        new = [i for i in ids if i not in self._rate_queued]
        if not new:
            return
        known = {r.id: r for r in records or []}
        for request_id in new:
            record = known.get(request_id) or self.store.get(request_id)
            if record is None:
                continue
            self._rate_queued.add(request_id)
            self._change(
                record,
                {},
                ("queued", None, {"reason": RATE_WAIT}),
                expect=[RequestState.APPROVED],
                update_message=False,
            )

    def _await_rate(self, now: datetime) -> None:
        """Note when the oldest submission that fills the run-rate window leaves it."""
        times = self.store.submitted_since(now - _MINUTE)
        excess = len(times) - self.runs_per_minute
        if 0 <= excess < len(times):  # a limit of 0 never opens
            self._rate_opens_at = times[excess] + _MINUTE

    def _submit(self, record: RequestRecord) -> bool:
        """Submit one run; False when Defender asks us to stop submitting for now."""
        now = self.clock()
        assert record.decided_by is not None
        refusal = self._binding_broken(record)
        if refusal is False:
            return False
        if isinstance(refusal, str):
            log.warning("request %s not submitted: %s", record.id, refusal)
            self._change(
                record,
                {"state": RequestState.REFUSED, "note": refusal, "finished_at": now},
                ("refused_unapproved_payload", None, {"reason": refusal}),
                reply=lambda r: views.reply_not_approved(r, refusal),
                expect=[RequestState.APPROVED],
            )
            return True
        # Names first: should asking Slack fail, the run is still approved, not stranded in
        # 'submitting' (only a restart looks at those again).
        comment = defender_comment(
            record,
            self.directory.display_name(record.requester),
            ", ".join(self.directory.display_name(u) for u in record.approvers),
        )
        if not self.fence():
            log.warning(
                "request %s not submitted: this replica no longer holds the lease", record.id
            )
            return False
        claimed = self._change(
            record,
            {"state": RequestState.SUBMITTING, "submitted_at": now},
            ("submitting", None, {}),
            expect=[RequestState.APPROVED],
            update_message=False,
        )
        if claimed is None:
            return True
        back = {"state": RequestState.APPROVED, "submitted_at": None}
        try:
            action = self.defender.run_live_response(record.machine_id, record.commands, comment)
        except Throttled as exc:
            self._paused_until = now + timedelta(seconds=max(exc.retry_after, 1.0))
            queued = self._change(
                claimed,
                back,
                ("throttled", None, {"retry_after": exc.retry_after}),
                expect=[RequestState.SUBMITTING],
                update_message=False,
            )
            # The record as it is now (approved again): ``claimed`` is still submitting.
            if queued is not None:
                self._wait(
                    queued, f"Defender's rate limit: trying again in {exc.retry_after:.0f} s"
                )
            return False
        except ActiveRequestAlreadyExists:
            queued = self._change(
                claimed,
                back,
                ("device_busy", None, {}),
                expect=[RequestState.SUBMITTING],
                update_message=False,
            )
            if queued is not None:
                self._wait(queued, DEVICE_BUSY)
            self._follow_blocker(record.machine_id)
            return True
        except OutcomeUnknown as exc:
            log.warning("request %s: submission outcome unknown: %s", record.id, exc.cause)
            self._change(
                claimed,
                {"state": RequestState.UNKNOWN},
                ("submit_unknown", None, {"cause": exc.cause}),
                expect=[RequestState.SUBMITTING],
                update_message=False,
            )
            return True
        except ApiError as exc:
            log.warning(
                "request %s refused by Defender: %s (target %s)", record.id, exc, exc.target
            )
            why = f"{exc.code}: {exc.message}"
            self._change(
                claimed,
                {"state": RequestState.REFUSED, "note": exc.message, "finished_at": now},
                ("refused", None, {"status": exc.status, "code": exc.code, "target": exc.target}),
                reply=lambda r: views.reply_refused(r, why),
                expect=[RequestState.SUBMITTING],
            )
            return True
        except DefenderError as exc:  # not sent (no connection): safe to try again later
            log.warning("request %s: could not reach Defender: %s", record.id, exc)
            self._change(
                claimed,
                back,
                ("submit_failed", None, {"error": str(exc)}),
                expect=[RequestState.SUBMITTING],
                update_message=False,
            )
            return False
        # Defender counted the run when the POST reached it, after our claim: the window
        # counts it from the answer, so its slot is never reused before Defender's is.
        self._adopt(claimed, action, expect=[RequestState.SUBMITTING], submitted_at=self.clock())
        return True

    def _binding_broken(self, record: RequestRecord) -> str | bool | None:
        """Why the approved payload is not what would run now; None when it is the same.

        False when the library could not be read: try again later, as for any call. The
        library is read once per submission pass, just before its first POST; Defender offers
        no conditional run, so a file replaced in the moments between cannot be caught here.
        """
        if record.digest is None:
            return None  # approved before approvals were bound to a payload
        digest = payload_digest(record.machine_id, record.commands, record.library)
        if digest != record.digest:
            return "the request was changed after it was approved"
        approved = self.store.approval_digests(record.id)
        stale = sorted(u for u, d in approved.items() if d != record.digest)
        if stale:
            return f"the approval of {', '.join(stale)} was for another version of the request"
        if not record.library:
            return None
        try:
            if self._pass_library is None:
                self._pass_library = self.defender.library_files()
            files = self._pass_library
        except DefenderError as exc:
            log.warning("request %s: library not readable before submission: %s", record.id, exc)
            return False
        current = {f.file_name: f.sha256 for f in files}
        changes = library_changes(record.library, current)
        if changes:
            return "; ".join(c.describe() for c in changes)
        return None

    def _adopt(
        self,
        record: RequestRecord,
        action: MachineAction,
        expect: list[RequestState],
        submitted_at: datetime | None = None,
    ) -> None:
        with about(action=action.id):
            self._adopted(record, action, expect, submitted_at)

    def _adopted(
        self,
        record: RequestRecord,
        action: MachineAction,
        expect: list[RequestState],
        submitted_at: datetime | None,
    ) -> None:
        log.info("request %s submitted as action %s", record.id, action.id)
        changes: dict[str, Any] = {
            "state": RequestState.PENDING,
            "action_id": action.id,
            "action_status": action.status,
            "note": None,
        }
        if submitted_at is not None:
            changes["submitted_at"] = submitted_at
        adopted = self._change(
            record,
            changes,
            ("submitted", None, {"action_id": action.id}),
            reply=views.reply_submitted,
            expect=expect,
        )
        if adopted is not None and adopted.cancelled_by:
            self.lifecycle.cancel_at_defender(adopted, adopted.cancelled_by)

    def _reconcile(self, record: RequestRecord) -> None:
        """Find the action a lost answer created, by the request id in its Comment."""
        # A day back: the request id in the Comment makes the match exact, and the wide
        # window keeps it exact even when our clock and Defender's disagree by hours.
        since = (record.submitted_at or record.created_at) - timedelta(days=1)
        try:
            actions = self.defender.actions_for_machine(record.machine_id, since)
        except DefenderError as exc:
            log.warning("request %s: reconciliation failed, retrying: %s", record.id, exc)
            return
        marker = f"lrbot {record.id} "
        for action in actions:
            if (action.requestor_comment or "").startswith(marker):
                self._adopt(record, action, expect=[RequestState.UNKNOWN])
                return
        log.info("request %s: no action found at Defender; submitting it again", record.id)
        self._change(
            record,
            {"state": RequestState.APPROVED, "submitted_at": None},
            ("reconciled_not_found", None, {}),
            expect=[RequestState.UNKNOWN],
            update_message=False,
        )

    def _follow_blocker(self, machine_id: str) -> None:
        """Learn which action holds the device, so the poll can tell when it ends."""
        try:
            action = self.defender.active_action(machine_id)
        except DefenderError as exc:
            log.warning("machine %s: could not find its active action: %s", machine_id, exc)
            return
        if action is not None:
            log.info("machine %s is held by action %s; waiting for it", machine_id, action.id)
            self._blockers[machine_id] = action.id

    def _wait(self, record: RequestRecord, reason: str) -> None:
        """Say once in the thread why a run waits."""
        if record.note == reason:
            return
        self._change(
            record,
            {"note": reason},
            ("waiting", None, {"reason": reason}),
            reply=lambda r: views.reply_waiting(r, reason),
            expect=[record.state],
        )

    # -- following ----------------------------------------------------------------------

    def _poll(self) -> None:
        running = self.store.in_states([RequestState.PENDING, RequestState.IN_PROGRESS])
        ids = [r.action_id for r in running if r.action_id] + list(self._blockers.values())
        self._poll_calls = 1 if ids else 0  # one call holds about 37 ids: all of them
        if not ids:
            return
        try:
            actions = self.defender.get_actions(ids)
        except BudgetExhausted as exc:
            log.info("poll of %d actions waits for Defender's API budget: %s", len(ids), exc)
            return
        except DefenderError as exc:
            log.warning("poll of %d actions failed: %s", len(ids), exc)
            return
        for machine_id, blocker in list(self._blockers.items()):
            action = actions.get(blocker)
            if action is None or action.is_final:
                del self._blockers[machine_id]  # the device is free: submit on the next pass
        for record in running:
            action = actions.get(record.action_id or "")
            if action is None:
                log.warning(
                    "request %s: action %s missing from the poll", record.id, record.action_id
                )
                continue
            with _about(record):
                self._progress(record, action)

    def _progress(self, record: RequestRecord, action: MachineAction) -> None:
        if action.is_final and self.lifecycle.cancel_in_flight(record.id):
            # Defender's answer to our cancel is not in the thread yet: the final word follows
            # it (the canceller wakes us once it is written).
            return
        now = self.clock()
        changes: dict[str, Any] = {}
        transition = Transition()
        states = list(record.command_states)
        replies: list[Callable[[RequestRecord], views.Message]] = []
        started = record.state is RequestState.IN_PROGRESS
        if not started and _reached_device(action):
            # Our timestamps come from our clock; Defender's may be skewed from it.
            changes.update(state=RequestState.IN_PROGRESS, started_at=now)
            replies.append(views.reply_started)
            transition.event("started", None, action_id=action.id)
        for command in sorted(action.commands, key=lambda c: c.index):
            position = command.index + 1
            if (
                not 1 <= position <= len(states)
                or states[position - 1].status == command.command_status
            ):
                continue
            errors = command.error_text() or None
            states[position - 1] = CommandState(command.command_status, errors)
            transition.commands[position] = (command.command_status, errors)
            transition.event("command", None, position=position, status=command.command_status)
            if command.command_status in FINAL_COMMAND_STATUSES:
                replies.append(_command_reply(position, command.command_status, errors))
            kind = record.commands.commands[position - 1].kind
            if command.command_status == "Completed" and kind in RESULT_KINDS:
                replies.append(_result_marker(position))
        if action.status not in KNOWN_STATUSES:
            # Undocumented: not final, so keep polling and keep the last status we understood
            # (the request message shows it); say so once per request and status, not per poll.
            if (record.id, action.status) not in self._unknown_statuses:
                self._unknown_statuses.add((record.id, action.status))
                log.warning(
                    "request %s: Defender reports action %s as %r, not a known status;"
                    " following it until it reaches a final one",
                    record.id,
                    action.id,
                    action.status[:100],
                )
        elif action.status != record.action_status:
            changes["action_status"] = action.status
        if action.is_final:
            skipped = [
                i for i, s in enumerate(states, start=1) if s.status not in FINAL_COMMAND_STATUSES
            ]
            # Only a failed command skips the rest; a run that never started (the device
            # stayed offline, or it was cancelled while queued) skipped nothing.
            if skipped and any(s.status == "Failed" for s in states):
                replies.append(lambda r: views.reply_skipped(r, skipped))
            changes.update(state=RequestState.FINISHED, finished_at=now)
            elapsed = _elapsed(action, record, now)
            replies.append(lambda r: views.reply_final(r, max(elapsed, 0.0)))
            transition.event("finished", None, status=action.status, action_id=action.id)
        if not changes and not transition.commands:
            return
        transition.changes.update(changes)
        after = record.with_changes(**changes, command_states=tuple(states), updated_at=now)
        for reply in replies:
            if isinstance(reply, _ResultMarker):
                transition.send("result", position=reply.position)
            else:
                message = reply(after)
                transition.send("reply", text=message.text, blocks=message.blocks)
        transition.send("update_request")
        if self.store.transition(record.id, transition, now, expect=[record.state]) is None:
            log.info("request %s changed while polling; will look again", record.id)

    # -- deadlines ----------------------------------------------------------------------

    def _deadlines(self) -> None:
        """An approval means "start by"; a run far past Defender's own limits is flagged."""
        now = self.clock()
        for record in self.store.in_states([RequestState.APPROVED, RequestState.PENDING]):
            deadline = (record.decided_at or record.created_at) + self.start_deadline
            if now >= deadline and not self._happened(record, "start_deadline"):
                with _about(record):
                    self._missed_start(record, deadline)
        for record in self.store.in_states([RequestState.IN_PROGRESS]):
            limit = expected_seconds(record.commands)
            running = (now - (record.started_at or now)).total_seconds()
            if running > limit and not self._happened(record, "overtime"):
                log.warning(
                    "request %s: action %s still running after %.0f s",
                    record.id,
                    record.action_id,
                    running,
                )
                self._change(
                    record,
                    {},
                    ("overtime", None, {"running_seconds": running, "limit_seconds": limit}),
                    reply=functools.partial(_overtime_reply, running=running, limit=limit),
                    expect=[RequestState.IN_PROGRESS],
                    update_message=False,
                )

    def _missed_start(self, record: RequestRecord, deadline: datetime) -> None:
        log.info("request %s did not start by %s; calling it off", record.id, deadline)
        event = ("start_deadline", None, {"deadline": deadline.isoformat()})
        reply = lambda r: views.reply_start_deadline(r, deadline)  # noqa: E731
        if record.state is RequestState.APPROVED:
            self._change(
                record,
                {
                    "state": RequestState.FINISHED,
                    "action_status": "Cancelled",
                    "finished_at": self.clock(),
                    "note": f"did not start by {deadline:%Y-%m-%d %H:%M} UTC",
                },
                event,
                reply=reply,
                expect=[RequestState.APPROVED],
            )
            return
        assert record.action_id is not None
        comment = (
            f"lrbot {record.id} | not started by {deadline:%Y-%m-%d %H:%M} UTC,"
            " the deadline its approval set"
        )
        try:
            self.defender.cancel_action(record.action_id, comment)
        except DefenderError as exc:
            log.warning("request %s: cancel after the start deadline failed: %s", record.id, exc)
            return  # tried again next tick
        # Defender's final word (Cancelled) arrives with the next poll.
        self._change(
            record,
            {"note": "did not start in time; cancelled"},
            event,
            reply=reply,
            expect=[RequestState.PENDING],
        )

    def _happened(self, record: RequestRecord, kind: str) -> bool:
        return any(e["kind"] == kind for e in self.store.events_of(record.id))

    # -- helpers ------------------------------------------------------------------------

    def _change(
        self,
        record: RequestRecord,
        changes: dict[str, Any],
        event: tuple[str, str | None, dict[str, Any]],
        *,
        expect: list[RequestState],
        reply: Callable[[RequestRecord], views.Message] | None = None,
        update_message: bool = True,
    ) -> RequestRecord | None:
        now = self.clock()
        transition = change_transition(
            record, changes, event, reply, now, update_message=update_message
        )
        return self.store.transition(record.id, transition, now, expect=expect)


def _about(record: RequestRecord) -> contextlib.AbstractContextManager[None]:
    """Log lines within name the request, its requester, the device and the action."""
    return about(
        request=record.id,
        user=record.requester,
        device=record.machine_id,
        action=record.action_id,
    )


def _reached_device(action: MachineAction) -> bool:
    """Whether the action started: one still queued can end (TimeOut, Cancelled) unstarted."""
    return action.status == "InProgress" or any(
        c.start_time or c.command_status != "Created" for c in action.commands
    )


def _overtime_reply(record: RequestRecord, *, running: float, limit: float) -> views.Message:
    return views.reply_overtime(record, running, limit)


def _elapsed(action: MachineAction, record: RequestRecord, now: datetime) -> float:
    """Seconds from submission to the end, by Defender's clock when it gives both ends."""
    if action.creation_time and action.last_update_time:
        return (action.last_update_time - action.creation_time).total_seconds()
    return (now - (record.submitted_at or record.created_at)).total_seconds()


def _command_reply(
    position: int, status: str, errors: str | None
) -> Callable[[RequestRecord], views.Message]:
    return lambda record: views.reply_command(record, position, status, errors)


class _ResultMarker:
    """Stands in the reply list where a command's result must be fetched and posted."""

    def __init__(self, position: int) -> None:
        self.position = position

    def __call__(self, record: RequestRecord) -> views.Message:  # pragma: no cover
        raise AssertionError("a result is delivered by the outbox, not rendered here")


def _result_marker(position: int) -> _ResultMarker:
    return _ResultMarker(position)
