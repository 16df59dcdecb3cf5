"""DefenderClient against the simulator over loopback HTTP, with a manual clock."""

from __future__ import annotations

import gzip
import hashlib
import logging
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from commands import odata
from commands.client import DefenderClient
from commands.errors import (
    ActiveRequestAlreadyExists,
    BadRequest,
    Forbidden,
    MachineLookupError,
    NotFound,
    OutcomeUnknown,
    ResultError,
    ResultTooLarge,
    ServerError,
    Throttled,
    TransportError,
    Unauthorized,
)
from commands.models import CommandSequence, GetFile, PutFile, RunScript
from commands.results import read_runscript_output
from commands.simulator import Fault, SimFile, SimMachine
from commands.wire import MachineAction
from tests.helpers.defender import Harness, build_scenario, machine, running_harness, transport

WS001 = machine(1)
OFFLINE = machine(4)
NO_REMEDIATION = machine(5)
UNSUPPORTED = machine(6)
SCRIPT_OK = CommandSequence.of(RunScript(script_name="ok.ps1", args="-Quick"))


def run(
    client: DefenderClient, machine_id: str = WS001, *commands: object, comment: str = "t"
) -> MachineAction:
    sequence = CommandSequence.of(*commands) if commands else SCRIPT_OK  # type: ignore[arg-type]
    return client.run_live_response(machine_id, sequence, comment)


class RecordingTransport(httpx.BaseTransport):
    """A real HTTP transport that remembers every URL it sent."""

    def __init__(self) -> None:
        self.inner = transport()
        self.urls: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


# --- machines ----------------------------------------------------------------------------------


def test_get_machine(client: DefenderClient) -> None:
    found = client.get_machine(WS001)
    assert (found.id, found.name, found.is_active) == (WS001, "ws-001.contoso.com", True)
    assert found.os_platform == "Windows11"


def test_unknown_machine_is_not_found_with_target(client: DefenderClient) -> None:
    with pytest.raises(NotFound) as caught:
        client.get_machine(machine(999))
    assert caught.value.code == "ResourceNotFound"
    assert caught.value.target  # Defender's correlation id, for support


def test_find_machines_by_name_is_one_startswith_query(
    harness: Harness, client: DefenderClient
) -> None:
    found = client.find_machines_by_name("WS-001")
    assert sorted(m.name for m in found) == [
        "ws-001.contoso.com",
        "ws-001.fabrikam.com",
        "ws-0011.contoso.com",
    ]
    (request,) = harness.api_requests("GET", "/api/machines")
    assert request.query["$filter"] == "startswith(computerDnsName,'ws-001')"


def test_find_machines_quotes_apostrophes(harness: Harness, client: DefenderClient) -> None:
    assert [m.id for m in client.find_machines_by_name("o'brien")] == [machine(9)]
    (request,) = harness.api_requests("GET", "/api/machines")
    assert request.query["$filter"] == "startswith(computerDnsName,'o''brien')"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (WS001, WS001),
        (WS001.upper(), WS001),
        ("ws-001.contoso.com", WS001),
        ("WS-001.Contoso.COM.", WS001),
        ("ws-0011", machine(2)),
        ("ws-001.fab", machine(3)),
        ("laptop", machine(4)),
        ("  dc-01  ", machine(5)),
    ],
)
def test_resolve_machine(client: DefenderClient, query: str, expected: str) -> None:
    assert client.resolve_machine(query).id == expected


def test_resolve_by_id_asks_for_that_machine_only(harness: Harness, client: DefenderClient) -> None:
    client.resolve_machine(WS001)
    assert [r.path for r in harness.api_requests()] == [f"/api/machines/{WS001}"]


def test_resolve_ambiguous_label_lists_names(client: DefenderClient) -> None:
    with pytest.raises(MachineLookupError) as caught:
        client.resolve_machine("ws-001")
    assert caught.value.candidates == ["ws-001.contoso.com", "ws-001.fabrikam.com"]


def test_resolve_repeated_names_show_ids(client: DefenderClient) -> None:
    with pytest.raises(MachineLookupError) as caught:
        client.resolve_machine("twin")
    assert caught.value.candidates == [
        f"twin.contoso.com ({machine(7)})",
        f"twin.contoso.com ({machine(8)})",
    ]


def test_resolve_many_prefix_matches(client: DefenderClient) -> None:
    with pytest.raises(MachineLookupError) as caught:
        client.resolve_machine("srv-0")
    assert len(caught.value.candidates) == 30
    assert "and 20 more" in str(caught.value)


@pytest.mark.parametrize("query", ["nothing-here", "   ", "ws-001.contoso.com.evil"])
def test_resolve_nothing(client: DefenderClient, query: str) -> None:
    with pytest.raises(MachineLookupError) as caught:
        client.resolve_machine(query)
    assert caught.value.candidates == []


# --- running and following actions ------------------------------------------------------------


def test_run_sends_exactly_the_sequence(harness: Harness, client: DefenderClient) -> None:
    sequence = CommandSequence.of(
        PutFile(file_name="tool.exe"),
        RunScript(script_name="ok.ps1", args="-Path C:\\x 'y'"),
        GetFile(path="C:\\Temp\\a.txt"),
    )
    action = client.run_live_response(WS001, sequence, "IR-1 asked by ann, approved by bob")
    assert action.status == "Pending"
    assert action.machine_id == WS001
    (post,) = harness.api_requests("POST")
    assert post.path == f"/api/machines/{WS001}/runliveresponse"
    assert post.body == sequence.to_request("IR-1 asked by ann, approved by bob")


def test_action_goes_through_every_status_to_succeeded(
    harness: Harness, client: DefenderClient
) -> None:
    action = run(client)
    assert client.get_action(action.id).status == "Pending"
    harness.clock.advance(2)
    running = client.get_action(action.id)
    assert running.status == "InProgress"
    assert [c.index for c in running.commands] == [0]
    assert running.commands[0].type == "RunScript"
    harness.clock.advance(10)
    done = client.get_action(action.id)
    assert (done.status, done.is_final, done.commands[0].is_final) == ("Succeeded", True, True)


def test_failed_action(harness: Harness, client: DefenderClient) -> None:
    action = run(client, WS001, RunScript(script_name="fail.ps1"))
    harness.clock.advance(30)
    failed = client.get_action(action.id)
    assert failed.status == "Failed"
    assert failed.commands[0].command_status == "Failed"


def test_timed_out_action(harness: Harness, client: DefenderClient) -> None:
    action = run(client, WS001, RunScript(script_name="hang.ps1"))
    harness.clock.advance(700)
    assert client.get_action(action.id).status == "TimeOut"


def test_offline_machine_stays_pending_until_online(
    harness: Harness, client: DefenderClient
) -> None:
    action = run(client, OFFLINE)
    harness.clock.advance(600)
    assert client.get_action(action.id).status == "Pending"
    harness.sim.set_online(OFFLINE, True)
    harness.clock.advance(60)
    assert client.get_action(action.id).status == "Succeeded"


def test_cancel_and_active_action(harness: Harness, client: DefenderClient) -> None:
    assert client.active_action(WS001) is None
    action = run(client)
    active = client.active_action(WS001)
    assert active is not None and active.id == action.id
    cancelled = client.cancel_action(action.id, "wrong machine, says ann")
    assert cancelled.status == "Cancelled"
    assert cancelled.cancellation_comment == "wrong machine, says ann"
    assert client.active_action(WS001) is None
    (post,) = harness.api_requests("POST", "/api/machineactions")
    assert post.body == {"Comment": "wrong machine, says ann"}


def test_active_request_already_exists(client: DefenderClient) -> None:
    run(client)
    with pytest.raises(ActiveRequestAlreadyExists) as caught:
        run(client)
    assert (caught.value.status, caught.value.code) == (400, "ActiveRequestAlreadyExists")


@pytest.mark.parametrize(
    ("machine_id", "commands", "error", "code"),
    [
        (UNSUPPORTED, (), BadRequest, "OsPlatformNotSupported"),
        (WS001, (RunScript(script_name="missing.ps1"),), BadRequest, "InvalidInput"),
        (NO_REMEDIATION, (), Forbidden, "DisallowedOperation"),
        (machine(999), (), NotFound, "ResourceNotFound"),
    ],
)
def test_run_refusals(
    harness: Harness,
    client: DefenderClient,
    machine_id: str,
    commands: tuple[object, ...],
    error: type[Exception],
    code: str,
) -> None:
    with pytest.raises(error) as caught:
        run(client, machine_id, *commands)
    assert caught.value.code == code  # type: ignore[attr-defined]
    assert len(harness.api_requests("POST")) == 1


def test_cancel_unknown_action(client: DefenderClient) -> None:
    with pytest.raises(NotFound):
        client.cancel_action(str(uuid.uuid4()), "x")


# --- tokens ------------------------------------------------------------------------------------


def test_expired_token_is_renewed_once(harness: Harness, client: DefenderClient) -> None:
    client.get_machine(WS001)
    harness.sim.expire_tokens()
    harness.sim.clear_requests()
    client.get_machine(WS001)
    assert harness.tokens.requests == 2
    statuses = [r.path for r in harness.api_requests()]
    assert statuses == [f"/api/machines/{WS001}"] * 2  # the 401, then the retry


def test_post_after_401_creates_one_action(harness: Harness, client: DefenderClient) -> None:
    client.get_machine(WS001)
    harness.sim.expire_tokens()
    action = run(client)
    assert [a["id"] for a in harness.sim.actions()] == [action.id]
    assert len(harness.api_requests("POST")) == 2


def test_401_with_a_new_token_is_unauthorized(harness: Harness, client: DefenderClient) -> None:
    harness.sim.fault(Fault("GET", "^/api/machines/", 401, times=5))
    with pytest.raises(Unauthorized):
        client.get_machine(WS001)
    assert len(harness.api_requests()) == 2


# --- throttling, server errors, lost connections -----------------------------------------------


def test_get_honours_retry_after(harness: Harness, client: DefenderClient) -> None:
    harness.sim.fault(Fault("GET", "^/api/machines/", 429, times=2, retry_after=7))
    assert client.get_machine(WS001).id == WS001
    assert harness.waits == [7.0, 7.0]


def test_get_raises_throttled_past_the_longest_wait(
    harness: Harness, client: DefenderClient
) -> None:
    harness.sim.fault(Fault("GET", "^/api/machines/", 429, times=1, retry_after=300))
    with pytest.raises(Throttled) as caught:
        client.get_machine(WS001)
    assert caught.value.retry_after == 300
    assert harness.waits == []


def test_post_429_is_raised_not_retried(harness: Harness, client: DefenderClient) -> None:
    harness.sim.fault(Fault("POST", "runliveresponse", 429, retry_after=12))
    with pytest.raises(Throttled) as caught:
        run(client)
    assert caught.value.retry_after == 12
    assert len(harness.api_requests("POST")) == 1
    assert harness.waits == []


def test_run_rate_limit_from_the_simulator() -> None:
    with running_harness(build_scenario(runs_per_minute=2)) as harness, harness.client() as client:
        run(client, machine(100))
        run(client, machine(101))
        with pytest.raises(Throttled) as caught:
            run(client, machine(102))
        assert 0 < caught.value.retry_after <= 60


def test_get_5xx_is_retried_with_backoff(harness: Harness, client: DefenderClient) -> None:
    harness.sim.fault(Fault("GET", "^/api/machines/", 503, times=2))
    assert client.get_machine(WS001).id == WS001
    assert len(harness.waits) == 2
    assert all(0 <= w <= 2 for w in harness.waits)


def test_get_5xx_gives_up(harness: Harness, client: DefenderClient) -> None:
    harness.sim.fault(Fault("GET", "^/api/machines/", 500, times=10))
    with pytest.raises(ServerError):
        client.get_machine(WS001)
    assert len(harness.api_requests()) == 4  # the call and three retries
    assert len(harness.waits) == 3


def test_post_5xx_is_outcome_unknown(harness: Harness, client: DefenderClient) -> None:
    harness.sim.fault(Fault("POST", "runliveresponse", 500))
    with pytest.raises(OutcomeUnknown):
        run(client)
    assert len(harness.api_requests("POST")) == 1


def test_post_dropped_is_outcome_unknown_and_reconcilable(
    harness: Harness, client: DefenderClient
) -> None:
    start = datetime.fromtimestamp(harness.clock.now(), UTC)
    harness.sim.fault(Fault("POST", "runliveresponse", 201, drop=True))
    with pytest.raises(OutcomeUnknown):
        run(client, comment="request r-42")
    assert len(harness.api_requests("POST")) == 1
    (created,) = harness.sim.actions()
    found = client.actions_for_machine(WS001, since=start)
    assert [(a.id, a.requestor_comment) for a in found] == [(created["id"], "request r-42")]


def test_cancel_dropped_is_outcome_unknown(harness: Harness, client: DefenderClient) -> None:
    action = run(client)
    harness.sim.fault(Fault("POST", "/cancel", 200, drop=True))
    with pytest.raises(OutcomeUnknown):
        client.cancel_action(action.id, "stop")
    assert client.get_action(action.id).status == "Cancelled"


def test_get_dropped_is_retried(harness: Harness, client: DefenderClient) -> None:
    harness.sim.fault(Fault("GET", "^/api/machines/", 200, times=1, drop=True))
    assert client.get_machine(WS001).id == WS001
    assert len(harness.waits) == 1


def test_get_dropped_every_time_is_transport_error(
    harness: Harness, client: DefenderClient
) -> None:
    harness.sim.fault(Fault("GET", "^/api/machines/", 200, times=10, drop=True))
    with pytest.raises(TransportError):
        client.get_machine(WS001)
    assert len(harness.api_requests()) == 4


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_post_that_cannot_connect_is_not_sent(harness: Harness) -> None:
    settings = harness.settings(api_url=f"http://127.0.0.1:{_closed_port()}")
    with harness.client(settings=settings) as client, pytest.raises(TransportError) as caught:
        run(client)
    assert not isinstance(caught.value, OutcomeUnknown)
    assert "not sent" in str(caught.value)


# --- collections -------------------------------------------------------------------------------


def test_get_actions_chunks_under_the_url_bound() -> None:
    transport = RecordingTransport()
    with running_harness() as harness, harness.client(transport=transport) as client:
        real = [run(client, machine(100 + i)).id for i in range(30)]
        ids = real + [str(uuid.uuid4()) for _ in range(90)]
        transport.urls.clear()
        found = client.get_actions(ids)
    assert sorted(found) == sorted(real)
    assert all(found[i].id == i for i in real)
    assert len(transport.urls) >= 3
    assert all(len(url) <= odata.MAX_URL_LENGTH for url in transport.urls)
    sent = " ".join(httpx.URL(u).params["$filter"] for u in transport.urls)
    assert all(f"id eq '{i}'" in sent for i in ids)


def test_get_actions_follows_next_links() -> None:
    with running_harness(build_scenario(page_size=7)) as harness, harness.client() as client:
        ids = [run(client, machine(100 + i)).id for i in range(20)]
        harness.sim.clear_requests()
        found = client.get_actions(ids)
        pages = harness.api_requests("GET", "/api/machineactions")
    assert sorted(found) == sorted(ids)
    assert len(pages) == 3
    assert pages[1].query["$skip"] == "7"


def test_get_actions_of_nothing_calls_nothing(harness: Harness, client: DefenderClient) -> None:
    assert client.get_actions([]) == {}
    assert harness.api_requests() == []


def test_list_actions_with_top_and_paging() -> None:
    with running_harness(build_scenario(page_size=4)) as harness, harness.client() as client:
        for i in range(10):
            run(client, machine(100 + i))
        assert len(client.list_actions("type eq 'LiveResponse'")) == 10
        assert len(client.list_actions("type eq 'LiveResponse'", top=6)) == 6


def test_actions_for_machine_since(harness: Harness, client: DefenderClient) -> None:
    first = run(client)
    client.cancel_action(first.id, "again")
    harness.clock.advance(3600)
    middle = datetime.fromtimestamp(harness.clock.now(), UTC)
    second = run(client)
    run(client, machine(2))
    assert {a.id for a in client.actions_for_machine(WS001)} == {first.id, second.id}
    assert [a.id for a in client.actions_for_machine(WS001, since=middle)] == [second.id]


def test_library_files(harness: Harness, client: DefenderClient) -> None:
    files = {f.file_name: f for f in client.library_files()}
    assert files["ok.ps1"].sha256 == hashlib.sha256(b"'ok'").hexdigest()
    assert files["ok.ps1"].has_parameters is True
    harness.sim.replace_library_file("ok.ps1", b"'changed'")
    changed = {f.file_name: f for f in client.library_files()}
    assert changed["ok.ps1"].sha256 == hashlib.sha256(b"'changed'").hexdigest()


# --- results -----------------------------------------------------------------------------------


def _finished(harness: Harness, client: DefenderClient, *commands: object) -> str:
    action = run(client, WS001, *commands)
    harness.clock.advance(60)
    assert client.get_action(action.id).status == "Succeeded"
    return action.id


def test_getfile_result_is_gunzipped_without_authorization(
    harness: Harness, client: DefenderClient, tmp_path: Path
) -> None:
    action_id = _finished(harness, client, GetFile(path="C:\\Temp\\a.txt"))
    result = client.download_result(action_id, 0, max_bytes=1 << 20, directory=tmp_path)
    expected = b"hello from ws-001\n" * 200
    assert result.path.parent == tmp_path
    assert result.path.read_bytes() == expected
    assert (result.size, result.compressed) == (len(expected), True)
    assert result.sha256 == hashlib.sha256(expected).hexdigest()
    (blob,) = [r for r in harness.sim.requests if r.path.startswith("/blob/")]
    assert "authorization" not in blob.headers


def test_plain_result_is_kept_as_is(
    harness: Harness, client: DefenderClient, tmp_path: Path
) -> None:
    action_id = _finished(harness, client, GetFile(path="C:\\Temp\\raw.bin"))
    result = client.download_result(action_id, 0, max_bytes=1000, directory=tmp_path)
    assert (result.path.read_bytes(), result.compressed) == (b"plain, not gzip", False)


def test_runscript_output(harness: Harness, client: DefenderClient, tmp_path: Path) -> None:
    action_id = _finished(harness, client, RunScript(script_name="ok.ps1"))
    result = client.download_result(action_id, 0, max_bytes=1 << 20, directory=tmp_path)
    output = read_runscript_output(result)
    assert (output.script_name, output.exit_code, output.script_output) == (
        "ok.ps1",
        0,
        "all good\n",
    )


def test_runscript_output_nul_padding_is_stripped(harness: Harness, client: DefenderClient) -> None:
    action_id = _finished(harness, client, RunScript(script_name="padded.ps1"))
    output = client.download_runscript_output(action_id, 0, max_bytes=1 << 20)
    assert (output.exit_code, output.script_output) == (3, "line\n")


def test_result_size_bound_leaves_no_file(
    harness: Harness, client: DefenderClient, tmp_path: Path
) -> None:
    action_id = _finished(harness, client, GetFile(path="C:\\Temp\\a.txt"))
    with pytest.raises(ResultTooLarge):
        client.download_result(action_id, 0, max_bytes=1000, directory=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_failed_download_asks_for_a_fresh_link(
    harness: Harness, client: DefenderClient, tmp_path: Path
) -> None:
    action_id = _finished(harness, client, GetFile(path="C:\\Temp\\a.txt"))
    harness.sim.fault(Fault("GET", "^/blob/", 503))
    result = client.download_result(action_id, 0, max_bytes=1 << 20, directory=tmp_path)
    assert result.size == len(b"hello from ws-001\n" * 200)
    links = [r for r in harness.api_requests("GET") if "DownloadLink" in r.path]
    assert len(links) == 2


def test_putfile_has_no_result(harness: Harness, client: DefenderClient) -> None:
    action_id = _finished(
        harness, client, PutFile(file_name="tool.exe"), RunScript(script_name="ok.ps1")
    )
    with pytest.raises(BadRequest):
        client.result_link(action_id, 0)


def test_links_and_tokens_are_never_logged(
    harness: Harness, client: DefenderClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    action_id = _finished(harness, client, GetFile(path="C:\\Temp\\a.txt"))
    link = client.result_link(action_id, 0)
    result = client.download_result(action_id, 0, max_bytes=1 << 20)
    result.path.unlink()
    harness.sim.fault(Fault("GET", "^/api/machines/", 404))
    with pytest.raises(NotFound):
        client.get_machine(WS001)
    ours = [r for r in caplog.records if not r.name.startswith("commands.simulator")]
    text = "\n".join(r.getMessage() for r in ours)  # our side: the client, httpx, httpcore
    token = harness.tokens.token()
    assert token not in text
    assert httpx.URL(link).query.decode() not in text
    assert "sig=" not in text
    assert f"GET /api/machines/{WS001} -> 404" in text


def test_corrupt_gzip_result_is_a_result_error(tmp_path: Path) -> None:
    broken = gzip.compress(b"x" * 5000)[:-12]
    scenario = build_scenario()
    files = dict(scenario.machines[0].files)
    files["C:\\Temp\\broken.gz"] = SimFile(content=b"x", raw_result=broken)
    machines = [SimMachine(**{**scenario.machines[0].model_dump(), "files": files})]
    with (
        running_harness(build_scenario(machines=machines)) as harness,
        harness.client() as client,
    ):
        action_id = _finished(harness, client, GetFile(path="C:\\Temp\\broken.gz"))
        with pytest.raises(ResultError):
            client.download_result(action_id, 0, max_bytes=1 << 20, directory=tmp_path)
    assert list(tmp_path.iterdir()) == []
