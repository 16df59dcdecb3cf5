"""Pure helpers: retry decisions and OData filter text."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from commands import odata
from commands.retry import (
    backoff_seconds,
    is_retryable_status,
    is_server_error,
    retry_after_seconds,
)

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", 5.0),
        (" 2.5 ", 2.5),
        ("0", 0.0),
        ("-3", 0.0),
        ("Mon, 05 Jan 2026 09:00:30 GMT", 30.0),
        ("Mon, 05 Jan 2026 08:00:00 GMT", 0.0),
        ("soon", 9.0),
        ("", 9.0),
        ("nan", 9.0),
        ("inf", 9.0),
    ],
)
def test_retry_after(value: str, expected: float) -> None:
    assert retry_after_seconds({"Retry-After": value}, 9.0, now=NOW) == expected


def test_retry_after_header_lookup_ignores_case() -> None:
    assert retry_after_seconds({"retry-after": "4"}, 1.0) == 4.0
    assert retry_after_seconds(httpx.Headers({"RETRY-AFTER": "4"}), 1.0) == 4.0
    assert retry_after_seconds({}, 1.5) == 1.5


def test_backoff_is_full_jitter_under_the_cap() -> None:
    rng = random.Random(5)
    for attempt in range(12):
        ceiling = min(30.0, 0.5 * 2**attempt)
        waits = [backoff_seconds(attempt, rng=rng) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling / 2
    assert backoff_seconds(10_000, base=1, cap=3, rng=rng) <= 3


def test_retryable_statuses() -> None:
    assert [s for s in (200, 400, 401, 403, 404, 429, 500, 503, 599) if is_retryable_status(s)] == [
        429,
        500,
        503,
        599,
    ]
    assert not is_server_error(429)


def test_literal_doubles_quotes() -> None:
    assert odata.literal("o'brien") == "'o''brien'"
    assert odata.any_of("id", ["a", "b'"]) == "id eq 'a' or id eq 'b'''"


def test_datetime_literal_is_utc() -> None:
    eastern = timezone(timedelta(hours=-5))
    moment = datetime(2026, 1, 5, 4, 0, 0, 123456, tzinfo=eastern)
    assert odata.datetime_literal(moment) == "2026-01-05T09:00:00.123456Z"
    assert odata.datetime_literal(datetime(2026, 1, 5)) == "2026-01-05T00:00:00.000000Z"


def test_chunks_respect_the_budget_exactly() -> None:
    values = [f"{i:036d}" for i in range(100)]
    for budget in (60, 500, 1999):
        chunks = odata.chunk_any_of("id", values, budget)
        assert all(odata.encoded_length(c) <= budget for c in chunks)
        assert odata.any_of("id", values) == " or ".join(chunks)


def test_a_clause_longer_than_the_budget_gets_its_own_chunk() -> None:
    assert odata.chunk_any_of("id", ["x" * 50, "y"], 20) == [f"id eq '{'x' * 50}'", "id eq 'y'"]
    assert odata.chunk_any_of("id", [], 100) == []
