"""A fake Slack Web API on loopback, for ``WebClient(base_url=fake.base_url)``.

slack_sdk sends every request with urllib, so only a real HTTP server can stand in for
Slack. :class:`FakeSlack` answers the methods the bot uses like Slack does, records every
call, keeps the workspace state (messages, threads, views, files) for tests to read back,
injects failures, and lets tests wait for side effects without sleeping::

    with FakeSlack() as fake:
        client = WebClient(token="xoxb-test", base_url=fake.base_url)
        client.chat_postMessage(channel="C1", text="hi")
        fake.wait_for(lambda: fake.messages("C1"))

Paths: ``/api/<method>`` (Web API), ``/upload/v1/<file_id>`` (the upload URL handed out by
``files.getUploadURLExternal``), ``/response_url/<id>`` (see :meth:`FakeSlack.new_response_url`).

:meth:`FakeSlack.hold` keeps a call's answer back (the call itself takes effect), so that a
test can act, or kill the caller, while the caller waits for it.
"""

from __future__ import annotations

import copy
import json
import select
import threading
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from slack_sdk import WebClient

from bot.sandbox._slack_records import (
    Call,
    Ephemeral,
    Failure,
    JsonDict,
    Message,
    OpenedView,
    ResponsePost,
    SlackError,
    UploadedFile,
)
from bot.sandbox._slack_workspace import BOT_ID, BOT_USER_ID, TEAM_ID, Workspace
from bot.slack_scopes import BOT_SCOPES

__all__ = [
    "BOT_ID",
    "BOT_USER_ID",
    "RESPONSE_URL",
    "TEAM_ID",
    "UPLOAD",
    "FakeSlack",
    "Hold",
]

TEST_TOKEN = "xoxb-test-token"

T = TypeVar("T")

UPLOAD = "upload"
"""Pseudo method name for POSTs to an upload URL (in :meth:`FakeSlack.calls` and ``fail``)."""
RESPONSE_URL = "response_url"
"""Pseudo method name for POSTs to a ``response_url``."""
RESPONSE_URL_USES = 5
_JSON_FIELDS = ("blocks", "attachments", "view", "files", "metadata", "user_auth_blocks")


class FakeSlack:
    """A thread-safe fake Slack server; start it with ``with`` or :meth:`start`."""

    def __init__(
        self, *, token: str | None = None, strict_triggers: bool = True, host: str = "127.0.0.1"
    ) -> None:
        """``token``: if set, other bearer tokens get ``invalid_auth``.

        ``strict_triggers``: a ``trigger_id`` opens one view only (``expired_trigger_id`` after).
        """
        self.token = token
        # What auth.test's x-oauth-scopes header says the token was granted (None: no header).
        self.scopes: tuple[str, ...] | None = BOT_SCOPES
        self._cond = threading.Condition(threading.RLock())
        self._server = _Server((host, 0), _Handler)
        self._server.fake = self  # type: ignore[attr-defined]
        host_, port = self._server.server_address[:2]
        self.root_url = f"http://{host_!s}:{port}/"
        self._ws = Workspace(root_url=self.root_url, strict_triggers=strict_triggers)
        self._calls: list[Call] = []
        self._failures: list[Failure] = []
        self._holds: list[Hold] = []
        self._closing = threading.Event()
        self._responses: dict[str, list[ResponsePost]] = {}
        self._thread: threading.Thread | None = None
        # Called with each recorded call, after the answer is decided (the demo prints them).
        self.observers: list[Callable[[Call], None]] = []

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The Web API base URL, ending with ``/`` as slack_sdk's ``urljoin`` needs."""
        return f"{self.root_url}api/"

    def start(self) -> FakeSlack:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()  # held answers are never sent
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def client(self, token: str = TEST_TOKEN, **kwargs: Any) -> WebClient:
        """A real ``WebClient`` pointed at this server."""
        return WebClient(token=token, base_url=self.base_url, **kwargs)

    # -- configuration ------------------------------------------------------------------

    def set_usergroup(self, group_id: str, users: list[str]) -> None:
        """Members answered by ``usergroups.users.list`` for ``group_id``."""
        with self._cond:
            self._ws.usergroups[group_id] = list(users)

    def set_user(
        self, user_id: str, *, real_name: str, tz: str = "Europe/London", **extra: Any
    ) -> None:
        """A user for ``users.info``; ``extra`` keys override the generated fields."""
        name = extra.pop("name", real_name.lower().replace(" ", "."))
        user = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name,
            "real_name": real_name,
            "deleted": False,
            "is_bot": False,
            "tz": tz,
            "tz_label": tz,
            "tz_offset": 0,
            "profile": {"real_name": real_name, "display_name": name},
        }
        with self._cond:
            self._ws.users[user_id] = {**user, **extra}

    def set_channel(self, channel_id: str, *, name: str, is_private: bool = False) -> None:
        """A channel for ``conversations.info``."""
        channel = {"id": channel_id, "name": name, "is_channel": True, "is_private": is_private}
        with self._cond:
            self._ws.channels[channel_id] = {**channel, "is_member": True}

    def fail(
        self,
        method: str,
        error: str | None = None,
        *,
        status: int | None = None,
        retry_after: int = 1,
        times: int | None = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` (None: all) with an error.

        Defaults to Slack's rate limit: HTTP 429, ``Retry-After: retry_after`` and
        ``{"ok": false, "error": "ratelimited"}``. ``status=500`` gives ``internal_error``;
        ``fail(m, "channel_not_found")`` answers HTTP 200 with that error, as Slack does.
        """
        if status is None:
            status = 429 if error in (None, "ratelimited") else 200
        if error is None:
            error = {429: "ratelimited"}.get(status, "internal_error" if status >= 500 else "")
        if not error:
            raise ValueError("give the error string for a non-429 failure")
        wait = retry_after if status == 429 else None
        with self._cond:
            self._failures.append(Failure(method, error, status, wait, times))

    def clear_failures(self) -> None:
        with self._cond:
            self._failures.clear()

    def hold(self, method: str, *, times: int = 1) -> Hold:
        """Hold the answers to the next ``times`` calls of ``method`` (or ``UPLOAD``).

        Each call takes effect and is recorded as usual (a held ``chat.postMessage`` is in
        the channel); its answer waits for ``release()``, and is never sent if the caller
        hangs up first. ``arrived`` is set once a call is being held.
        """
        held = Hold(method, times)
        with self._cond:
            self._holds.append(held)
        return held

    def new_response_url(self) -> str:
        """A fresh ``response_url`` on this server (5 uses, like Slack's)."""
        with self._cond:
            url_id = self._ws.next_id("R")
            self._responses[url_id] = []
        return f"{self.root_url}response_url/{url_id}"

    # -- recorded state -------------------------------------------------------------------

    def calls(self, method: str | None = None) -> list[Call]:
        """Every request received (failed ones too), in order, optionally for one method."""
        with self._cond:
            return [copy.deepcopy(c) for c in self._calls if method in (None, c.method)]

    def call_count(self, method: str) -> int:
        with self._cond:
            return sum(1 for c in self._calls if c.method == method)

    def messages(self, channel: str, *, include_replies: bool = False) -> list[Message]:
        """The channel's messages in order: top level (and broadcast replies) unless asked."""
        with self._cond:
            msgs = self._ws.messages.get(channel, [])
            keep = [m for m in msgs if include_replies or not m.is_reply or m.reply_broadcast]
            return copy.deepcopy(keep)

    def message(self, channel: str, ts: str) -> Message:
        """One message as it is now; KeyError if there is none."""
        with self._cond:
            try:
                return copy.deepcopy(self._ws.find_message(channel, ts))
            except SlackError:
                raise KeyError(f"no message {ts} in {channel}") from None

    def thread(self, channel: str, ts: str) -> list[Message]:
        """The replies to message ``ts`` in order (parent excluded), with edits applied."""
        with self._cond:
            msgs = self._ws.messages.get(channel, [])
            return copy.deepcopy([m for m in msgs if m.is_reply and m.thread_ts == ts])

    def ephemerals(self, user: str | None = None) -> list[Ephemeral]:
        with self._cond:
            return copy.deepcopy([e for e in self._ws.ephemerals if user in (None, e.user)])

    def views(self) -> list[OpenedView]:
        """Views opened or pushed, in order, each with its latest state and update history."""
        with self._cond:
            return copy.deepcopy(list(self._ws.views.values()))

    def view(self, view_id: str) -> OpenedView:
        with self._cond:
            return copy.deepcopy(self._ws.views[view_id])

    def home(self, user: str) -> JsonDict | None:
        """The home view last published for ``user`` (None if none was)."""
        with self._cond:
            published = self._ws.homes.get(user)
            return copy.deepcopy(published[-1]) if published else None

    def home_count(self, user: str) -> int:
        """How many times a home view was published for ``user``."""
        with self._cond:
            return len(self._ws.homes.get(user, []))

    def direct_messages(self, user: str) -> list[Message]:
        """Messages the bot posted in its DM with ``user``, in order."""
        with self._cond:
            channel = self._ws.ims.get(user)
            return copy.deepcopy(self._ws.messages.get(channel, [])) if channel else []

    def uploads(self) -> list[UploadedFile]:
        """Files whose upload URL was requested, in order (``data`` once the bytes arrived)."""
        with self._cond:
            return copy.deepcopy(list(self._ws.files.values()))

    def response_posts(self, url: str | None = None) -> list[ResponsePost]:
        """Bodies POSTed to response URLs, in order; ``url`` limits to one of them."""
        url_id = None if url is None else url.rstrip("/").rsplit("/", 1)[-1]
        with self._cond:
            posts = [p for key, ps in self._responses.items() if url_id in (None, key) for p in ps]
            return copy.deepcopy(sorted(posts, key=lambda p: p.time))

    # -- waiting ----------------------------------------------------------------------------

    def wait_for(
        self,
        predicate: Callable[[], T],
        timeout: float = 5.0,
        what: str | None = None,
        recheck: float | None = None,
    ) -> T:
        """Re-evaluate ``predicate`` after each request until it returns something truthy.

        Returns that value. A ``LookupError`` from the predicate counts as "not yet".
        ``recheck`` also re-evaluates every so many seconds, for predicates that read state
        outside this fake (the bot's database). At the deadline raises AssertionError naming
        ``what`` and the recent calls.
        """
        deadline = time.monotonic() + timeout
        last: object = None
        with self._cond:
            while True:
                try:
                    last = predicate()
                except LookupError as exc:
                    last = exc
                else:
                    if last:
                        return last
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(self._describe_timeout(predicate, what, timeout, last))
                self._cond.wait(remaining if recheck is None else min(remaining, recheck))

    def wait_for_calls(self, method: str, count: int = 1, timeout: float = 5.0) -> list[Call]:
        """Wait until ``method`` was called at least ``count`` times; return those calls."""
        return self.wait_for(
            lambda: self.calls(method) if self.call_count(method) >= count else [],
            timeout=timeout,
            what=f"{count} call(s) of {method}",
        )

    def _describe_timeout(
        self, predicate: Callable[[], object], what: str | None, timeout: float, last: object
    ) -> str:
        name = what or getattr(predicate, "__qualname__", repr(predicate))
        recent = [f"{c.method} -> {c.status} {c.error or 'ok'}" for c in self._calls[-15:]]
        return (
            f"timed out after {timeout:.1f}s waiting for {name}; last value: {last!r}; "
            f"{len(self._calls)} call(s), most recent: {recent}"
        )

    # -- request handling (server threads) ---------------------------------------------------

    def _take_failure(self, method: str) -> Failure | None:
        for failure in self._failures:
            if failure.method == method:
                if failure.times is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                return failure
        return None

    def _take_hold(self, method: str) -> Hold | None:
        for held in self._holds:
            if held.method == method and held.left > 0:
                held.left -= 1
                return held
        return None

    def _held(self, held: Hold, connection: Any) -> bool:
        """Wait while ``held`` holds an answer: False if the caller hung up (or we stop)."""
        held.arrived.set()
        while not held.released.is_set():
            # A caller waiting for its answer sends nothing: readable means it went away.
            if self._closing.is_set() or select.select([connection], [], [], 0.05)[0]:
                return False
        return True

    def _handle(
        self, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[_Reply, Hold | None]:
        """Answer one request and record it; runs under the lock, wakes waiters after."""
        url = urlsplit(path)
        kind, _, name = url.path.strip("/").partition("/")
        method = {"api": name, "upload": UPLOAD, "response_url": RESPONSE_URL}.get(kind, kind)
        try:
            params = _parse_params(url.query, headers, body) if kind == "api" else {}
        except ValueError:
            params, kind = {}, "invalid"
        token = _bearer(headers) or params.pop("token", None)
        call = Call(method, params, dict(headers), token, time.time(), body)
        with self._cond:
            if kind == "invalid":
                reply = _Reply(200, {"ok": False, "error": "invalid_json"})
            else:
                reply = self._answer(call, kind, name)
            call.status, call.response = reply.status, reply.json
            self._calls.append(call)
            held = self._take_hold(method)
            self._cond.notify_all()
        for observer in list(self.observers):
            observer(call)
        return reply, held

    def _answer(self, call: Call, kind: str, name: str) -> _Reply:
        failure = self._take_failure(call.method)
        if failure is not None:
            extra = {} if failure.retry_after is None else {"Retry-After": str(failure.retry_after)}
            return _Reply(failure.status, {"ok": False, "error": failure.error}, extra)
        try:
            if kind == "api":
                self._check_token(call.token)
                headers = {}
                if name == "auth.test" and self.scopes is not None:
                    headers["x-oauth-scopes"] = ",".join(self.scopes)
                return _Reply(200, self._ws.call(call.method, call.params), headers)
            if kind == "upload":
                self._ws.record_upload(name.rsplit("/", 1)[-1], call.body)
                return _Reply(200, None, text=f"OK - {len(call.body)}")
            if kind == "response_url":
                return self._response_url(name, call)
        except SlackError as err:
            return _Reply(err.status, {"ok": False, "error": err.error})
        return _Reply(404, {"ok": False, "error": "not_found"})

    def _check_token(self, token: str | None) -> None:
        if not token:
            raise SlackError("not_authed")
        if self.token is not None and token != self.token:
            raise SlackError("invalid_auth")

    def _response_url(self, url_id: str, call: Call) -> _Reply:
        posts = self._responses.get(url_id)
        if posts is None:
            return _Reply(404, {"ok": False, "error": "invalid_response_url"})
        if len(posts) >= RESPONSE_URL_USES:
            return _Reply(404, {"ok": False, "error": "used_url"})
        body = json.loads(call.body or b"{}")
        call.params = body
        posts.append(ResponsePost(url_id, body, call.time))
        return _Reply(200, {"ok": True})


class Hold:
    """Calls of ``method`` whose answers wait (see :meth:`FakeSlack.hold`)."""

    def __init__(self, method: str, times: int) -> None:
        self.method = method
        self.left = times
        self.arrived = threading.Event()
        self.released = threading.Event()

    def release(self) -> None:
        self.released.set()


class _Reply:
    def __init__(
        self,
        status: int,
        body: JsonDict | None,
        headers: dict[str, str] | None = None,
        text: str | None = None,
    ) -> None:
        self.status, self.json, self.headers = status, body, headers or {}
        self.text = text if text is not None else json.dumps(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's listen backlog is 5: a burst of bot calls overflowed it, and every
    # connection dropped there waited for the 1 s SYN retransmit.
    request_queue_size = 128


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeSlack/1.0"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fake: FakeSlack = self.server.fake  # type: ignore[attr-defined]
        reply, held = fake._handle(self.path, dict(self.headers.items()), body)
        if held is not None and not fake._held(held, self.connection):
            self.close_connection = True
            return
        data = reply.text.encode()
        self.send_response(reply.status, HTTPStatus(reply.status).phrase)
        ctype = "application/json; charset=utf-8" if reply.json is not None else "text/plain"
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_GET = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr log."""


def _bearer(headers: Mapping[str, str]) -> str | None:
    for key, value in headers.items():
        if key.lower() == "authorization" and value.startswith("Bearer "):
            return value.removeprefix("Bearer ")
    return None


def _parse_params(query: str, headers: Mapping[str, str], body: bytes) -> JsonDict:
    """Query and body params as Slack reads them; JSON-valued form fields decoded."""
    params: JsonDict = dict(parse_qsl(query, keep_blank_values=True))
    ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if body and ctype.startswith("application/json"):
        params.update(json.loads(body))
    elif body:
        params.update(parse_qsl(body.decode(), keep_blank_values=True))
    for key in _JSON_FIELDS:
        value = params.get(key)
        if isinstance(value, str) and value[:1] in ("[", "{"):
            params[key] = json.loads(value)
    return {k: v for k, v in params.items() if v is not None}
