"""DefenderClient on answers the simulator does not give: httpx.MockTransport handlers."""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from commands.auth import StaticTokenProvider
from commands.client import DefenderClient
from commands.config import load_defender_settings
from commands.errors import (
    ApiError,
    DefenderError,
    OutcomeUnknown,
    ResultError,
    ResultTooLarge,
    ServerError,
    Throttled,
    TransportError,
)
from commands.models import CommandSequence, RunScript

API = "https://defender.test"
MACHINE = "a" * 40
SEQUENCE = CommandSequence.of(RunScript(script_name="ok.ps1"))
Handler = Callable[[httpx.Request], httpx.Response]


def make_client(
    handler: Handler, download: Handler | None = None, waits: list[float] | None = None
) -> DefenderClient:
    settings = load_defender_settings(_env_file=None, api_url=API)
    recorded = waits if waits is not None else []
    return DefenderClient(
        settings,
        token_provider=StaticTokenProvider("tkn"),
        transport=httpx.MockTransport(handler),
        download_transport=httpx.MockTransport(download or handler),
        sleep=recorded.append,
        rng=random.Random(3),
    )


def action(**fields: Any) -> dict[str, Any]:
    return {"id": "act-1", "status": "Pending", "machineId": MACHINE, **fields}


def raising(exc: type[Exception]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc("boom", request=request)  # type: ignore[call-arg]

    return handler


# --- error bodies ------------------------------------------------------------------------------


def test_non_json_error_body() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, text="<html>Bad</html>")

    with make_client(handler) as client, pytest.raises(ApiError) as caught:
        client.get_action("x")
    assert (caught.value.status, caught.value.code, caught.value.message) == (
        400,
        "BadRequest",
        "Bad Request",
    )
    assert caught.value.target is None


def test_error_body_with_missing_fields() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"error": {"message": "nope"}})

    with make_client(handler) as client, pytest.raises(ApiError) as caught:
        client.get_action("x")
    assert (caught.value.code, caught.value.message) == ("Forbidden", "nope")


def test_5xx_after_retries_carries_the_body() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"error": {"code": "InternalServerError", "message": "m", "target": "t-1"}}
        return httpx.Response(500, json=body)

    waits: list[float] = []
    with make_client(handler, waits=waits) as client, pytest.raises(ServerError) as caught:
        client.get_action("x")
    assert caught.value.target == "t-1"
    assert len(waits) == 3


def test_retry_after_as_http_date_is_honoured_for_get() -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})])

    def handler(request: httpx.Request) -> httpx.Response:
        return next(answers, httpx.Response(200, json=action()))

    waits: list[float] = []
    with make_client(handler, waits=waits) as client:
        assert client.get_action("act-1").id == "act-1"
    assert waits == [0.0]  # a date in the past: retry at once


def test_success_that_is_not_json() -> None:
    client = make_client(lambda r: httpx.Response(200, text="nope"))
    with client, pytest.raises(DefenderError, match="not JSON"):
        client.get_action("x")


def test_success_that_is_not_an_action() -> None:
    client = make_client(lambda r: httpx.Response(200, json={"value": 1}))
    with client, pytest.raises(DefenderError, match="not a MachineAction"):
        client.get_action("x")


# --- writes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201])
def test_run_accepts_200_and_201_with_no_commands(status: int) -> None:
    bodies: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(status, json=action(commands=[]))

    with make_client(handler) as client:
        started = client.run_live_response(MACHINE, SEQUENCE, "why")
    assert (started.id, started.commands) == ("act-1", [])
    assert bodies == [SEQUENCE.to_request("why")]


@pytest.mark.parametrize(
    "exc", [httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError, httpx.RemoteProtocolError]
)
def test_post_lost_after_sending_is_outcome_unknown(exc: type[Exception]) -> None:
    with make_client(raising(exc)) as client, pytest.raises(OutcomeUnknown):
        client.run_live_response(MACHINE, SEQUENCE, "why")


@pytest.mark.parametrize("exc", [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout])
def test_post_never_sent_is_a_transport_error(exc: type[Exception]) -> None:
    with make_client(raising(exc)) as client, pytest.raises(TransportError) as caught:
        client.cancel_action("act-1", "stop")
    assert not isinstance(caught.value, OutcomeUnknown)


def test_post_answer_that_is_not_json_is_outcome_unknown() -> None:
    client = make_client(lambda r: httpx.Response(201, text="<html/>"))
    with client, pytest.raises(OutcomeUnknown):
        client.run_live_response(MACHINE, SEQUENCE, "why")


def test_post_429_without_retry_after_defaults_to_a_minute() -> None:
    with make_client(lambda r: httpx.Response(429)) as client, pytest.raises(Throttled) as caught:
        client.run_live_response(MACHINE, SEQUENCE, "why")
    assert caught.value.retry_after == 60


def test_ids_in_paths_are_escaped() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path.decode())
        return httpx.Response(200, json=action())

    with make_client(handler) as client:
        client.get_action("../libraryfiles?x")
    assert paths == ["/api/machineactions/..%2Flibraryfiles%3Fx"]


# --- paging ------------------------------------------------------------------------------------


def test_next_link_naming_another_host_is_asked_of_ours() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        page: dict[str, Any] = {"value": [action(id=f"act-{len(seen)}")]}
        if len(seen) == 1:
            page["@odata.nextLink"] = "https://evil.test/api/machineactions?$skip=1"
        return httpx.Response(200, json=page)

    with make_client(handler) as client:
        found = client.list_actions("status eq 'Pending'")
    assert [a.id for a in found] == ["act-1", "act-2"]
    assert seen[1] == f"{API}/api/machineactions?$skip=1"  # the token never went to evil.test


def test_collection_that_is_not_a_collection() -> None:
    client = make_client(lambda r: httpx.Response(200, json={"value": "x"}))
    with client, pytest.raises(DefenderError, match="not a collection"):
        client.library_files()


# --- downloads ---------------------------------------------------------------------------------


class Chunks(httpx.SyncByteStream):
    """A streamed body, as a real transport gives (MockTransport reads ``content`` at once)."""

    def __init__(self, data: bytes, size: int = 7) -> None:
        self._pieces = [data[i : i + size] for i in range(0, len(data), size)]

    def __iter__(self) -> Iterator[bytes]:
        yield from self._pieces


def streamed(data: bytes, **headers: str) -> httpx.Response:
    return httpx.Response(200, stream=Chunks(data), headers=headers)


def link_handler(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"value": "https://blob.test/r?sv=1&sig=abc"})


def test_download_has_no_authorization_and_is_gunzipped(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def blob(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return streamed(gzip.compress(b"payload"))

    with make_client(link_handler, blob) as client:
        result = client.download_result("act-1", 0, max_bytes=100, directory=tmp_path)
    assert result.path.read_bytes() == b"payload"
    assert "authorization" not in seen[0].headers
    assert seen[0].headers["accept-encoding"] == "identity"


def test_download_content_length_over_the_bound(tmp_path: Path) -> None:
    def blob(request: httpx.Request) -> httpx.Response:
        return streamed(b"x" * 500, **{"Content-Length": "500"})

    with make_client(link_handler, blob) as client, pytest.raises(ResultTooLarge):
        client.download_result("act-1", 0, max_bytes=100, directory=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_download_404_is_a_result_error(tmp_path: Path) -> None:
    client = make_client(link_handler, lambda r: httpx.Response(404))
    with client, pytest.raises(ResultError, match="404"):
        client.download_result("act-1", 0, max_bytes=100, directory=tmp_path)


def test_download_expired_link_is_asked_again(tmp_path: Path) -> None:
    answers = iter([httpx.Response(403), streamed(b"ok")])
    links: list[str] = []

    def api(request: httpx.Request) -> httpx.Response:
        links.append(request.url.path)
        return link_handler(request)

    with make_client(api, lambda r: next(answers)) as client:
        result = client.download_result("act-1", 0, max_bytes=100, directory=tmp_path)
    assert result.path.read_bytes() == b"ok"
    assert len(links) == 2


def test_download_transport_errors_give_up(tmp_path: Path) -> None:
    waits: list[float] = []
    client = make_client(link_handler, raising(httpx.ReadError), waits)
    with client, pytest.raises(TransportError):
        client.download_result("act-1", 0, max_bytes=100, directory=tmp_path)
    assert len(waits) == 3


def test_result_link_missing() -> None:
    client = make_client(lambda r: httpx.Response(200, json={"value": None}))
    with client, pytest.raises(ResultError):
        client.result_link("act-1", 0)
