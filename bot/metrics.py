"""Prometheus metrics: their definitions and the small functions the edges call.

One ``Metrics`` per runtime, on its own ``CollectorRegistry`` (never the global one: tests
run several bots in one process). Counters the process sees are kept here (Defender calls,
Slack errors, latencies); what the store knows is read from it at scrape time (requests by
outcome, runs by final status, the queue), so those survive restarts and never drift.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.records import RequestState
from bot.store import Store
from commands.budget import CallBudget

__all__ = ["OUTCOMES", "Metrics", "ObservedWebClient", "waiting_reason"]

log = logging.getLogger(__name__)

# Event kinds that are a request's outcome (or a step everyone counts): requested, approved…
OUTCOMES = (
    "requested",
    "approved",
    "rejected",
    "withdrawn",
    "expired",
    "refused",
    "refused_unapproved_payload",
    "cancelled",
    "start_deadline",
)
QUEUED = (RequestState.APPROVED, RequestState.SUBMITTING, RequestState.UNKNOWN)
# Slack's 3 s to acknowledge, with room to see a slow tail.
_ACK_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)
# A change seen in a poll until its thread reply is in Slack (the poll interval is 10 s).
_STATUS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)


def waiting_reason(note: str | None) -> str:
    """An approved run's note (``Tracker._wait``) as a few fixed reasons."""
    if not note:
        return "due"
    if note.startswith("the device already has"):
        return "device_busy"
    if note.startswith("another run of ours"):
        return "own_run_on_device"
    if note.startswith("Defender's rate limit"):
        return "defender_throttled"
    if note.startswith("could not reach Defender"):
        return "defender_unreachable"
    return "other"


class Metrics:
    """The bot's metrics on a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.defender_calls = Counter(
            "lrbot_defender_calls",
            "Defender API calls by method, endpoint and HTTP status ('none': no answer)",
            ["method", "endpoint", "status"],
            registry=r,
        )
        self.defender_throttled = Counter(
            "lrbot_defender_throttled",
            "429 Too Many Requests answers from Defender",
            ["endpoint"],
            registry=r,
        )
        self.slack_errors = Counter(
            "lrbot_slack_api_errors",
            "Slack Web API calls that failed, by method and error",
            ["method", "error"],
            registry=r,
        )
        self.ack_seconds = Histogram(
            "lrbot_slack_ack_seconds",
            "From a Slack request's arrival to its acknowledgement, by kind",
            ["kind"],
            buckets=_ACK_BUCKETS,
            registry=r,
        )
        self.status_seconds = Histogram(
            "lrbot_status_reply_seconds",
            "From a run's change seen in a poll (or a decision) to its thread reply in Slack",
            buckets=_STATUS_BUCKETS,
            registry=r,
        )
        self._rate_waiting: Callable[[], int] = lambda: 0

    def bind(
        self,
        store: Store,
        budget: CallBudget | None,
        rate_waiting: Callable[[], int] = lambda: 0,
    ) -> None:
        """Read the store and the call budget at each scrape; ``rate_waiting``: how many
        approved runs wait for the run rate alone (the tracker knows)."""
        self.registry.register(_Snapshot(store, budget, rate_waiting))

    # -- the edges ----------------------------------------------------------------------

    def defender_call(self, method: str, endpoint: str, status: int | None) -> None:
        self.defender_calls.labels(method, endpoint, str(status or "none")).inc()
        if status == 429:
            self.defender_throttled.labels(endpoint).inc()

    def slack_error(self, method: str, error: str) -> None:
        self.slack_errors.labels(method, error[:64]).inc()

    def acked(self, kind: str, seconds: float) -> None:
        self.ack_seconds.labels(kind).observe(seconds)

    def status_replied(self, seconds: float) -> None:
        self.status_seconds.observe(max(seconds, 0.0))

    def exposition(self) -> tuple[bytes, str]:
        """The text format and its content type, for ``/metrics``."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _Snapshot(Collector):
    """What the store and the call budget say, read at scrape time."""

    def __init__(
        self, store: Store, budget: CallBudget | None, rate_waiting: Callable[[], int]
    ) -> None:
        self.store = store
        self.budget = budget
        self.rate_waiting = rate_waiting

    def describe(self) -> list[Metric]:
        return []  # collected at scrape time only (the store may be down at registration)

    def collect(self) -> Iterator[Metric]:
        started = time.monotonic()
        up = GaugeMetricFamily("lrbot_store_up", "1 when the store answered this scrape")
        try:
            tallies = self.store.tallies()
        except Exception as exc:  # noqa: BLE001 - a scrape still shows the rest
            log.warning("metrics: the store did not answer: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
        else:
            up.add_metric([], 1)
            yield up
            yield from _store_metrics(tallies, self.rate_waiting())
        if self.budget is not None:
            yield from _budget_metrics(self.budget)
        took = GaugeMetricFamily(
            "lrbot_scrape_store_seconds", "Time this scrape spent reading the store"
        )
        took.add_metric([], time.monotonic() - started)
        yield took


def _store_metrics(tallies: Any, rate_waiting: int) -> Iterator[Metric]:
    outcomes = CounterMetricFamily(
        "lrbot_requests", "Requests by outcome (from the event log)", labels=["outcome"]
    )
    for outcome in OUTCOMES:
        outcomes.add_metric([outcome], tallies.events.get(outcome, 0))
    yield outcomes
    runs = CounterMetricFamily(
        "lrbot_runs_finished",
        "Runs by Defender's final status (Succeeded, Failed, Cancelled, TimeOut)",
        labels=["status"],
    )
    for status, count in sorted(tallies.final_statuses.items()):
        runs.add_metric([status], count)
    yield runs
    states = GaugeMetricFamily(
        "lrbot_requests_open", "Requests not yet at an end, by state", labels=["state"]
    )
    for state in RequestState:
        if not state.is_closed:
            states.add_metric([str(state)], tallies.states.get(str(state), 0))
    yield states
    depth = GaugeMetricFamily(
        "lrbot_queue_depth",
        "Approved runs not yet accepted by Defender (approved, submitting, outcome unknown)",
    )
    depth.add_metric([], sum(tallies.states.get(str(s), 0) for s in QUEUED))
    yield depth
    waiting = GaugeMetricFamily(
        "lrbot_queue_waiting", "Approved runs waiting, by reason", labels=["reason"]
    )
    reasons: dict[str, int] = {}
    for note in tallies.approved_notes:
        reason = waiting_reason(note)
        reasons[reason] = reasons.get(reason, 0) + 1
    rate = min(rate_waiting, reasons.get("due", 0))
    if rate:
        reasons["due"] -= rate
        reasons["run_rate"] = rate
    for reason, count in sorted(reasons.items()):
        waiting.add_metric([reason], count)
    yield waiting
    unsent = GaugeMetricFamily("lrbot_outbox_pending", "Slack deliveries not yet made")
    unsent.add_metric([], tallies.outbox_pending)
    yield unsent


def _budget_metrics(budget: CallBudget) -> Iterator[Metric]:
    snapshot = budget.snapshot()
    used = GaugeMetricFamily(
        "lrbot_defender_budget_used",
        "Defender calls (other than run submissions) made in the window",
        labels=["window"],
    )
    limit = GaugeMetricFamily(
        "lrbot_defender_budget_limit", "Defender calls allowed in the window", labels=["window"]
    )
    for name, window in (("minute", snapshot.minute), ("hour", snapshot.hour)):
        used.add_metric([name], window.used)
        limit.add_metric([name], window.limit)
    yield used
    yield limit


class ObservedWebClient(WebClient):
    """A ``WebClient`` that tells ``observer`` each call's method and its error (None: it
    worked; ``connection``: no answer), for the metrics and readiness."""

    def __init__(self, observer: Callable[[str, str | None, int | None], None], **kw: Any):
        super().__init__(**kw)
        self._observer = observer

    def like(self, plain: WebClient) -> ObservedWebClient:
        """``plain`` (Bolt's client for one request), observed as this one is."""
        return ObservedWebClient(
            self._observer,
            token=plain.token,
            base_url=plain.base_url,
            timeout=plain.timeout,
            ssl=plain.ssl,
            proxy=plain.proxy,
            headers=plain.headers,
            team_id=plain.default_params.get("team_id"),
            logger=plain.logger,
            retry_handlers=plain.retry_handlers,
        )

    def api_call(self, api_method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            response = super().api_call(api_method, *args, **kwargs)
        except SlackApiError as exc:
            error = exc.response.get("error") if hasattr(exc.response, "get") else None
            self._observer(api_method, str(error or "unknown"), exc.response.status_code)
            raise
        except OSError:  # URLError, timeouts, refused connections
            self._observer(api_method, "connection", None)
            raise
        self._observer(api_method, None, 200)
        return response
