"""The simulator's ``$filter`` parser and its paging, without HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from commands.simulator.odata import ODataError, compile_filter
from commands.simulator.query import ListQuery, next_link, page, parse_list_query

FIELDS: dict[str, type] = {
    "id": str,
    "status": str,
    "machineId": str,
    "created": datetime,
    "count": int,
    "done": bool,
}

RECORD = {
    "id": "a1",
    "status": "Pending",
    "machineId": "m1",
    "created": datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
    "count": 3,
    "done": False,
}


def matches(text: str, record: dict[str, object] | None = None) -> bool:
    return compile_filter(text, FIELDS).evaluate(record or RECORD)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("id eq 'a1'", True),
        ("id eq 'A1'", True),  # strings compare without regard to case
        ("id ne 'a1'", False),
        ("status eq 'Pending' and machineId eq 'm1'", True),
        ("status eq 'Pending' and machineId eq 'm2'", False),
        ("id eq 'x' or id eq 'y' or id eq 'a1'", True),
        ("id in ('x', 'a1')", True),
        ("id in ('x','y')", False),
        ("not (status eq 'Succeeded')", True),
        ("machineId eq 'm1' and (status eq 'Pending' or status eq 'InProgress')", True),
        ("machineId eq 'm2' and (status eq 'Pending' or status eq 'InProgress')", False),
        # 'and' binds tighter than 'or'
        ("id eq 'a1' or id eq 'x' and status eq 'Done'", True),
        ("(id eq 'a1' or id eq 'x') and status eq 'Done'", False),
        ("created ge 2026-01-01T00:00:00Z", True),
        ("created ge '2026-01-01T00:00:00Z'", True),
        ("created gt 2026-01-05T09:00:00Z", False),
        ("created lt 2026-01-05T09:00:00.5Z", True),
        ("created le 2026-01-05T09:00:00+00:00", True),
        ("count gt 2 and count lt 4", True),
        ("done eq false", True),
        ("startswith(machineId,'M')", True),
        ("startswith(machineId, 'x') eq false", True),
        ("endswith(id,'1') eq true", True),
        ("contains(status,'end')", True),
        ("status eq null", False),
        ("status ne null", True),
    ],
)
def test_filter_semantics(text: str, expected: bool) -> None:
    assert matches(text) is expected


def test_quotes_are_escaped_by_doubling() -> None:
    record = {**RECORD, "id": "o'brien"}
    assert matches("id eq 'o''brien'", record)
    assert not matches("id eq 'o''brie'", record)


def test_null_field_matches_only_null() -> None:
    record = {**RECORD, "status": None}
    assert matches("status eq null", record)
    assert not matches("status eq 'Pending'", record)
    assert not matches("status gt 'A'", record)


def test_dozens_of_ids() -> None:
    ids = [f"{n:08x}" for n in range(60)]
    text = " or ".join(f"id eq '{i}'" for i in ids)
    expr = compile_filter(text, FIELDS)
    assert expr.evaluate({**RECORD, "id": ids[-1]})
    assert not expr.evaluate({**RECORD, "id": "zz"})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("name eq 'x'", "unknown property 'name'"),
        ("id eq x", "quoted string"),
        ("id eq 'x", "unterminated string"),
        ("id eq 'x' garbage", "expected 'and', 'or' or the end"),
        ("id like 'x'", "expected an operator"),
        ("id eq 'x' and", "expected a property name"),
        ("(id eq 'x'", "expected ')'"),
        ("id in ('x' 'y')", "expected ')'"),
        ("created ge 'yesterday'", "not a date and time"),
        ("count eq 'three'", "a number"),
        ("startswith(count,'1')", "text property"),
        ("id eq 'x' ; drop", "';'"),
        ("Id eq 'x'", "unknown property 'Id'"),
        ("id EQ 'x'", "expected an operator"),
        ("startswith(id,'a') eq maybe", "true or false"),
    ],
)
def test_refusals(text: str, problem: str) -> None:
    with pytest.raises(ODataError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        compile_filter(text, FIELDS)


def test_list_query_options() -> None:
    assert parse_list_query({"$top": "5", "$skip": "10", "$filter": "id eq 'x'"}) == ListQuery(
        "id eq 'x'", 5, 10
    )
    assert parse_list_query({"other": "ignored"}) == ListQuery()
    for bad in ({"$top": "-1"}, {"$top": "10001"}, {"$skip": "x"}, {"$orderby": "id"}):
        with pytest.raises(ODataError):
            parse_list_query(bad)


def test_paging_walks_every_item_once() -> None:
    items = list(range(12))
    seen: list[int] = []
    query: ListQuery | None = ListQuery()
    pages = 0
    while query is not None:
        chunk, query = page(items, query, 5)
        seen += chunk
        pages += 1
    assert seen == items
    assert pages == 3


def test_paging_honours_top_and_skip() -> None:
    items = list(range(12))
    chunk, following = page(items, ListQuery(top=7, skip=2), 5)
    assert chunk == [2, 3, 4, 5, 6]
    assert following == ListQuery(top=2, skip=7)
    assert following is not None
    chunk, following = page(items, following, 5)
    assert chunk == [7, 8]
    assert following is None
    assert page(items, ListQuery(top=0), 5) == ([], None)
    assert page(items, ListQuery(skip=50), 5) == ([], None)


def test_next_link_is_absolute_and_keeps_the_filter() -> None:
    link = next_link("https://h:1", "/api/machineactions", ListQuery("status eq 'Pending'", 9, 50))
    assert link == "https://h:1/api/machineactions?$filter=status%20eq%20'Pending'&$top=9&$skip=50"
