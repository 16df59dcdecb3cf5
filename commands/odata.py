"""OData ``$filter`` text for Defender queries, and chunking filters so URLs stay short."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import quote_plus

__all__ = [
    "MAX_URL_LENGTH",
    "any_of",
    "chunk_any_of",
    "datetime_literal",
    "encoded_length",
    "literal",
]

# Gateways and proxies commonly refuse URLs past 2,048 characters; stay clearly below.
MAX_URL_LENGTH = 2000
_OR = " or "


def literal(value: str) -> str:
    """An OData string literal: quoted, with ``'`` doubled."""
    return "'" + value.replace("'", "''") + "'"


def datetime_literal(value: datetime) -> str:
    """An OData date-time literal in UTC (a naive datetime is taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def any_of(field: str, values: Iterable[str]) -> str:
    """``field eq 'a' or field eq 'b' …``."""
    return _OR.join(f"{field} eq {literal(v)}" for v in values)


def encoded_length(text: str) -> int:
    """Length of ``text`` once encoded as a query parameter value (as httpx encodes params)."""
    return len(quote_plus(text))


def chunk_any_of(field: str, values: Iterable[str], budget: int) -> list[str]:
    """``any_of`` filters over ``values``, each at most ``budget`` encoded characters.

    A single clause longer than the budget still gets a filter of its own.
    """
    separator = encoded_length(_OR)
    filters: list[str] = []
    current: list[str] = []
    used = 0
    for value in values:
        size = encoded_length(f"{field} eq {literal(value)}")
        extra = size + (separator if current else 0)
        if current and used + extra > budget:
            filters.append(any_of(field, current))
            current, used, extra = [], 0, size
        current.append(value)
        used += extra
    if current:
        filters.append(any_of(field, current))
    return filters
