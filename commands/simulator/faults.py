"""Failure injection: answer chosen requests with an error, drop their connection, or hold
their answer until the test releases it."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

__all__ = ["Fault", "FaultBook", "FaultHandle"]

_DEFAULT_CODES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


@dataclass(frozen=True)
class Fault:
    """Answer the next ``times`` requests matching ``method`` and ``path_regex`` with ``status``.

    ``path_regex`` is searched in the decoded path (no query string); ``method="*"`` matches
    any method. With ``drop=True`` the request is applied as usual (a POSTed action IS
    created) and the connection is closed without an answer. ``retry_after`` (real seconds)
    sets a ``Retry-After`` header; a 429 gets one of 1 second when it is not set.

    With ``body`` the answer is ``status`` with exactly these bytes (as ``content_type``):
    Defender answering nonsense, for fuzzing what reads its answers.

    With ``hold`` (True, or an ``Event`` that releases it) the request is applied as usual
    and its true answer waits until the hold is released, or is never sent if the client
    hangs up first (say, a process killed mid-call). ``status`` does not apply then.
    """

    method: str = "*"
    path_regex: str = ".*"
    status: int = 503
    times: int = 1
    drop: bool = False
    retry_after: float | None = None
    code: str | None = None
    message: str | None = None
    hold: threading.Event | bool = False
    body: bytes | None = None
    content_type: str = "application/json"

    @property
    def error_code(self) -> str:
        return self.code or _DEFAULT_CODES.get(self.status, "InternalServerError")

    @property
    def error_message(self) -> str:
        return self.message or f"Simulated failure ({self.status} {self.error_code})."

    @property
    def retry_after_header(self) -> str | None:
        if self.retry_after is not None:
            return f"{self.retry_after:g}"
        return "1" if self.status == 429 else None

    def matches(self, method: str, path: str) -> bool:
        if self.method != "*" and self.method.upper() != method.upper():
            return False
        return re.search(self.path_regex, path) is not None


class FaultHandle:
    """A registered fault, for the test: ``arrived`` is set once a request meets it (for a
    hold: while that request's answer is being held), and ``release()`` lets held answers go.
    """

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.arrived = threading.Event()
        self.released = fault.hold if isinstance(fault.hold, threading.Event) else threading.Event()

    @property
    def holds(self) -> bool:
        return self.fault.hold is not False

    def release(self) -> None:
        self.released.set()


@dataclass
class _Armed:
    handle: FaultHandle
    left: int = field(default=0)


class FaultBook:
    """Registered faults, consumed in registration order; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[_Armed] = []

    def add(self, fault: Fault) -> FaultHandle:
        re.compile(fault.path_regex)  # fail now, in the test, on a bad pattern
        handle = FaultHandle(fault)
        with self._lock:
            self._faults.append(_Armed(handle, fault.times))
        return handle

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str) -> FaultHandle | None:
        """The first matching fault with uses left (using one up), or None."""
        with self._lock:
            for armed in self._faults:
                if armed.left > 0 and armed.handle.fault.matches(method, path):
                    armed.left -= 1
                    return armed.handle
        return None
