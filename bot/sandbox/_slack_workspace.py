"""The fake workspace's state and its Web API methods, free of HTTP.

Each ``_m_<method>`` answers one Slack method from already-parsed params, with the shapes
and errors Slack documents. The server calls :meth:`Workspace.call` under its lock.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bot.sandbox._slack_records import (
    Ephemeral,
    JsonDict,
    Message,
    OpenedView,
    SlackError,
    UploadedFile,
)

__all__ = ["BOT_ID", "BOT_USER_ID", "TEAM_ID", "Workspace"]

TEAM_ID = "T0001"
BOT_USER_ID = "UBOT"
BOT_ID = "B0001"
APP_ID = "A0001"
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_VIEW_TITLE = 24
MAX_PRIVATE_METADATA = 3000
_TS_BASE_MICROS = 1_700_000_000_000_000


class Workspace:
    """Channels, messages, views, users and files of one fake Slack workspace."""

    def __init__(self, *, root_url: str, strict_triggers: bool = True) -> None:
        self.root_url = root_url
        self.strict_triggers = strict_triggers
        self.usergroups: dict[str, list[str]] = {}
        self.users: dict[str, JsonDict] = {}
        self.channels: dict[str, JsonDict] = {}
        self.messages: dict[str, list[Message]] = {}
        self.ephemerals: list[Ephemeral] = []
        self.views: dict[str, OpenedView] = {}
        self.files: dict[str, UploadedFile] = {}
        self.used_triggers: set[str] = set()
        self.homes: dict[str, list[JsonDict]] = {}  # each user's published home views
        self.ims: dict[str, str] = {}  # user -> the bot's DM channel with them
        self._counter = 0
        self._methods: dict[str, Callable[[JsonDict], JsonDict]] = {
            "api.test": lambda p: {"args": p},
            "auth.test": self._m_auth_test,
            "chat.postMessage": self._m_chat_post_message,
            "chat.update": self._m_chat_update,
            "chat.postEphemeral": self._m_chat_post_ephemeral,
            "views.open": self._m_views_open,
            "views.push": self._m_views_push,
            "views.update": self._m_views_update,
            "usergroups.list": self._m_usergroups_list,
            "usergroups.users.list": self._m_usergroups_users_list,
            "users.info": self._m_users_info,
            "conversations.info": self._m_conversations_info,
            "conversations.open": self._m_conversations_open,
            "views.publish": self._m_views_publish,
            "files.getUploadURLExternal": self._m_files_get_upload_url,
            "files.completeUploadExternal": self._m_files_complete_upload,
        }

    # -- dispatch and ids -------------------------------------------------------------

    def knows(self, method: str) -> bool:
        return method in self._methods

    def call(self, method: str, params: JsonDict) -> JsonDict:
        """Answer one method: the JSON body with ``ok`` set, or raise :class:`SlackError`."""
        handler = self._methods.get(method)
        if handler is None:
            raise SlackError("unknown_method")
        return {"ok": True, **handler(params)}

    def _next(self) -> int:
        self._counter += 1
        return self._counter

    def next_ts(self) -> str:
        """A message ts like Slack's: unique, increasing, ``seconds.micros`` with 6 digits."""
        micros = _TS_BASE_MICROS + 100 * self._next()
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def next_id(self, prefix: str) -> str:
        return f"{prefix}0{self._next():08d}"

    # -- lookups used by the server and by FakeSlack ----------------------------------

    def find_message(self, channel: str, ts: str) -> Message:
        for msg in self.messages.get(channel, []):
            if msg.ts == ts:
                return msg
        raise SlackError("message_not_found")

    def record_upload(self, file_id: str, data: bytes) -> None:
        upload = self.files.get(file_id)
        if upload is None:
            raise SlackError("file_not_found", status=404)
        upload.data = data

    # -- auth ---------------------------------------------------------------------------

    def _m_auth_test(self, p: JsonDict) -> JsonDict:
        return {
            "url": "https://fake-workspace.slack.com/",
            "team": "Fake Workspace",
            "user": "liveresponse",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    # -- chat -----------------------------------------------------------------------------

    def _m_chat_post_message(self, p: JsonDict) -> JsonDict:
        channel = _require_channel(p)
        text, blocks = _message_content(p)
        msg = Message(
            channel=channel,
            ts=self.next_ts(),
            text=text,
            blocks=blocks,
            user=BOT_USER_ID,
            bot_id=BOT_ID,
            thread_ts=p.get("thread_ts") or None,
            reply_broadcast=_truthy(p.get("reply_broadcast")),
            metadata=p.get("metadata"),
        )
        self.messages.setdefault(channel, []).append(msg)
        return {"channel": channel, "ts": msg.ts, "message": msg.payload()}

    def _m_chat_update(self, p: JsonDict) -> JsonDict:
        channel = _require_channel(p)
        msg = self.find_message(channel, str(p.get("ts", "")))
        has_text, has_blocks = "text" in p, "blocks" in p
        if not has_text and not has_blocks and "attachments" not in p:
            raise SlackError("no_text")
        blocks = _check_blocks(p["blocks"], MAX_MESSAGE_BLOCKS) if has_blocks else msg.blocks
        msg.history.append((msg.text, copy.deepcopy(msg.blocks)))
        # Slack keeps the old blocks when `blocks` is omitted; an empty list removes them.
        msg.text = str(p["text"]) if has_text else msg.text
        msg.blocks = blocks
        return {"channel": channel, "ts": msg.ts, "text": msg.text, "message": msg.payload()}

    def _m_chat_post_ephemeral(self, p: JsonDict) -> JsonDict:
        channel = _require_channel(p)
        user = p.get("user")
        if not user:
            raise SlackError("user_not_found")
        text, blocks = _message_content(p)
        eph = Ephemeral(channel, str(user), text, blocks, self.next_ts(), p.get("thread_ts"))
        self.ephemerals.append(eph)
        return {"message_ts": eph.message_ts}

    # -- views ----------------------------------------------------------------------------

    def _use_trigger(self, p: JsonDict) -> str:
        trigger = p.get("trigger_id") or p.get("interactivity_pointer")
        if not trigger:
            raise SlackError("invalid_arguments")
        if self.strict_triggers and trigger in self.used_triggers:
            raise SlackError("expired_trigger_id")
        self.used_triggers.add(str(trigger))
        return str(trigger)

    def _new_view(self, method: str, p: JsonDict, previous: str | None) -> JsonDict:
        trigger = self._use_trigger(p)
        view = _check_view(p.get("view"))
        view_id = self.next_id("V")
        root = self.views[previous].view["root_view_id"] if previous else view_id
        full = self._render_view(view_id, view, previous_view_id=previous, root_view_id=root)
        self.views[view_id] = OpenedView(view_id, method, trigger, full)
        return {"view": copy.deepcopy(full)}

    def _render_view(self, view_id: str, view: JsonDict, **extra: Any) -> JsonDict:
        return {
            "id": view_id,
            "team_id": TEAM_ID,
            "type": view.get("type", "modal"),
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"1700000000.{self._next():08x}",
            "title": view.get("title"),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "app_id": APP_ID,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": TEAM_ID,
            "bot_id": BOT_ID,
            **extra,
        }

    def _m_views_open(self, p: JsonDict) -> JsonDict:
        return self._new_view("views.open", p, previous=None)

    def _m_views_push(self, p: JsonDict) -> JsonDict:
        stack = [v for v in self.views.values() if v.method in ("views.open", "views.push")]
        previous = stack[-1].id if stack else None
        return self._new_view("views.push", p, previous=previous)

    def _m_views_update(self, p: JsonDict) -> JsonDict:
        opened = self._find_view(p)
        if p.get("hash") and p["hash"] != opened.hash:
            raise SlackError("hash_conflict")
        view = _check_view(p.get("view"))
        old = opened.view
        opened.history.append(old)
        opened.view = self._render_view(
            opened.id,
            view,
            previous_view_id=old.get("previous_view_id"),
            root_view_id=old["root_view_id"],
        )
        return {"view": copy.deepcopy(opened.view)}

    def _m_views_publish(self, p: JsonDict) -> JsonDict:
        user = str(p.get("user_id") or "")
        if user not in self.users:
            raise SlackError("user_not_found")
        view = _check_view(p.get("view"))
        if view["type"] != "home":
            raise SlackError("invalid_arguments")
        published = {**view, "id": self.next_id("V"), "team_id": TEAM_ID}
        self.homes.setdefault(user, []).append(published)
        return {"view": copy.deepcopy(published)}

    def _find_view(self, p: JsonDict) -> OpenedView:
        if p.get("view_id"):
            if p["view_id"] in self.views:
                return self.views[p["view_id"]]
        elif p.get("external_id"):
            for opened in self.views.values():
                if opened.view.get("external_id") == p["external_id"]:
                    return opened
        else:
            raise SlackError("invalid_arguments")
        raise SlackError("not_found")

    # -- directory ------------------------------------------------------------------------

    def _m_usergroups_list(self, p: JsonDict) -> JsonDict:
        groups = [
            {"id": group, "team_id": TEAM_ID, "handle": group.lower(), "user_count": len(users)}
            for group, users in self.usergroups.items()
        ]
        return {"usergroups": groups}

    def _m_usergroups_users_list(self, p: JsonDict) -> JsonDict:
        group = str(p.get("usergroup", ""))
        if group not in self.usergroups:
            raise SlackError("no_such_subteam")
        return {"users": list(self.usergroups[group])}

    def _m_users_info(self, p: JsonDict) -> JsonDict:
        user = self.users.get(str(p.get("user", "")))
        if user is None:
            raise SlackError("user_not_found")
        return {"user": copy.deepcopy(user)}

    def _m_conversations_info(self, p: JsonDict) -> JsonDict:
        channel = self.channels.get(str(p.get("channel", "")))
        if channel is None:
            raise SlackError("channel_not_found")
        return {"channel": copy.deepcopy(channel)}

    def _m_conversations_open(self, p: JsonDict) -> JsonDict:
        # One user only: the bot's DM with them (a group DM is nothing the bot opens).
        users = [u for u in str(p.get("users") or "").split(",") if u]
        if not users:
            raise SlackError("users_list_not_supplied")
        if len(users) > 1:
            raise SlackError("invalid_arguments")  # a group DM: not what the bot opens
        if users[0] not in self.users:
            raise SlackError("user_not_found")
        already = users[0] in self.ims
        channel = self.ims.setdefault(users[0], self.next_id("D"))
        return {
            "channel": {"id": channel, "is_im": True, "user": users[0]},
            **({"already_open": True} if already else {}),
        }

    # -- files ------------------------------------------------------------------------------

    def _m_files_get_upload_url(self, p: JsonDict) -> JsonDict:
        if not p.get("filename") or "length" not in p:
            raise SlackError("invalid_arguments")
        file_id = self.next_id("F")
        self.files[file_id] = UploadedFile(file_id, str(p["filename"]), int(p["length"]))
        return {"upload_url": f"{self.root_url}upload/v1/{file_id}", "file_id": file_id}

    def _m_files_complete_upload(self, p: JsonDict) -> JsonDict:
        entries = p.get("files")
        if not isinstance(entries, list) or not entries:
            raise SlackError("invalid_arguments")
        uploads = [self._completed(entry, p) for entry in entries]
        channel = p.get("channel_id")
        if channel:
            self._share(str(channel), uploads, p)
        return {"files": [u.payload() for u in uploads]}

    def _completed(self, entry: JsonDict, p: JsonDict) -> UploadedFile:
        upload = self.files.get(str(entry.get("id", "")))
        if upload is None or upload.data is None:
            raise SlackError("file_not_found")
        upload.title = entry.get("title") or upload.name
        upload.channel_id = p.get("channel_id")
        upload.thread_ts = p.get("thread_ts")
        upload.initial_comment = p.get("initial_comment")
        upload.completed = True
        return upload

    def _share(self, channel: str, uploads: Iterable[UploadedFile], p: JsonDict) -> None:
        """Slack shares completed files as a message from the bot, in the thread if given."""
        msg = Message(
            channel=channel,
            ts=self.next_ts(),
            text=str(p.get("initial_comment") or ""),
            blocks=[],
            user=BOT_USER_ID,
            bot_id=BOT_ID,
            thread_ts=p.get("thread_ts") or None,
            files=[u.payload() for u in uploads],
        )
        self.messages.setdefault(channel, []).append(msg)


# -- validation helpers ---------------------------------------------------------------


def _truthy(value: object) -> bool:
    return value in (True, 1, "1", "true", "True")


def _require_channel(p: Mapping[str, Any]) -> str:
    channel = p.get("channel")
    if not channel:
        raise SlackError("channel_not_found")
    return str(channel)


def _message_content(p: Mapping[str, Any]) -> tuple[str, list[JsonDict]]:
    blocks = _check_blocks(p.get("blocks", []), MAX_MESSAGE_BLOCKS)
    text = p.get("text")
    if not text and not blocks and not p.get("attachments"):
        raise SlackError("no_text")
    return str(text or ""), blocks


def _check_blocks(blocks: object, limit: int) -> list[JsonDict]:
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    if not isinstance(blocks, list) or len(blocks) > limit:
        raise SlackError("invalid_blocks")
    if not all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks):
        raise SlackError("invalid_blocks")
    return copy.deepcopy(blocks)


def _check_view(view: object) -> JsonDict:
    if isinstance(view, str):
        view = json.loads(view)
    if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
        raise SlackError("invalid_arguments")
    title = (view.get("title") or {}).get("text", "")
    if view["type"] == "modal" and not 0 < len(title) <= MAX_VIEW_TITLE:
        raise SlackError("invalid_arguments")
    if len(view.get("private_metadata", "")) > MAX_PRIVATE_METADATA:
        raise SlackError("invalid_arguments")
    try:
        _check_blocks(view.get("blocks", []), MAX_VIEW_BLOCKS)
    except SlackError:
        raise SlackError("invalid_arguments") from None
    return copy.deepcopy(view)
