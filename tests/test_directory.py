"""The directory's fallbacks: a name Slack will not give is the bare user id."""

from __future__ import annotations

import logging
import socket

import pytest
from slack_sdk import WebClient

from bot.directory import Directory


def test_a_name_slack_cannot_be_reached_for_is_the_bare_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as closed:  # a port nobody listens on: the connection is refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    client = WebClient(token="xoxb-test", base_url=f"http://127.0.0.1:{port}/api/", timeout=2)
    client.retry_handlers.clear()  # no second try: the first refusal is the point
    with caplog.at_level(logging.WARNING, logger="bot.directory"):
        assert Directory(client, ttl_seconds=60).display_name("U0REQ0001") == "U0REQ0001"
    assert "could not read user U0REQ0001" in caplog.text
