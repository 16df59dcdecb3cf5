"""``/healthz``, ``/readyz`` and ``/metrics``: on the HTTP port, or a port of their own.

Ready means the database answered now, and Slack and Defender each answered a call within
the last ``LRBOT_READY_SECONDS`` with nothing failing since. Calls the bot makes anyway count
(``seen``); when it has been idle for half that long, a background probe makes one cheap
call (Slack ``auth.test``, Defender's library list), so readiness never waits on the network.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

from bot.metrics import Metrics
from bot.store import Store

__all__ = ["PARTS", "Health", "ops_response"]

log = logging.getLogger(__name__)

PARTS = ("database", "slack", "defender")
Probe = Callable[[], object]


class _Part:
    def __init__(self) -> None:
        self.last_ok: float | None = None
        self.failing: str | None = None  # why the last call failed, until one succeeds


class Health:
    """What the bot last heard from Slack and Defender, and a database check."""

    def __init__(
        self,
        store: Store,
        *,
        fresh_seconds: float,
        probes: dict[str, Probe] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.fresh_seconds = fresh_seconds
        self.probes = dict(probes or {})
        self.clock = clock
        self._lock = threading.Lock()
        self._parts = {name: _Part() for name in ("slack", "defender")}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- what the edges report ----------------------------------------------------------

    def seen(self, part: str, failure: str | None = None) -> None:
        """``part`` answered (``failure`` None), or a call to it failed, and why."""
        with self._lock:
            state = self._parts[part]
            if failure is None:
                state.last_ok, state.failing = self.clock(), None
            else:
                state.failing = failure

    def defender_call(self, method: str, endpoint: str, status: int | None) -> None:
        """A ``DefenderClient`` observer: an answer below 500 means Defender is there."""
        if status is None:
            self.seen("defender", f"no answer from {endpoint}")
        elif status >= 500:
            self.seen("defender", f"{endpoint} answered {status}")
        else:
            self.seen("defender")

    # -- readiness ----------------------------------------------------------------------

    def readiness(self) -> tuple[bool, dict[str, str]]:
        """Whether the bot is ready, and each part's state in words ("ok" or why not)."""
        parts: dict[str, str] = {}
        try:
            self.store.ping()
            parts["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            parts["database"] = f"not answering ({type(exc).__name__})"
        now = self.clock()
        with self._lock:
            for name, state in self._parts.items():
                if state.failing is not None:
                    parts[name] = f"failing: {state.failing}"
                elif state.last_ok is None:
                    parts[name] = "not reached yet"
                elif now - state.last_ok > self.fresh_seconds:
                    parts[name] = f"no answer in the last {self.fresh_seconds:g} s"
                else:
                    parts[name] = "ok"
        return all(v == "ok" for v in parts.values()), parts

    # -- probing when idle --------------------------------------------------------------

    def start(self) -> None:
        """Probe each part on a thread of its own: a slow one delays no other."""
        for name in self.probes:
            thread = threading.Thread(
                target=self._loop, args=(name,), name=f"health-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))

    def _loop(self, name: str) -> None:
        while not self._stop.is_set():
            self.probe_if_stale(name)
            self._stop.wait(max(self.fresh_seconds / 4, 0.05))

    def probe_stale(self) -> None:
        """Probe every part that is stale, one after the other."""
        for name in self.probes:
            self.probe_if_stale(name)

    def probe_if_stale(self, name: str) -> None:
        """Call ``name`` if not heard from in half the freshness bound (or failing)."""
        with self._lock:
            state = self._parts[name]
            stale = (
                state.failing is not None
                or state.last_ok is None
                or self.clock() - state.last_ok > self.fresh_seconds / 2
            )
        if not stale:
            return
        try:
            self.probes[name]()
        except Exception as exc:  # noqa: BLE001 - recorded as the part's failure
            log.info("readiness probe of %s failed: %s", name, type(exc).__name__)
            self.seen(name, f"probe failed ({type(exc).__name__})")
        else:
            self.seen(name)


def ops_response(
    path: str, health: Health, metrics: Metrics
) -> tuple[str, list[tuple[str, str]], bytes] | None:
    """The answer to an operations path, or None for any other path."""
    if path == "/healthz":
        return "200 OK", [("Content-Type", "text/plain")], b"ok\n"
    if path == "/readyz":
        ready, parts = health.readiness()
        body = json.dumps({"ready": ready, "parts": parts}).encode()
        status = "200 OK" if ready else "503 Service Unavailable"
        return status, [("Content-Type", "application/json")], body
    if path == "/metrics":
        data, content_type = metrics.exposition()
        return "200 OK", [("Content-Type", content_type)], data
    return None
