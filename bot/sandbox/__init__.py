"""A stand-in Slack for the offline demo and the tests: a fake Web API server and signed requests.

``FakeSlack`` (``slack_api``) stands in for ``https://slack.com/api/``;
``SlackRequests`` (``slack_requests``) plays Slack calling the bot's ``/slack/events``.
"""

from bot.sandbox.slack_api import BOT_USER_ID, TEAM_ID, FakeSlack
from bot.sandbox.slack_requests import (
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
    "state_values",
]
