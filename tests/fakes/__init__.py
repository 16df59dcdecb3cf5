"""Test doubles for Slack: a fake Web API server and signed-request senders.

``FakeSlack`` (``slack_api``) stands in for ``https://slack.com/api/``;
``SlackRequests`` (``slack_requests``) plays Slack calling the bot's ``/slack/events``.
"""

from tests.fakes.slack_api import BOT_USER_ID, TEAM_ID, FakeSlack, fake_slack
from tests.fakes.slack_requests import (
    STALE,
    TAMPERED,
    WRONG_SECRET,
    SignedRequest,
    Signing,
    SlackRequests,
    state_values,
)

__all__ = [
    "BOT_USER_ID",
    "STALE",
    "TAMPERED",
    "TEAM_ID",
    "WRONG_SECRET",
    "FakeSlack",
    "SignedRequest",
    "Signing",
    "SlackRequests",
    "fake_slack",
    "state_values",
]
