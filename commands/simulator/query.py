"""Collection query options (``$filter``, ``$top``, ``$skip``) and paging by ``@odata.nextLink``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import quote

from commands.simulator.errors import SimError
from commands.simulator.odata import ODataError, compile_filter

__all__ = ["MAX_TOP", "ListQuery", "Page", "next_link", "page", "parse_list_query", "select"]

MAX_TOP = 10_000
_SUPPORTED = ("$filter", "$top", "$skip")
T = TypeVar("T")


@dataclass(frozen=True)
class ListQuery:
    filter: str | None = None
    top: int | None = None
    skip: int = 0


def _integer(query: Mapping[str, str], name: str, highest: int) -> int | None:
    text = query.get(name)
    if text is None:
        return None
    if not text.isdigit() or int(text) > highest:
        raise ODataError(f"{name} must be a whole number from 0 to {highest}, not {text!r}")
    return int(text)


def parse_list_query(query: Mapping[str, str]) -> ListQuery:
    """The supported options; any other ``$`` option is refused."""
    for name in query:
        if name.startswith("$") and name not in _SUPPORTED:
            raise ODataError(f"the query option {name} is not supported")
    return ListQuery(
        filter=query.get("$filter"),
        top=_integer(query, "$top", MAX_TOP),
        skip=_integer(query, "$skip", 2**31) or 0,
    )


def page(items: Sequence[T], query: ListQuery, page_size: int) -> tuple[list[T], ListQuery | None]:
    """One page of ``items`` (already filtered) and the query for the next page, if any."""
    wanted = len(items) - query.skip if query.top is None else query.top
    size = max(0, min(wanted, page_size))
    chosen = list(items[query.skip : query.skip + size])
    remaining = wanted - size
    if remaining <= 0 or query.skip + size >= len(items):
        return chosen, None
    top = None if query.top is None else remaining
    return chosen, replace(query, skip=query.skip + size, top=top)


def next_link(base_url: str, path: str, query: ListQuery) -> str:
    """An absolute URL for ``query`` on ``path``, as Defender writes ``@odata.nextLink``."""
    parts: list[str] = []
    if query.filter is not None:
        parts.append("$filter=" + quote(query.filter, safe="'(),:"))
    if query.top is not None:
        parts.append(f"$top={query.top}")
    parts.append(f"$skip={query.skip}")
    return f"{base_url}{path}?{'&'.join(parts)}"


@dataclass(frozen=True)
class Page:
    """One page of a collection and the query for the next one (None on the last page)."""

    items: list[dict[str, Any]]
    next_query: ListQuery | None = None


def select(
    pairs: Sequence[tuple[dict[str, Any], Mapping[str, Any]]],
    query: Mapping[str, str],
    fields: Mapping[str, type],
    page_size: int,
) -> Page:
    """Filter ``pairs`` (each item with its filterable properties), then page; 400 ODataError."""
    try:
        options = parse_list_query(query)
        if options.filter is not None:
            expr = compile_filter(options.filter, fields)
            pairs = [pair for pair in pairs if expr.evaluate(pair[1])]
    except ODataError as problem:
        raise SimError(400, "ODataError", str(problem)) from None
    chosen, following = page([item for item, _ in pairs], options, page_size)
    return Page(chosen, following)
