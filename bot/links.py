"""Links to a request's thread: ``https://<team>.slack.com/archives/<channel>/p<ts>``.

Built from the workspace URL (``auth.test``, asked once and kept) rather than one
``chat.getPermalink`` call per request: the App Home lists up to 90 requests and must be
published within a moment of being opened. Slack resolves this form for any message.
"""

from __future__ import annotations

import logging
import re
import threading

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

__all__ = ["WorkspaceLinks", "thread_url"]

log = logging.getLogger(__name__)

_CHANNEL = re.compile(r"[CGD][A-Z0-9]{2,40}")
_TS = re.compile(r"\d{1,12}\.\d{6}")
_WORKSPACE = re.compile(r"https://[a-z0-9.-]+/?")


def thread_url(workspace_url: str | None, channel: str, ts: str | None) -> str | None:
    """The thread's address, or None when any part is missing or not what Slack makes."""
    if not workspace_url or not ts or not _CHANNEL.fullmatch(channel) or not _TS.fullmatch(ts):
        return None
    return f"{workspace_url.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}"


class WorkspaceLinks:
    """The workspace URL, asked of Slack once (and again after a failure)."""

    def __init__(self, client: WebClient) -> None:
        self._client = client
        self._url: str | None = None
        self._lock = threading.Lock()

    def workspace_url(self) -> str | None:
        with self._lock:
            if self._url is None:
                try:
                    url = str(self._client.auth_test().get("url") or "")
                except (SlackApiError, OSError) as exc:
                    # No links this time: the request ids still say which request is which.
                    log.warning("could not read the workspace URL: %s", exc)
                    return None
                # Slack's test instances (and the fake) answer other hosts: accept https only.
                self._url = url if _WORKSPACE.fullmatch(url) else None
            return self._url
