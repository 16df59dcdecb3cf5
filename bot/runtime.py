"""Builds the running bot from its settings and a Defender client, and stops it cleanly."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot.app import create_app, listener_pool
from bot.batch_delivery import BatchDelivery
from bot.batch_intake import BatchIntake
from bot.batch_lifecycle import BatchLifecycle
from bot.batch_store import BatchStore
from bot.directory import Directory
from bot.health import Health
from bot.intake import Intake
from bot.leases import WORKER, Grant, Leadership, Lease, Replica
from bot.lifecycle import Lifecycle
from bot.logs import ContextThreadPool
from bot.metrics import Metrics, ObservedWebClient
from bot.outbox import Deliverer
from bot.playbook_file import load_playbooks
from bot.policy_file import policy_from_settings
from bot.services import Services
from bot.settings import BotSettings
from bot.shared_budget import StoreLedger
from bot.store import Store
from bot.tracker import Tracker

__all__ = ["Runtime", "build_runtime", "utcnow"]

log = logging.getLogger(__name__)

# How soon the replica holding the worker lease notices runs approved and messages queued
# by the others (a lone replica is woken at once; the look is one indexed query).
_PICKUP_SECONDS = 0.5


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    """Every long-lived part of one bot process."""

    settings: BotSettings
    store: Store
    app: App
    intake: Intake
    lifecycle: Lifecycle
    tracker: Tracker
    deliverer: Deliverer
    metrics: Metrics
    health: Health
    listeners: ContextThreadPool  # Bolt's pool: what a listener does after its ack
    lease: Lease
    leadership: Leadership = field(init=False)

    def __post_init__(self) -> None:
        self.leadership = Leadership(self.lease, self._lead, self._follow)

    def start(self) -> None:
        """Answer Slack at once; follow runs and deliver the outbox while holding the lease."""
        self.leadership.start()

    def stop(self, timeout: float = 20.0) -> None:
        """Stop within about ``timeout`` s: the listeners' work in hand, the tracker's
        current step and the outbox's current item are finished, nothing new is begun.
        Whatever is left (a run not yet submitted, a reply not yet sent) is in the store."""
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(deadline - time.monotonic(), 0.0)

        # Tell the tracker and the outbox first (a zero wait): they begin nothing new while
        # the listeners finish.
        self.tracker.stop(0)
        self.deliverer.stop(0)
        self.health.stop(left())  # if ``serve`` started its probes
        if not self.listeners.wait_idle(left()):
            log.warning("stopping with Slack listeners still at work")
        self.tracker.stop(left())
        self.deliverer.stop(left())
        # Hands the lease over at once, so a standby need not wait for it to expire.
        self.leadership.stop(left())
        self.intake.close()
        self.store.close()

    def _lead(self, grant: Grant) -> None:
        recover_at = None
        if grant.previous is not None and not grant.previous_dead:
            # The previous holder may still be alive, in the middle of a submission that
            # began before its lease ran out: reconcile only once that POST must have ended.
            bound = getattr(self.tracker.defender, "submit_bound_seconds", 155.0)
            recover_at = grant.previous_until + bound
        self.deliverer.start()
        self.tracker.start(recover_at=recover_at)

    def _follow(self) -> None:
        # Only asked to stop: each finishes what it is doing (the lease fences submissions),
        # and neither holds up the leadership loop or a stop's time bound.
        self.tracker.stop(0)
        self.deliverer.stop(0)


def build_runtime(
    settings: BotSettings,
    defender: Any,
    *,
    socket_mode: bool = False,
    clock: Callable[[], datetime] = utcnow,
    runs_per_minute: int | None = None,
    max_active: int | None = None,
    time_scale: float = 1.0,
) -> Runtime:
    """Wire the parts; ``defender`` is a ``DefenderClient`` (or anything with its methods).

    ``runs_per_minute`` and ``max_active`` override the settings (``LRBOT_RUNS_PER_MINUTE``,
    ``LRBOT_MAX_ACTIVE_RUNS``); both count on ``clock``, which runs ``time_scale`` times
    faster than real time (only ever on a simulator's scaled clock).
    """
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    store = Store(settings.database_url)
    metrics = Metrics()
    health = Health(store, fresh_seconds=settings.ready_seconds)

    def slack_call(method: str, error: str | None, status: int | None) -> None:
        if error is not None:
            metrics.slack_error(method, error)
        answered = status is not None and status < 500
        health.seen("slack", None if answered else f"{method}: {error or status}")

    def slack_client(timeout: float) -> WebClient:
        return ObservedWebClient(
            slack_call, token=token, base_url=settings.slack_api_url, timeout=timeout
        )

    # Listeners answer people: a rate-limited call is retried once, briefly.
    interactive = slack_client(10)
    interactive.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))
    # The outbox retries on its own schedule and must see every failure itself.
    delivery = slack_client(30)
    delivery.retry_handlers.clear()
    # Group membership is read while a click waits for its ack (decisions are stored before
    # Slack's 200): a short timeout and no Retry-After sleep, failing closed to the last
    # known members, keep that inside Slack's 3 seconds.
    lookups = slack_client(2)
    lookups.retry_handlers.clear()
    if hasattr(defender, "observe"):
        defender.observe(metrics.defender_call)
        defender.observe(health.defender_call)
    health.probes = {
        "slack": lambda: lookups.auth_test(),
        "defender": lambda: defender.library_files(),
    }
    directory = Directory(lookups, settings.usergroup_cache_seconds)
    policy = policy_from_settings(settings)
    deliverer = Deliverer(
        store,
        delivery,
        defender,
        clock=clock,
        results_dir=settings.data_dir / "results",
        max_result_bytes=settings.max_result_bytes,
        inline_output_chars=settings.inline_output_chars,
        large_result_note=settings.large_result_note,
        # Other replicas store work too, without waking this one: look for it this often.
        idle_seconds=_PICKUP_SECONDS,
        metrics=metrics,
        notify_requester=settings.notify_requester,
    )
    # A cancel is an analyst's click: it takes the interactive share of the call budget.
    defender_for_people = defender.interactive() if hasattr(defender, "interactive") else defender
    lifecycle = Lifecycle(
        store,
        policy,
        directory,
        defender_for_people,
        clock=clock,
    )
    tracker = Tracker(
        store,
        defender,
        lifecycle,
        directory,
        poll_seconds=settings.poll_seconds,
        clock=clock,
        runs_per_minute=settings.runs_per_minute if runs_per_minute is None else runs_per_minute,
        max_active=settings.max_active_runs if max_active is None else max_active,
        wake_outbox=deliverer.wake,
        start_deadline=timedelta(minutes=settings.start_deadline_minutes),
        budget=getattr(defender, "budget", None),  # the one the client paces with
        time_scale=time_scale,
    )
    lifecycle.wake_tracker = tracker.wake
    budget = getattr(defender, "budget", None)
    if budget is not None and store.engine.dialect.name == "postgresql":
        # Replicas share PostgreSQL, and Defender counts calls per application.
        budget.share(StoreLedger(store))
    tracker.pickup_seconds = _PICKUP_SECONDS
    lease = Lease(store, WORKER, Replica.this_process(), settings.lease_seconds)
    tracker.fence = lease.valid
    intake = BatchIntake(
        defender,
        playbooks=load_playbooks(settings.playbooks_file),
        start_deadline_minutes=settings.start_deadline_minutes,
        clock=clock,
    )
    batch_store = BatchStore(store)
    deliverer.batches = BatchDelivery(batch_store, clock)
    batches = BatchLifecycle(lifecycle, batch_store)
    services = Services(
        settings, intake, lifecycle, deliverer.wake, batch_intake=intake, batches=batches
    )
    listeners = listener_pool()
    app = create_app(
        services, interactive, socket_mode=socket_mode, metrics=metrics, listeners=listeners
    )
    metrics.bind(store, tracker.budget, tracker.waiting_for_rate)
    return Runtime(
        settings,
        store,
        app,
        intake,
        lifecycle,
        tracker,
        deliverer,
        metrics,
        health,
        listeners,
        lease,
    )
