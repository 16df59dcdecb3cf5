"""Fixtures for the end-to-end tests: the leak guard on every test, and ``no_errors_logged``."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.helpers.leaks import LeakGuard, guarding


@pytest.fixture(autouse=True)
def leak_guard() -> Iterator[LeakGuard]:
    """Every e2e test: no secret, token or result link in any log record (DEBUG and up),
    anything Slack got, any file, database row or process output (``tests.helpers.leaks``)."""
    with guarding() as guard:
        yield guard
    guard.check()  # after the guard stopped listening: the scan's own queries are not logged


@pytest.fixture
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail the test if anything logged an error: a listener that failed answered nobody."""
    yield
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    assert not errors, [f"{r.name}: {r.getMessage()}" for r in errors]
