"""Failure injection: answer chosen requests with an error, or drop their connection."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

__all__ = ["Fault", "FaultBook"]

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
    """

    method: str = "*"
    path_regex: str = ".*"
    status: int = 503
    times: int = 1
    drop: bool = False
    retry_after: float | None = None
    code: str | None = None
    message: str | None = None

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


@dataclass
class _Armed:
    fault: Fault
    left: int = field(default=0)


class FaultBook:
    """Registered faults, consumed in registration order; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[_Armed] = []

    def add(self, fault: Fault) -> None:
        re.compile(fault.path_regex)  # fail now, in the test, on a bad pattern
        with self._lock:
            self._faults.append(_Armed(fault, fault.times))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """The first matching fault with uses left (using one up), or None."""
        with self._lock:
            for armed in self._faults:
                if armed.left > 0 and armed.fault.matches(method, path):
                    armed.left -= 1
                    return armed.fault
        return None
