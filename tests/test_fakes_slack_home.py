"""The fake Slack's App Home and DM methods: ``views.publish`` and ``conversations.open``
answer as Slack does, and the events helper signs what Bolt accepts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slack_sdk.errors import SlackApiError

from bot.sandbox.slack_api import FakeSlack

USER = "U0REQ0001"
HOME = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]}


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        fake.set_user(USER, real_name="Rae Requester")
        yield fake


def test_views_publish_keeps_each_users_home(fake_slack: FakeSlack) -> None:
    client = fake_slack.client()
    assert fake_slack.home(USER) is None
    client.views_publish(user_id=USER, view=HOME)
    client.views_publish(user_id=USER, view={**HOME, "blocks": []})
    published = fake_slack.home(USER)
    assert published is not None and published["blocks"] == []
    assert fake_slack.home_count(USER) == 2
    assert fake_slack.views() == []  # a home view is no opened modal


def test_views_publish_refuses_what_slack_refuses(fake_slack: FakeSlack) -> None:
    client = fake_slack.client()
    too_many = {"type": "home", "blocks": [{"type": "divider"}] * 101}
    for kwargs, error in [
        ({"user_id": "U0NOBODY1", "view": HOME}, "user_not_found"),
        ({"user_id": USER, "view": too_many}, "invalid_arguments"),
        ({"user_id": USER, "view": {**HOME, "type": "modal"}}, "invalid_arguments"),
    ]:
        with pytest.raises(SlackApiError) as raised:
            client.views_publish(**kwargs)
        assert raised.value.response["error"] == error


def test_conversations_open_gives_one_dm_channel_per_user(fake_slack: FakeSlack) -> None:
    client = fake_slack.client()
    first = client.conversations_open(users=USER)["channel"]["id"]
    again = client.conversations_open(users=USER)
    assert again["channel"]["id"] == first and again["already_open"] is True
    client.chat_postMessage(channel=first, text="approved")
    assert [m.text for m in fake_slack.direct_messages(USER)] == ["approved"]
    with pytest.raises(SlackApiError) as raised:
        client.conversations_open(users="U0NOBODY1")
    assert raised.value.response["error"] == "user_not_found"
