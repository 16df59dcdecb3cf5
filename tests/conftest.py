"""Shared fixtures: a simulated Defender with a manual clock, and a client wired to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from commands.client import DefenderClient
from tests.helpers.defender import Harness, running_harness


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
