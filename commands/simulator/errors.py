"""The simulator's refusals, as exceptions the HTTP layer turns into Microsoft's error bodies."""

from __future__ import annotations

import uuid
from typing import Any

__all__ = ["OAuthError", "SimError", "api_error_body"]


def api_error_body(code: str, message: str) -> dict[str, Any]:
    """Defender's error body, with a fresh correlation id as ``target``."""
    return {"error": {"code": code, "message": message, "target": str(uuid.uuid4())}}


class SimError(Exception):
    """Defender answers ``status`` with ``{"error": {"code", "message", "target"}}``."""

    def __init__(
        self, status: int, code: str, message: str, *, retry_after: str | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after  # the Retry-After header, in real seconds

    def body(self) -> dict[str, Any]:
        return api_error_body(self.code, self.message)


class OAuthError(Exception):
    """The sign-in authority refuses: ``{"error", "error_description", "error_codes", ...}``."""

    def __init__(self, status: int, error: str, aadsts: int, description: str) -> None:
        super().__init__(f"{status} {error}: AADSTS{aadsts}: {description}")
        self.status = status
        self.error = error
        self.aadsts = aadsts
        self.description = description

    def body(self, timestamp: str) -> dict[str, Any]:
        trace = str(uuid.uuid4())
        return {
            "error": self.error,
            "error_description": f"AADSTS{self.aadsts}: {self.description} Trace ID: {trace}"
            f" Timestamp: {timestamp}",
            "error_codes": [self.aadsts],
            "timestamp": timestamp,
            "trace_id": trace,
            "correlation_id": str(uuid.uuid4()),
            "error_uri": f"https://login.microsoftonline.com/error?code={self.aadsts}",
        }
