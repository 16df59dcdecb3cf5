"""Slack user-group membership, cached (``usergroups.users.list`` is a tier-2 method)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

__all__ = ["Directory"]

log = logging.getLogger(__name__)


class Directory:
    """Members of Slack user groups, each list kept for ``ttl_seconds``."""

    def __init__(
        self,
        client: WebClient,
        ttl_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._names: dict[str, tuple[float, str]] = {}

    def members(self, group_id: str) -> frozenset[str]:
        """The group's members; on a Slack error the last known list, else nobody."""
        now = self._monotonic()
        with self._lock:
            cached = self._cache.get(group_id)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        try:
            response = self._client.usergroups_users_list(usergroup=group_id)
            users = frozenset(str(u) for u in response.get("users") or [])
        except SlackApiError as exc:
            # Failing closed: an unreadable group grants nothing, but a known list stays usable.
            log.warning("could not read user group %s: %s", group_id, exc.response.get("error"))
            return cached[1] if cached is not None else frozenset()
        with self._lock:
            self._cache[group_id] = (now, users)
        return users

    def display_name(self, user_id: str) -> str:
        """``Real Name (U123)`` for Defender's action center; the bare id if Slack will not say."""
        now = self._monotonic()
        with self._lock:
            cached = self._names.get(user_id)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        try:
            user = self._client.users_info(user=user_id).get("user") or {}
        except SlackApiError as exc:
            log.warning("could not read user %s: %s", user_id, exc.response.get("error"))
            return user_id
        except OSError as exc:  # timed out or unreachable: the id names them all the same
            log.warning("could not read user %s: %s", user_id, exc)
            return user_id
        profile = user.get("profile") or {}
        name = str(profile.get("real_name") or user.get("real_name") or user.get("name") or "")
        label = f"{name} ({user_id})" if name else user_id
        with self._lock:
            self._names[user_id] = (now, label)
        return label
