"""What the fake Slack server remembers: one small dataclass per kind of record.

Records handed to tests are deep copies taken under the server's lock, so a test can keep
and inspect them while the bot goes on calling the server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Call",
    "Ephemeral",
    "Failure",
    "Message",
    "OpenedView",
    "ResponsePost",
    "SlackError",
    "UploadedFile",
]

JsonDict = dict[str, Any]


class SlackError(Exception):
    """Raised by a fake method to answer ``{"ok": false, "error": <error>}``."""

    def __init__(self, error: str, status: int = 200) -> None:
        super().__init__(error)
        self.error = error
        self.status = status


@dataclass
class Call:
    """One HTTP request the fake received (Web API method, upload URL or response_url)."""

    method: str
    params: JsonDict
    headers: dict[str, str]
    token: str | None
    time: float
    body: bytes
    status: int = 200
    response: JsonDict | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.response and self.response.get("ok"))

    @property
    def error(self) -> str | None:
        return None if self.response is None else self.response.get("error")


@dataclass
class Message:
    """A message as the channel shows it now; ``history`` keeps the versions before each edit."""

    channel: str
    ts: str
    text: str
    blocks: list[JsonDict]
    user: str
    bot_id: str
    thread_ts: str | None = None
    reply_broadcast: bool = False
    metadata: JsonDict | None = None
    files: list[JsonDict] = field(default_factory=list)
    history: list[tuple[str, list[JsonDict]]] = field(default_factory=list)

    @property
    def edited(self) -> bool:
        return bool(self.history)

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    def payload(self) -> JsonDict:
        """The message object as Slack returns it (API answers, interaction payloads)."""
        out: JsonDict = {
            "type": "message",
            "user": self.user,
            "bot_id": self.bot_id,
            "text": self.text,
            "blocks": self.blocks,
            "ts": self.ts,
        }
        if self.thread_ts is not None:
            out["thread_ts"] = self.thread_ts
        if self.files:
            out["files"] = self.files
        if self.history:
            out["edited"] = {"user": self.user, "ts": self.ts}
        return out


@dataclass
class Ephemeral:
    """A ``chat.postEphemeral``: only ``user`` saw it, and it cannot be edited through the API."""

    channel: str
    user: str
    text: str
    blocks: list[JsonDict]
    message_ts: str
    thread_ts: str | None = None


@dataclass
class OpenedView:
    """A modal opened by ``views.open`` or ``views.push``; ``view`` is its latest state."""

    id: str
    method: str
    trigger_id: str
    view: JsonDict
    history: list[JsonDict] = field(default_factory=list)

    @property
    def hash(self) -> str:
        return str(self.view["hash"])

    @property
    def callback_id(self) -> str:
        return str(self.view.get("callback_id", ""))

    @property
    def updates(self) -> int:
        return len(self.history)


@dataclass
class UploadedFile:
    """A file: ``files.getUploadURLExternal``, bytes to the upload URL, then completed."""

    id: str
    name: str
    length: int
    data: bytes | None = None
    title: str | None = None
    channel_id: str | None = None
    thread_ts: str | None = None
    initial_comment: str | None = None
    completed: bool = False

    def payload(self) -> JsonDict:
        return {
            "id": self.id,
            "name": self.name,
            "title": self.title or self.name,
            "size": len(self.data or b""),
            "mimetype": "text/plain",
            "url_private": f"https://files.slack.invalid/files-pri/T0001-{self.id}/{self.name}",
            "permalink": f"https://fake.slack.invalid/files/UBOT/{self.id}/{self.name}",
        }


@dataclass
class ResponsePost:
    """A POST to a ``response_url`` (what Bolt's ``respond()`` sends)."""

    url_id: str
    body: JsonDict
    time: float


@dataclass
class Failure:
    """An injected failure: the next ``times`` calls of ``method`` get this answer."""

    method: str
    error: str
    status: int
    retry_after: int | None
    times: int | None
