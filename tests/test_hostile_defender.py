"""Defender answering nonsense: the client raises typed ``DefenderError``s, nothing else.

A raw HTTP server on loopback answers every request with what the test sets: JSON of the
right shape with fields missing, extra or of the wrong type, unknown statuses, collections
whose next link loops, bodies that are not JSON, huge or deeply nested ones; and for result
downloads random bytes, gzip cut short, gzip bombs. Whatever comes, a client call returns
its typed value or raises a ``DefenderError`` subclass (results: ``ResultError``, whose
subclass ``ResultTooLarge`` stops a bomb at ``max_bytes``), never a ``KeyError``,
``TypeError``, ``RecursionError`` or pydantic's ``ValidationError``.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from commands.client import DefenderClient
from commands.config import load_defender_settings
from commands.errors import DefenderError, ResultError, ResultTooLarge
from commands.models import CommandSequence, GetFile
from commands.wire import Machine, MachineAction, RunScriptOutput
from tests.helpers.defender import CLIENT_ID, SECRET, TENANT, transport
from tests.hostile import any_json, hostile_text

# A failing example with a 100 KB string makes hypothesis warn that its repr is large; as an
# error (warnings are errors here) that warning would hide the failure it reports.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
MACHINE_ID = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
MAX_BYTES = 64 * 1024


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"


class Garbage:
    """A loopback server answering every request with ``answer`` (or ``blob`` under /blob)."""

    def __init__(self) -> None:
        self.answer = Answer()
        self.blob = Answer(body=b"")
        self.requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                owner.requests += 1
                answer = owner.blob if self.path.startswith("/blob") else owner.answer
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # the client hung up mid-answer (a bomb stopped at max_bytes): expected

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def set(self, body: Any, status: int = 200, content_type: str = "application/json") -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.answer = Answer(status, raw, content_type)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class StaticToken:
    def token(self, force_refresh: bool = False) -> str:
        return "token"


@pytest.fixture(scope="module")
def garbage() -> Iterator[Garbage]:
    server = Garbage()
    yield server
    server.close()


@pytest.fixture(scope="module")
def client(garbage: Garbage) -> Iterator[DefenderClient]:
    settings_ = load_defender_settings(
        _env_file=None,
        api_url=garbage.url,
        tenant_id=TENANT,
        client_id=CLIENT_ID,
        client_secret=SECRET,
        timeout_seconds=5,
    )
    with DefenderClient(
        settings_,
        token_provider=StaticToken(),
        transport=transport(),
        download_transport=transport(),
        sleep=lambda seconds: None,
        max_get_retries=1,
    ) as defender:
        yield defender


# --- documents ------------------------------------------------------------------------------

MACHINE = {
    "id": MACHINE_ID,
    "computerDnsName": "ws-001.contoso.com",
    "osPlatform": "Windows11",
    "healthStatus": "Active",
    "lastSeen": "2025-03-01T02:58:00Z",
    "machineTags": ["a"],
}
ACTION = {
    "id": "act-1",
    "type": "LiveResponse",
    "status": "InProgress",
    "machineId": MACHINE_ID,
    "creationDateTimeUtc": "2025-03-01T03:00:00Z",
    "errorHResult": 0,
    "commands": [
        {
            "index": 0,
            "commandStatus": "Completed",
            "startTime": "2025-03-01T03:00:01Z",
            "errors": [],
            "command": {"type": "GetFile", "params": [{"key": "Path", "value": "C:\\a"}]},
        }
    ],
}
LIBRARY_FILE = {"fileName": "a.ps1", "sha256": "ab" * 32, "hasParameters": True}


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else []
    )
    found: list[tuple[Any, ...]] = []
    for key, child in items:
        found += [(*prefix, key), *_paths(child, (*prefix, key))]
    return found


@st.composite
def broken(draw: st.DrawFn, base: dict[str, Any]) -> Any:
    """``base`` with fields removed, retyped or added (unknown statuses among them)."""
    document = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(0, 4))):
        path = draw(st.sampled_from(_paths(base)))
        parent = document
        for key in path[:-1]:
            if not isinstance(parent, dict | list):
                break
            try:
                parent = parent[key]
            except (KeyError, IndexError, TypeError):  # an earlier change retyped the node
                break
        else:
            if isinstance(parent, dict):
                if draw(st.booleans()):
                    parent.pop(path[-1], None)
                else:
                    parent[path[-1]] = draw(any_json() | st.sampled_from(["Weird", "", None]))
            elif isinstance(parent, list) and isinstance(path[-1], int) and path[-1] < len(parent):
                parent[path[-1]] = draw(any_json())
    if isinstance(document, dict):
        document.update(draw(st.dictionaries(hostile_text(20), any_json(), max_size=3)))
    return document


def collection(item: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """An OData page: its ``value`` and perhaps a next link (often back to the same page)."""
    link = st.sampled_from(["/api/machines?page=2", "http://[::1", "", None]) | hostile_text(40)
    return st.fixed_dictionaries(
        {"value": st.lists(item, max_size=3) | any_json()},
        optional={"@odata.nextLink": link, "@odata.context": any_json()},
    )


NOT_JSON = st.sampled_from(
    [
        b"",
        b"<html>502 Bad Gateway</html>",
        b"\xff\xfe\x00garbage",
        b"[" * 100_000,  # json.loads: RecursionError
        b'{"value": [' + b'{"id": "x"},' * 50_000 + b'{"id": "y"}]}',  # big but fine
        b"nan",
        b'"just a string"',
    ]
)


def documents(base: dict[str, Any]) -> st.SearchStrategy[Any]:
    return broken(base) | any_json() | collection(broken(base))


STATUSES = st.sampled_from([200, 200, 200, 201, 204, 400, 401, 403, 404, 409, 429, 500, 503])


def expect_typed(call: Callable[[], Any], kind: type | tuple[type, ...]) -> None:
    try:
        value = call()
    except DefenderError as exc:
        assert str(exc), type(exc)
        return
    assert isinstance(value, kind), value


# --- the client, call by call -------------------------------------------------------------------


@FUZZ
@given(
    body=documents(MACHINE) | NOT_JSON,
    status=STATUSES,
    query=st.sampled_from([MACHINE_ID, "ws-001", "ws"]),
)
@example(body={"value": [MACHINE], "@odata.nextLink": "/api/machines"}, status=200, query="ws")
@example(body=b"[" * 100_000, status=200, query=MACHINE_ID)
@example(body={"value": [], "@odata.nextLink": "http://[::1"}, status=200, query="ws")
def test_machine_lookups(
    garbage: Garbage, client: DefenderClient, body: Any, status: int, query: str
) -> None:
    garbage.set(body, status)
    expect_typed(lambda: client.resolve_machine(query), Machine)


@FUZZ
@given(body=documents(ACTION) | NOT_JSON, status=STATUSES)
@example(body={"value": [ACTION | {"status": "Weird"}]}, status=200)
def test_action_reads(garbage: Garbage, client: DefenderClient, body: Any, status: int) -> None:
    garbage.set(body, status)
    expect_typed(lambda: client.get_action("act-1"), MachineAction)
    expect_typed(lambda: client.get_actions(["act-1", "act-2"]), dict)
    expect_typed(lambda: client.active_action(MACHINE_ID), (MachineAction, type(None)))
    expect_typed(lambda: client.actions_for_machine(MACHINE_ID), list)


@FUZZ
@given(body=documents(ACTION) | NOT_JSON, status=STATUSES)
def test_action_writes(garbage: Garbage, client: DefenderClient, body: Any, status: int) -> None:
    garbage.set(body, status)
    sequence = CommandSequence.of(GetFile(path="C:\\a"))
    expect_typed(lambda: client.run_live_response(MACHINE_ID, sequence, "c"), MachineAction)
    expect_typed(lambda: client.cancel_action("act-1", "c"), MachineAction)


@FUZZ
@given(body=collection(broken(LIBRARY_FILE)) | any_json() | NOT_JSON, status=STATUSES)
def test_library(garbage: Garbage, client: DefenderClient, body: Any, status: int) -> None:
    garbage.set(body, status)
    expect_typed(client.library_files, list)


# --- results ------------------------------------------------------------------------------------


def _bomb() -> bytes:
    """About 1 KB of gzip that inflates to 64 MB."""
    return gzip.compress(b"\x00" * (64 * 1024 * 1024), compresslevel=9)


BOMB = _bomb()
GOOD = json.dumps({"script_name": "a.ps1", "exit_code": 0, "script_output": "ok"}).encode()
BLOBS = (
    st.binary(max_size=4000)
    | st.sampled_from([GOOD, gzip.compress(GOOD), gzip.compress(GOOD)[:-5], BOMB, BOMB[:200]])
    | st.binary(min_size=1, max_size=2000).map(lambda b: gzip.compress(b)[: max(len(b) // 2, 3)])
    | st.binary(max_size=200).map(lambda b: b"\x1f\x8b" + b)
    | any_json().map(lambda d: json.dumps(d).encode())
    | st.just(b"x" * (MAX_BYTES + 1))
)


@FUZZ
@given(
    link=st.sampled_from(["/blob", "ftp://x", "", "javascript:x"]) | any_json(),
    blob=BLOBS,
    blob_status=st.sampled_from([200, 200, 200, 403, 404, 500]),
)
@example(link="/blob", blob=BOMB, blob_status=200)
@example(link="/blob", blob=gzip.compress(GOOD)[:-5], blob_status=200)
def test_result_downloads(
    garbage: Garbage, client: DefenderClient, link: Any, blob: bytes, blob_status: int
) -> None:
    garbage.set({"value": garbage.url + link if link == "/blob" else link})
    garbage.blob = Answer(blob_status, blob, "application/octet-stream")
    try:
        output = client.download_runscript_output("act-1", 0, max_bytes=MAX_BYTES)
    except ResultError as exc:
        assert str(exc)
        return
    except DefenderError as exc:  # the storage kept failing: a transport problem
        assert str(exc)
        return
    assert isinstance(output, RunScriptOutput)


def test_a_gzip_bomb_stops_at_max_bytes(garbage: Garbage, client: DefenderClient) -> None:
    garbage.set({"value": garbage.url + "/blob"})
    garbage.blob = Answer(200, BOMB, "application/octet-stream")
    assert len(BOMB) < 100_000
    with pytest.raises(ResultTooLarge):
        client.download_result("act-1", 0, max_bytes=MAX_BYTES)


def test_truncated_gzip_is_a_result_error(garbage: Garbage, client: DefenderClient) -> None:
    garbage.set({"value": garbage.url + "/blob"})
    garbage.blob = Answer(200, gzip.compress(GOOD)[:-4], "application/octet-stream")
    with pytest.raises(ResultError, match="truncated"):
        client.download_result("act-1", 0, max_bytes=MAX_BYTES)


def test_a_next_link_back_to_the_same_page_is_an_error_not_a_hang(
    garbage: Garbage, client: DefenderClient
) -> None:
    """Regression: every page linked to the next for ever; a poll never returned."""
    garbage.set({"value": [MACHINE], "@odata.nextLink": "/api/machines?$skip=0"})
    with pytest.raises(DefenderError, match="broken next page link"):
        client.find_machines_by_name("ws")
    garbage.set({"value": [], "@odata.nextLink": "http://[::1"})
    with pytest.raises(DefenderError, match="invalid next link"):
        client.library_files()


def test_deeply_nested_json_is_not_json(garbage: Garbage, client: DefenderClient) -> None:
    """Regression: json.loads raised RecursionError, which escaped every client call."""
    garbage.set(b"[" * 100_000)
    with pytest.raises(DefenderError, match="is not JSON"):
        client.get_action("act-1")
    garbage.set(b"[" * 100_000, status=400)  # the error answer's body is read too
    with pytest.raises(DefenderError, match="400"):
        client.get_action("act-1")


def test_one_unreadable_action_does_not_stop_the_poll_of_the_others(
    garbage: Garbage, client: DefenderClient
) -> None:
    """Regression: the whole batched poll failed, so every run waited on one bad item."""
    bad = {"id": "act-2", "commands": [{"commandStatus": "Completed"}]}  # no index
    garbage.set({"value": [ACTION, bad, "not even an object"]})
    found = client.get_actions(["act-1", "act-2"])
    assert list(found) == ["act-1"] and found["act-1"].status == "InProgress"
