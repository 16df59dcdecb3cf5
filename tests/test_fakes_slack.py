"""The Slack fakes, checked against the real slack_sdk WebClient and a real Bolt app."""

from __future__ import annotations

import socket
import threading
import types
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from slack_bolt import Ack, App, Respond
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import builtin_handlers
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier

from bot.sandbox.slack_api import UPLOAD, FakeSlack
from bot.sandbox.slack_requests import (
    STALE,
    TAMPERED,
    WRONG_SECRET,
    SlackRequests,
    external_select,
    sign,
    state_values,
    users_select,
)


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


SECRET = "test-signing-secret"
TITLE = {"type": "plain_text", "text": "Live response"}
SELECT_OPTIONS = [
    {"text": {"type": "plain_text", "text": "Run script"}, "value": "runscript"},
    {"text": {"type": "plain_text", "text": "Get file"}, "value": "getfile"},
]
MODAL_BLOCKS: list[dict[str, Any]] = [
    {
        "type": "input",
        "block_id": "device",
        "label": {"type": "plain_text", "text": "Device"},
        "element": {"type": "external_select", "action_id": "pick", "min_query_length": 1},
    },
    {
        "type": "input",
        "block_id": "kind",
        "label": {"type": "plain_text", "text": "Action"},
        "element": {"type": "static_select", "action_id": "pick", "options": SELECT_OPTIONS},
    },
    {
        "type": "input",
        "block_id": "approver",
        "label": {"type": "plain_text", "text": "Approver"},
        "element": {"type": "users_select", "action_id": "pick"},
    },
    {
        "type": "input",
        "block_id": "reason",
        "label": {"type": "plain_text", "text": "Reason"},
        "element": {"type": "plain_text_input", "action_id": "text"},
    },
]
MODAL: dict[str, Any] = {
    "type": "modal",
    "callback_id": "lr_request",
    "title": TITLE,
    "blocks": MODAL_BLOCKS,
}
APPROVE_BLOCKS: list[dict[str, Any]] = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "Request *42*"}},
    {
        "type": "actions",
        "block_id": "decision",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "text": {"type": "plain_text", "text": "Approve"},
                "value": "42",
                "style": "primary",
            }
        ],
    },
]


@pytest.fixture
def client(fake_slack: FakeSlack) -> WebClient:
    return fake_slack.client()


# -- messages ----------------------------------------------------------------------------


def test_post_update_and_thread_replies(fake_slack: FakeSlack, client: WebClient) -> None:
    parent = client.chat_postMessage(channel="C1", text="request", blocks=APPROVE_BLOCKS)
    first = client.chat_postMessage(channel="C1", text="queued", thread_ts=parent["ts"])
    second = client.chat_postMessage(channel="C1", text="running", thread_ts=parent["ts"])
    client.chat_update(channel="C1", ts=first["ts"], text="queued ✓")
    client.chat_update(channel="C1", ts=parent["ts"], text="approved")

    assert parent["channel"] == "C1"
    assert parent["message"]["text"] == "request"
    assert parent["ts"] < first["ts"] < second["ts"]
    assert [m.text for m in fake_slack.thread("C1", parent["ts"])] == ["queued ✓", "running"]
    [top] = fake_slack.messages("C1")
    assert (top.text, top.blocks, top.edited) == ("approved", APPROVE_BLOCKS, True)
    assert top.history == [("request", APPROVE_BLOCKS)]
    assert len(fake_slack.messages("C1", include_replies=True)) == 3
    call = fake_slack.calls("chat.postMessage")[0]
    assert call.token == "xoxb-test-token"
    assert call.headers["Authorization"] == "Bearer xoxb-test-token"
    assert call.params["blocks"] == APPROVE_BLOCKS


def test_update_errors_and_empty_message(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as missing:
        client.chat_update(channel="C1", ts="1.000000", text="x")
    with pytest.raises(SlackApiError) as empty:
        client.api_call("chat.postMessage", json={"channel": "C1"})  # sdk would warn first
    assert missing.value.response["error"] == "message_not_found"
    assert empty.value.response["error"] == "no_text"


def test_ephemeral_messages_per_user(fake_slack: FakeSlack, client: WebClient) -> None:
    sent = client.chat_postEphemeral(channel="C1", user="U1", text="only you")
    assert sent["message_ts"]
    assert [e.text for e in fake_slack.ephemerals("U1")] == ["only you"]
    assert fake_slack.ephemerals("U2") == []


# -- views -----------------------------------------------------------------------------------


def test_views_open_update_and_hash_conflict(fake_slack: FakeSlack, client: WebClient) -> None:
    view = client.views_open(trigger_id="1.2.abc", view=MODAL)["view"]
    assert view["id"].startswith("V")
    assert view["hash"] and view["callback_id"] == "lr_request"
    updated = client.views_update(view_id=view["id"], hash=view["hash"], view=MODAL)["view"]
    assert updated["hash"] != view["hash"]

    with pytest.raises(SlackApiError) as stale:
        client.views_update(view_id=view["id"], hash=view["hash"], view=MODAL)
    with pytest.raises(SlackApiError) as reused:
        client.views_open(trigger_id="1.2.abc", view=MODAL)
    assert stale.value.response["error"] == "hash_conflict"
    assert reused.value.response["error"] == "expired_trigger_id"
    [opened] = fake_slack.views()
    assert (opened.updates, opened.hash) == (1, updated["hash"])
    pushed = client.views_push(trigger_id="1.2.def", view=MODAL)["view"]
    assert pushed["root_view_id"] == view["id"]


def test_view_with_too_long_title_is_refused(client: WebClient) -> None:
    long_title = {**MODAL, "title": {"type": "plain_text", "text": "x" * 25}}
    with pytest.raises(SlackApiError) as refused:
        client.views_open(trigger_id="1.2.xyz", view=long_title)
    assert refused.value.response["error"] == "invalid_arguments"


# -- directory and unknown methods -------------------------------------------------------------


def test_directory_methods(fake_slack: FakeSlack, client: WebClient) -> None:
    fake_slack.set_usergroup("S_APPROVERS", ["U1", "U2"])
    fake_slack.set_user("U1", real_name="Ada Lovelace", tz="Europe/Paris")
    fake_slack.set_channel("C1", name="security-ops")

    assert client.usergroups_users_list(usergroup="S_APPROVERS")["users"] == ["U1", "U2"]
    user = client.users_info(user="U1")["user"]
    assert (user["real_name"], user["tz"]) == ("Ada Lovelace", "Europe/Paris")
    assert client.conversations_info(channel="C1")["channel"]["name"] == "security-ops"
    assert client.auth_test()["user_id"] == "UBOT"
    with pytest.raises(SlackApiError) as unknown_user:
        client.users_info(user="U404")
    with pytest.raises(SlackApiError) as unknown_method:
        client.api_call("reactions.add", json={"channel": "C1"})
    assert unknown_user.value.response["error"] == "user_not_found"
    assert unknown_method.value.response.data == {"ok": False, "error": "unknown_method"}


def test_wrong_or_missing_token() -> None:
    with FakeSlack(token="xoxb-right") as fake:
        with pytest.raises(SlackApiError) as wrong:
            fake.client("xoxb-wrong").auth_test()
        with pytest.raises(SlackApiError) as missing:
            WebClient(base_url=fake.base_url).auth_test()
        assert fake.client("xoxb-right").auth_test()["ok"]
    assert wrong.value.response["error"] == "invalid_auth"
    assert missing.value.response["error"] == "not_authed"


# -- failure injection ----------------------------------------------------------------------------


def test_rate_limit_is_honoured_by_retry_handler(
    fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(builtin_handlers, "time", types.SimpleNamespace(sleep=slept.append))
    fake_slack.fail("chat.postMessage", retry_after=1)
    client = fake_slack.client(retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])

    sent = client.chat_postMessage(channel="C1", text="after the limit")

    assert sent["ok"]
    assert [(c.status, c.error) for c in fake_slack.calls("chat.postMessage")] == [
        (429, "ratelimited"),
        (200, None),
    ]
    assert len(slept) == 1 and 1 <= slept[0] < 2  # Retry-After plus the handler's jitter
    assert [m.text for m in fake_slack.messages("C1")] == ["after the limit"]


def test_rate_limit_without_handler_surfaces_retry_after(
    fake_slack: FakeSlack, client: WebClient
) -> None:
    fake_slack.fail("chat.update", retry_after=7, times=None)
    for _ in range(2):
        with pytest.raises(SlackApiError) as limited:
            client.chat_update(channel="C1", ts="1.0", text="x")
        assert limited.value.response.status_code == 429
        assert limited.value.response.headers["Retry-After"] == "7"
        assert limited.value.response["error"] == "ratelimited"
    fake_slack.clear_failures()
    with pytest.raises(SlackApiError) as after:
        client.chat_update(channel="C1", ts="1.0", text="x")
    assert after.value.response["error"] == "message_not_found"


def test_generic_and_server_errors(fake_slack: FakeSlack, client: WebClient) -> None:
    fake_slack.fail("chat.postMessage", "channel_not_found", status=200)
    fake_slack.fail("users.info", status=500)
    with pytest.raises(SlackApiError) as not_found:
        client.chat_postMessage(channel="C404", text="x")
    with pytest.raises(SlackApiError) as server:
        client.users_info(user="U1")
    assert (not_found.value.response.status_code, not_found.value.response["error"]) == (
        200,
        "channel_not_found",
    )
    assert (server.value.response.status_code, server.value.response["error"]) == (
        500,
        "internal_error",
    )
    assert client.chat_postMessage(channel="C1", text="next one works")["ok"]


# -- files -----------------------------------------------------------------------------------------


def test_files_upload_v2_end_to_end(fake_slack: FakeSlack, client: WebClient) -> None:
    parent = client.chat_postMessage(channel="C1", text="request")
    data = b"line 1\nline 2\n\x00\xff"
    result = client.files_upload_v2(
        channel="C1",
        thread_ts=parent["ts"],
        file=data,
        filename="output.txt",
        title="Script output",
        initial_comment="Output of runscript",
    )

    [upload] = fake_slack.uploads()
    assert result["file"]["id"] == upload.id
    assert (upload.name, upload.title, upload.data) == ("output.txt", "Script output", data)
    assert (upload.channel_id, upload.thread_ts) == ("C1", parent["ts"])
    assert upload.initial_comment == "Output of runscript" and upload.completed
    assert fake_slack.calls(UPLOAD)[0].body == data
    [shared] = fake_slack.thread("C1", parent["ts"])
    assert shared.text == "Output of runscript" and shared.files[0]["id"] == upload.id


def test_complete_without_uploaded_bytes_fails(client: WebClient) -> None:
    file_id = client.files_getUploadURLExternal(filename="a.txt", length=3)["file_id"]
    with pytest.raises(SlackApiError) as incomplete:
        client.files_completeUploadExternal(files=[{"id": file_id}], channel_id="C1")
    assert incomplete.value.response["error"] == "file_not_found"


# -- holding answers -------------------------------------------------------------------------------


def test_a_held_call_takes_effect_and_is_answered_once_released(
    fake_slack: FakeSlack, client: WebClient
) -> None:
    held = fake_slack.hold("chat.postMessage")
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(client.chat_postMessage, channel="C1", text="held")
        assert held.arrived.wait(5)
        assert [m.text for m in fake_slack.messages("C1")] == ["held"]  # Slack has it
        assert not answer.done()
        held.release()
        assert answer.result(timeout=5)["ok"]
    assert client.chat_postMessage(channel="C1", text="next")["ok"]  # one call was held


def test_a_held_answer_is_dropped_when_the_caller_hangs_up(fake_slack: FakeSlack) -> None:
    held = fake_slack.hold(UPLOAD)
    file_id = fake_slack.client().files_getUploadURLExternal(filename="a.txt", length=3)
    upload = urlsplit(str(file_id["upload_url"]))
    with socket.create_connection((upload.hostname, upload.port), timeout=5) as caller:
        caller.sendall(
            f"POST {upload.path} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc".encode()
        )
        assert held.arrived.wait(5)
        caller.shutdown(socket.SHUT_WR)  # the caller is gone (a process killed mid-call)
        assert caller.recv(100) == b""  # closed without an answer, before any release
    [stored] = fake_slack.uploads()
    assert stored.data == b"abc"  # the call itself took effect


# -- waiting ---------------------------------------------------------------------------------------


def test_wait_for_wakes_on_calls_from_other_threads(fake_slack: FakeSlack) -> None:
    client = fake_slack.client()
    worker = threading.Thread(
        target=lambda: [client.chat_postMessage(channel="C9", text=str(i)) for i in range(3)]
    )
    worker.start()
    texts = fake_slack.wait_for(
        lambda: (
            [m.text for m in fake_slack.messages("C9")]
            if len(fake_slack.messages("C9")) == 3
            else []
        )
    )
    worker.join(timeout=5)
    assert texts == ["0", "1", "2"]
    assert len(fake_slack.wait_for_calls("chat.postMessage", count=3)) == 3


def test_wait_for_times_out_with_a_description(fake_slack: FakeSlack) -> None:
    fake_slack.client().auth_test()
    with pytest.raises(AssertionError, match=r"thread reply.*auth\.test -> 200 ok"):
        fake_slack.wait_for(lambda: fake_slack.thread("C1", "1.0"), 0.05, what="thread reply")
    with pytest.raises(AssertionError, match="KeyError"):
        fake_slack.wait_for(lambda: fake_slack.message("C1", "1.0"), timeout=0.05)


# -- signed requests -------------------------------------------------------------------------------


def test_signatures_verify_unless_broken_on_purpose() -> None:
    verifier = SignatureVerifier(SECRET)
    slack = SlackRequests("http://127.0.0.1:9/slack/events", SECRET)
    with slack:
        good = slack.build_slash_command("help", user_id="U1", channel_id="C1")
        broken = [
            slack.build_slash_command("help", user_id="U1", channel_id="C1", signing=s)
            for s in (TAMPERED, WRONG_SECRET, STALE)
        ]

    def valid(body: bytes, headers: dict[str, str]) -> bool:
        ts, signature = headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
        return verifier.is_valid(body=body, timestamp=ts, signature=signature)

    assert valid(good.body, good.headers)
    assert verifier.is_valid_request(good.body, good.headers)
    assert [valid(r.body, r.headers) for r in broken] == [False, False, False]
    assert sign("a=b", SECRET).headers["X-Slack-Signature"].startswith("v0=")


def test_state_values_builder_types_after_the_blocks() -> None:
    values = {
        "device": {"pick": "WS-042"},
        "kind": {"pick": "getfile"},
        "approver": {"pick": "U2"},
        "reason": {"text": "triage"},
    }
    state = state_values(values, MODAL_BLOCKS)
    assert state["device"]["pick"] == external_select("WS-042")
    assert state["kind"]["pick"]["selected_option"] == SELECT_OPTIONS[1]
    assert state["approver"]["pick"] == users_select("U2")
    assert state["reason"]["text"] == {"type": "plain_text_input", "value": "triage"}
    assert state_values({"b": {"a": None}}) == {
        "b": {"a": {"type": "plain_text_input", "value": None}}
    }
    with pytest.raises(ValueError, match="not an option"):
        state_values({"kind": {"pick": "deletefile"}}, MODAL_BLOCKS)


# -- the fakes with a real Bolt app over HTTP ---------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No per-request log lines."""


def _bolt_app(fake: FakeSlack, seen: dict[str, Any]) -> App:
    app = App(client=fake.client(), signing_secret=SECRET)

    @app.command("/liveresponse")
    def command(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        client.views_open(trigger_id=body["trigger_id"], view=MODAL)
        respond("Opening the form")

    @app.options({"action_id": "pick", "block_id": "device"})
    def options(ack: Ack, payload: dict[str, Any]) -> None:
        ack(options=[{"text": {"type": "plain_text", "text": payload["value"]}, "value": "WS-1"}])

    @app.view("lr_request")
    def submitted(ack: Ack, view: dict[str, Any], body: dict[str, Any], client: WebClient) -> None:
        ack()
        seen["state"] = view["state"]["values"]
        client.chat_postMessage(channel="C1", text="request", blocks=APPROVE_BLOCKS)

    @app.action("approve")
    def approve(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        action = body["actions"][0]
        reply = f"approved {action['value']} by {body['user']['id']}"
        client.chat_postMessage(
            channel=body["channel"]["id"], thread_ts=body["message"]["ts"], text=reply
        )

    return app


@pytest.fixture
def bolt_url(fake_slack: FakeSlack) -> Iterator[tuple[str, dict[str, Any]]]:
    seen: dict[str, Any] = {}
    server: WSGIServer = make_server(
        "127.0.0.1",
        0,
        SlackRequestHandler(_bolt_app(fake_slack, seen)),
        handler_class=_QuietHandler,
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/slack/events", seen
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


def test_bolt_accepts_the_requests_end_to_end(
    fake_slack: FakeSlack, bolt_url: tuple[str, dict[str, Any]]
) -> None:
    url, seen = bolt_url
    with SlackRequests(url, SECRET, fake=fake_slack) as slack:
        assert slack.slash_command("", user_id="U1", channel_id="C1").status_code == 200
        view = fake_slack.wait_for(fake_slack.views)[0]
        posts = fake_slack.wait_for(lambda: fake_slack.response_posts(slack.last_response_url))
        assert posts[0].body["text"] == "Opening the form"
        assert fake_slack.calls("views.open")[0].params["trigger_id"] == slack.last_trigger_id

        options = slack.options("pick", "ws", user_id="U1", view=view, block_id="device")
        assert options.json()["options"][0]["value"] == "WS-1"

        values = {"device": {"pick": "WS-1"}, "kind": {"pick": "runscript"}}
        assert slack.view_submission(view, "U1", values).status_code == 200
        [request] = fake_slack.wait_for(lambda: fake_slack.messages("C1"))
        assert seen["state"]["kind"]["pick"]["selected_option"]["value"] == "runscript"

        assert slack.block_action("approve", user_id="U2", message=request).status_code == 200
        [reply] = fake_slack.wait_for(lambda: fake_slack.thread("C1", request.ts))
        assert reply.text == "approved 42 by U2"

        for broken in (TAMPERED, WRONG_SECRET, STALE):
            refused = slack.slash_command("help", user_id="U1", channel_id="C1", signing=broken)
            assert refused.status_code == 401
