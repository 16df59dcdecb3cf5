"""Retry decisions as small pure functions: what to retry, and how long to wait."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = [
    "backoff_seconds",
    "is_retryable_status",
    "is_server_error",
    "retry_after_seconds",
]

_RANDOM = random.Random()  # noqa: S311 - jitter, not cryptography


def is_server_error(status: int) -> bool:
    """5xx: the server failed; whatever it did with the request is unknown."""
    return 500 <= status <= 599


def is_retryable_status(status: int) -> bool:
    """Worth repeating an idempotent request for: throttled (429) or a server error (5xx)."""
    return status == 429 or is_server_error(status)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # a plain dict: look the name up without regard to case
        wanted = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == wanted), None)
    return value


def retry_after_seconds(
    headers: Mapping[str, str], default: float, *, now: datetime | None = None
) -> float:
    """``Retry-After`` in seconds (delta-seconds or HTTP-date), else ``default``; never negative."""
    value = _header(headers, "Retry-After")
    if value is None or not value.strip():
        return default
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return default
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds or seconds == float("inf"):  # NaN or infinity
        return default
    return max(0.0, seconds)


def backoff_seconds(
    attempt: int, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None
) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)]; ``attempt`` counts from 0."""
    ceiling = min(cap, base * 2 ** min(max(attempt, 0), 62))
    return (rng or _RANDOM).uniform(0.0, ceiling)
