"""The leak guard on every crash test (``tests.helpers.leaks``): the bot processes run at
DEBUG, and their output, Slack, the database and the work directory are scanned."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.leaks import LeakGuard, guarding


@pytest.fixture(autouse=True)
def leak_guard() -> Iterator[LeakGuard]:
    with guarding() as guard:
        yield guard
    guard.check()  # after the guard stopped listening: the scan's own queries are not logged
