"""The App Home tab: published afresh each time an analyst opens it."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import views
from bot.links import WorkspaceLinks
from bot.lookup import Lookup

__all__ = ["register"]

log = logging.getLogger(__name__)


def register(app: App, lookup: Lookup, links: WorkspaceLinks) -> None:
    @app.event("app_home_opened")
    def publish_home(event: dict[str, Any], client: WebClient) -> None:
        # The Messages tab opens this event too: only the Home tab shows the lists.
        if event.get("tab", "home") != "home":
            return
        user = event.get("user")
        if not isinstance(user, str) or not user:
            return
        view = views.home_view(
            lookup.awaiting(user),
            lookup.of_requester(user),
            lookup.running(),
            links.workspace_url(),
            lookup.clock(),
        )
        try:
            client.views_publish(user_id=user, view=view)
        except SlackApiError as exc:
            log.warning("could not publish the home tab of %s: %s", user, exc.response.get("error"))
