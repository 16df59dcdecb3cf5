"""Shared fixtures: a simulated Defender with a manual clock, a client wired to it, and the
databases the store runs on (SQLite, and PostgreSQL in a throwaway cluster)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from commands.client import DefenderClient
from tests.helpers.defender import Harness, running_harness
from tests.helpers.postgres import PostgresCluster, running_cluster


@pytest.fixture
def harness() -> Iterator[Harness]:
    """The simulator (plain HTTP, ManualClock) with the default client-test scenario."""
    with running_harness() as running:
        yield running


@pytest.fixture
def client(harness: Harness) -> Iterator[DefenderClient]:
    """A DefenderClient on the harness: recorded sleeps, seeded jitter, simulator tokens."""
    with harness.client() as defender:
        yield defender


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One PostgreSQL cluster for the session, started on first use (skips without a server,
    fails under CI)."""
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    with postgres_cluster.database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each engine the store supports: a SQLite file, a PostgreSQL
    database in the session's cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lrbot.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))
