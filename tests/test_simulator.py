"""The Defender simulator, driven over real HTTP with httpx and a manual clock."""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from commands.simulator import (
    TOKEN_MARKER,
    Fault,
    ManualClock,
    ScaledClock,
    Scenario,
    SimFile,
    SimLibraryFile,
    SimMachine,
    SimScript,
    SimulatorServer,
    demo_scenario,
)
from commands.simulator.cli import load_scenario, serve_simulator

TENANT = "00000000-0000-0000-0000-000000000001"
SCOPE = "https://api.securitycenter.microsoft.com/.default"
ACTIVE = f"{1:040x}"
OFFLINE = f"{2:040x}"
NO_REMEDIATION = f"{3:040x}"
UNSUPPORTED = f"{4:040x}"
SPARE = [f"{n:040x}" for n in range(10, 40)]  # more active machines, for limits and paging
# Built once: every httpx.Client would otherwise load the CA bundle again (60 ms each).
_TLS = ssl.create_default_context()


def client(base_url: str = "") -> httpx.Client:
    return httpx.Client(base_url=base_url, timeout=5, verify=_TLS)


def put(name: str) -> dict[str, Any]:
    return {"type": "PutFile", "params": [{"key": "FileName", "value": name}]}


def script(name: str, args: str | None = None) -> dict[str, Any]:
    params = [{"key": "ScriptName", "value": name}]
    if args is not None:
        params.append({"key": "Args", "value": args})
    return {"type": "RunScript", "params": params}


def get(path: str) -> dict[str, Any]:
    return {"type": "GetFile", "params": [{"key": "Path", "value": path}]}


def build_scenario(**overrides: Any) -> Scenario:
    machines = [
        SimMachine(
            id=ACTIVE,
            computer_dns_name="ws-001.contoso.com",
            files={
                "C:\\Temp\\a.txt": b"hello from ws-001\n" * 20,
                "C:\\Temp\\raw.bin": SimFile(content=b"x", raw_result=b"not gzip"),
            },
        ),
        SimMachine(
            id=OFFLINE, computer_dns_name="laptop-002.contoso.com", health_status="Inactive"
        ),
        SimMachine(id=NO_REMEDIATION, computer_dns_name="dc-003.contoso.com", remediation=False),
        SimMachine(id=UNSUPPORTED, computer_dns_name="old-004.contoso.com", supported=False),
        *(
            SimMachine(id=m, computer_dns_name=f"spare-{i:02d}.contoso.com")
            for i, m in enumerate(SPARE)
        ),
    ]
    settings: dict[str, Any] = {
        "machines": machines,
        "library": [
            SimLibraryFile(file_name="tool.exe", content=b"MZ tool"),
            SimLibraryFile(file_name="ok.ps1", content=b"'ok'", description="works"),
            SimLibraryFile(file_name="fail.ps1", content=b"throw"),
            SimLibraryFile(file_name="hang.ps1", content=b"sleep 9999"),
            SimLibraryFile(file_name="raw.ps1", content=b"raw"),
        ],
        "scripts": {
            "ok.ps1": SimScript(seconds=5, output="all good\n", errors="", exit_code=0),
            "fail.ps1": SimScript(seconds=3, fail=True, errors="boom"),
            "hang.ps1": SimScript(timeout=True),
            "raw.ps1": SimScript(seconds=1, raw_result=b"\x00\x01 not json"),
        },
        "command_seconds": 2.0,
        "pending_seconds": 1.0,
        "script_timeout_seconds": 600,
        "runs_per_minute": 100,
    }
    settings.update(overrides)
    return Scenario(**settings)


@dataclass
class Env:
    sim: SimulatorServer
    clock: ManualClock
    api: httpx.Client

    def token(self, **form: str) -> httpx.Response:
        fields = {
            "grant_type": "client_credentials",
            "client_id": "lrbot-sim",
            "client_secret": "sim-secret",
            "scope": SCOPE,
            **form,
        }
        fields = {k: v for k, v in fields.items() if v != "-"}
        return self.api.post(f"/{TENANT}/oauth2/v2.0/token", data=fields)

    def sign_in(self) -> None:
        answer = self.token()
        assert answer.status_code == 200, answer.text
        self.api.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def run(self, machine: str, *commands: dict[str, Any], comment: str = "test") -> httpx.Response:
        body = {"Commands": list(commands), "Comment": comment}
        return self.api.post(f"/api/machines/{machine}/runliveresponse", json=body)

    def started(self, machine: str, *commands: dict[str, Any]) -> str:
        answer = self.run(machine, *commands)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def action(self, action_id: str) -> dict[str, Any]:
        answer = self.api.get(f"/api/machineactions/{action_id}")
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def statuses(self, action_id: str) -> tuple[str, list[str]]:
        action = self.action(action_id)
        return action["status"], [c["commandStatus"] for c in action["commands"]]

    def link(self, action_id: str, index: int) -> httpx.Response:
        path = f"/api/machineactions/{action_id}/GetLiveResponseResultDownloadLink(index={index})"
        return self.api.get(path)

    def actions(self, **params: str) -> httpx.Response:
        return self.api.get("/api/machineactions", params=params)


@contextmanager
def simulator(**overrides: Any) -> Iterator[Env]:
    clock = ManualClock()
    with (
        SimulatorServer(build_scenario(**overrides), clock=clock) as sim,
        client(sim.base_url) as api,
    ):
        env = Env(sim, clock, api)
        env.sign_in()
        yield env


@pytest.fixture
def env() -> Iterator[Env]:
    with simulator() as env:
        yield env


def error_code(answer: httpx.Response) -> str:
    error = answer.json()["error"]
    uuid.UUID(error["target"])  # a fresh correlation id
    assert error["message"]
    return str(error["code"])


# --- sign-in ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client"),
        ({"client_secret": "-"}, 401, "invalid_client"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"client_id": "someone-else"}, 400, "unauthorized_client"),
        ({"scope": "https://api.securitycenter.microsoft.com/Machine.Read"}, 400, "invalid_scope"),
        ({"scope": "-"}, 400, "invalid_request"),
    ],
)
def test_token_refusals(env: Env, form: dict[str, str], status: int, error: str) -> None:
    answer = env.token(**form)
    assert answer.status_code == status
    body = answer.json()
    assert body["error"] == error
    assert body["error_description"].startswith("AADSTS")
    assert "sim-secret" not in answer.text


def test_tokens_are_jwt_shaped_with_the_claims_a_client_reads(env: Env) -> None:
    token = env.token().json()["access_token"]
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["typ"] == "JWT"
    assert claims["roles"] == ["Machine.LiveResponse", "Machine.Read.All", "Library.Manage"]
    assert (claims["tid"], claims["appid"]) == (TENANT, "lrbot-sim")
    assert claims["aud"] == "https://api.securitycenter.microsoft.com"
    assert claims["exp"] > time.time()
    assert signature.startswith(TOKEN_MARKER)  # the leak guard's needle


def test_token_roles_and_consent_come_from_the_scenario() -> None:
    with simulator(token_roles=("Machine.Read.All",)) as env:
        payload = env.token().json()["access_token"].split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        assert claims["roles"] == ["Machine.Read.All"]
    clock = ManualClock()
    with (
        SimulatorServer(build_scenario(admin_consent=False), clock=clock) as sim,
        client(sim.base_url) as api,
    ):
        answer = Env(sim, clock, api).token()
        assert answer.status_code == 400
        assert answer.json()["error_codes"] == [65001]
        assert "access_token" not in answer.json()


def test_token_for_unknown_tenant(env: Env) -> None:
    answer = env.api.post("/11111111-0000-0000-0000-000000000000/oauth2/v2.0/token", data={})
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_tenant"


def test_token_answer_and_discovery(env: Env) -> None:
    token = env.token().json()
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 3600
    doc = env.api.get(f"/{TENANT}/v2.0/.well-known/openid-configuration").json()
    assert doc["token_endpoint"] == f"{env.sim.base_url}/{TENANT}/oauth2/v2.0/token"
    assert doc["token_endpoint"] == env.sim.token_url
    assert doc["authorization_endpoint"].startswith("http://127.0.0.1:")
    assert doc["issuer"] == f"{env.sim.authority_host}/{TENANT}/v2.0"


def test_api_needs_a_valid_token(env: Env) -> None:
    with client(env.sim.base_url) as anonymous:
        answer = anonymous.get(f"/api/machines/{ACTIVE}")
        assert answer.status_code == 401
        assert error_code(answer) == "Unauthorized"
        forged = anonymous.get("/api/machines", headers={"Authorization": "Bearer forged"})
        assert forged.status_code == 401


def test_tokens_expire_with_the_clock(env: Env) -> None:
    assert env.api.get(f"/api/machines/{ACTIVE}").status_code == 200
    env.clock.advance(3599)
    assert env.api.get(f"/api/machines/{ACTIVE}").status_code == 200
    env.clock.advance(1)
    answer = env.api.get(f"/api/machines/{ACTIVE}")
    assert answer.status_code == 401
    assert error_code(answer) == "Unauthorized"
    env.sign_in()
    assert env.api.get(f"/api/machines/{ACTIVE}").status_code == 200


def test_expire_tokens(env: Env) -> None:
    env.sim.expire_tokens()
    assert env.api.get("/api/libraryfiles").status_code == 401
    env.sign_in()
    assert env.api.get("/api/libraryfiles").status_code == 200


def test_requests_are_recorded_without_secrets(env: Env) -> None:
    env.run(ACTIVE, script("ok.ps1"), comment="why")
    recorded = env.sim.requests
    token_request = recorded[0]
    assert token_request.path == f"/{TENANT}/oauth2/v2.0/token"
    assert token_request.body["client_secret"] == "[redacted]"
    run = recorded[-1]
    assert (run.method, run.path) == ("POST", f"/api/machines/{ACTIVE}/runliveresponse")
    assert run.headers["authorization"] == "Bearer [redacted]"
    assert run.body == {"Commands": [script("ok.ps1")], "Comment": "why"}


# --- machines and library ----------------------------------------------------------------------


def test_machine_by_id_and_by_name(env: Env) -> None:
    machine = env.api.get(f"/api/machines/{ACTIVE}").json()
    assert machine["computerDnsName"] == "ws-001.contoso.com"
    assert machine["healthStatus"] == "Active"
    for key in ("osPlatform", "version", "onboardingStatus", "lastSeen", "rbacGroupName"):
        assert key in machine
    assert machine["lastSeen"].endswith("Z")
    named = env.api.get(
        "/api/machines", params={"$filter": "computerDnsName eq 'WS-001.contoso.com'"}
    )
    assert [m["id"] for m in named.json()["value"]] == [ACTIVE]
    prefix = env.api.get(
        "/api/machines", params={"$filter": "startswith(computerDnsName,'spare-0')"}
    )
    assert len(prefix.json()["value"]) == 10
    missing = env.api.get(f"/api/machines/{'f' * 40}")
    assert missing.status_code == 404
    assert error_code(missing) == "ResourceNotFound"


def test_health_follows_set_online(env: Env) -> None:
    assert env.api.get(f"/api/machines/{OFFLINE}").json()["healthStatus"] == "Inactive"
    env.sim.set_online(OFFLINE, True)
    assert env.api.get(f"/api/machines/{OFFLINE}").json()["healthStatus"] == "Active"


def test_library_files_and_replacement(env: Env) -> None:
    files = {f["fileName"]: f for f in env.api.get("/api/libraryfiles").json()["value"]}
    assert files["ok.ps1"]["sha256"] == hashlib.sha256(b"'ok'").hexdigest()
    for key in ("description", "creationTime", "lastUpdatedTime", "createdBy", "hasParameters"):
        assert key in files["ok.ps1"]
    env.clock.advance(10)
    env.sim.replace_library_file("ok.ps1", b"'changed'")
    after = {f["fileName"]: f for f in env.api.get("/api/libraryfiles").json()["value"]}
    assert after["ok.ps1"]["sha256"] == hashlib.sha256(b"'changed'").hexdigest()
    assert after["ok.ps1"]["lastUpdatedTime"] > files["ok.ps1"]["lastUpdatedTime"]
    assert after["ok.ps1"]["creationTime"] == files["ok.ps1"]["creationTime"]


def test_unknown_path(env: Env) -> None:
    answer = env.api.get("/api/nothing-here")
    assert answer.status_code == 404
    assert error_code(answer) == "NotFound"


# --- running actions -----------------------------------------------------------------------------


def test_run_answers_201_with_empty_commands(env: Env) -> None:
    answer = env.run(ACTIVE, put("tool.exe"), script("ok.ps1", "-x"), comment="IR-1 by alice")
    assert answer.status_code == 201
    action = answer.json()
    assert action["commands"] == []
    assert action["status"] == "Pending"
    assert action["type"] == "LiveResponse"
    assert action["requestor"] == "lrbot-sim"
    assert action["requestorComment"] == "IR-1 by alice"
    assert action["machineId"] == ACTIVE
    again = env.action(action["id"])
    assert [c["index"] for c in again["commands"]] == [0, 1]
    assert again["commands"][1]["command"] == script("ok.ps1", "-x")
    assert all(
        c["commandStatus"] == "Created" and c["startTime"] is None for c in again["commands"]
    )


def test_progression_to_succeeded(env: Env) -> None:
    action_id = env.started(ACTIVE, put("tool.exe"), script("ok.ps1"), get("C:\\Temp\\a.txt"))
    # Timeline: pending 1 s, PutFile 2 s, RunScript 5 s, GetFile 2 s.
    expected = [
        (0.5, "Pending", ["Created", "Created", "Created"]),
        (0.5, "InProgress", ["InProgress", "Created", "Created"]),
        (2.0, "InProgress", ["Completed", "InProgress", "Created"]),
        (5.0, "InProgress", ["Completed", "Completed", "InProgress"]),
        (2.0, "Succeeded", ["Completed", "Completed", "Completed"]),
    ]
    updates = []
    for step, status, commands in expected:
        env.clock.advance(step)
        assert env.statuses(action_id) == (status, commands)
        updates.append(env.action(action_id)["lastUpdateDateTimeUtc"])
    assert updates == sorted(updates) and len(set(updates)) == 5
    final = env.action(action_id)
    assert final["errorHResult"] == 0
    for command in final["commands"]:
        assert command["startTime"] < command["endTime"]
        assert command["errors"] == []


def test_failing_script_stops_the_rest(env: Env) -> None:
    action_id = env.started(ACTIVE, put("tool.exe"), script("fail.ps1"), get("C:\\Temp\\a.txt"))
    env.clock.advance(1 + 2 + 3)
    action = env.action(action_id)
    assert action["status"] == "Failed"
    assert [c["commandStatus"] for c in action["commands"]] == ["Completed", "Failed", "Created"]
    assert action["commands"][1]["errors"] == ["boom"]
    assert action["errorHResult"] != 0
    env.clock.advance(100)
    assert env.statuses(action_id) == ("Failed", ["Completed", "Failed", "Created"])


def test_missing_file_fails_getfile(env: Env) -> None:
    action_id = env.started(
        ACTIVE, get("C:\\Temp\\a.txt"), get("C:\\nope.txt"), get("c:\\temp\\A.TXT")
    )
    env.clock.advance(10)
    action = env.action(action_id)
    assert action["status"] == "Failed"
    assert [c["commandStatus"] for c in action["commands"]] == ["Completed", "Failed", "Created"]
    assert "C:\\nope.txt" in action["commands"][1]["errors"][0]


def test_script_timeout(env: Env) -> None:
    action_id = env.started(ACTIVE, script("hang.ps1"), get("C:\\Temp\\a.txt"))
    env.clock.advance(1 + 599)
    assert env.statuses(action_id) == ("InProgress", ["InProgress", "Created"])
    env.clock.advance(1)
    action = env.action(action_id)
    assert action["status"] == "TimeOut"
    assert [c["commandStatus"] for c in action["commands"]] == ["Failed", "Created"]
    assert "timed out" in action["commands"][0]["errors"][0]


def test_offline_machine_queues_until_online(env: Env) -> None:
    action_id = env.started(OFFLINE, script("ok.ps1"))
    env.clock.advance(3600)
    env.sign_in()  # the first token expired meanwhile
    assert env.statuses(action_id) == ("Pending", ["Created"])
    env.sim.set_online(OFFLINE, True)
    env.clock.advance(0.5)
    assert env.statuses(action_id) == ("Pending", ["Created"])
    env.clock.advance(0.5)
    assert env.statuses(action_id) == ("InProgress", ["InProgress"])
    env.clock.advance(5)
    assert env.statuses(action_id) == ("Succeeded", ["Completed"])


def test_queued_action_times_out(env: Env) -> None:
    action_id = env.started(OFFLINE, script("ok.ps1"))
    env.clock.advance(2 * 3600 - 1)
    env.sign_in()  # the first token expired meanwhile
    assert env.statuses(action_id)[0] == "Pending"
    env.clock.advance(1)
    assert env.statuses(action_id) == ("TimeOut", ["Created"])
    env.sim.set_online(OFFLINE, True)
    env.clock.advance(60)
    assert env.statuses(action_id)[0] == "TimeOut"
    # The machine is free again.
    assert env.run(OFFLINE, script("ok.ps1")).status_code == 201


def test_one_active_action_per_machine(env: Env) -> None:
    env.started(ACTIVE, script("ok.ps1"))
    second = env.run(ACTIVE, script("ok.ps1"))
    assert second.status_code == 400
    assert error_code(second) == "ActiveRequestAlreadyExists"
    env.clock.advance(10)
    assert env.run(ACTIVE, script("ok.ps1")).status_code == 201


@pytest.mark.parametrize(
    ("machine", "status", "code"),
    [
        ("f" * 40, 404, "ResourceNotFound"),
        (NO_REMEDIATION, 403, "DisallowedOperation"),
        (UNSUPPORTED, 400, "OsPlatformNotSupported"),
    ],
)
def test_machine_refusals(env: Env, machine: str, status: int, code: str) -> None:
    answer = env.run(machine, script("ok.ps1"))
    assert answer.status_code == status
    assert error_code(answer) == code
    assert env.sim.actions() == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"commands": [script("ok.ps1")], "Comment": "c"}, "MissingRequiredParameter"),
        ({"Commands": [script("ok.ps1")]}, "MissingRequiredParameter"),
        ({"Commands": [], "Comment": "c"}, "InvalidInput"),
        ({"Commands": [get("C:\\a")] * 11, "Comment": "c"}, "InvalidInput"),
        ({"Commands": "RunScript", "Comment": "c"}, "InvalidRequestBody"),
        ({"Commands": [{"type": "Reboot", "params": []}], "Comment": "c"}, "InvalidInput"),
        ({"Commands": [{"type": "runscript", "params": []}], "Comment": "c"}, "InvalidInput"),
        (
            {"Commands": [{"type": "RunScript", "params": []}], "Comment": "c"},
            "MissingRequiredParameter",
        ),
        ({"Commands": [{"type": "GetFile"}], "Comment": "c"}, "MissingRequiredParameter"),
        (
            {
                "Commands": [{"type": "GetFile", "params": [{"key": "path", "value": "C:\\a"}]}],
                "Comment": "c",
            },
            "InvalidInput",
        ),
        ({"Commands": [script("ok.ps1"), put("tool.exe")], "Comment": "c"}, "InvalidInput"),
        ({"Commands": [get("C:\\a"), script("ok.ps1")], "Comment": "c"}, "InvalidInput"),
        ({"Commands": [script("missing.ps1")], "Comment": "c"}, "InvalidInput"),
        ({"Commands": [put("missing.exe")], "Comment": "c"}, "InvalidInput"),
        ({"Commands": [script("ok.ps1")], "Comment": 5}, "InvalidRequestBody"),
        ([script("ok.ps1")], "InvalidRequestBody"),
    ],
)
def test_body_validation(env: Env, body: Any, code: str) -> None:
    answer = env.api.post(f"/api/machines/{ACTIVE}/runliveresponse", json=body)
    assert answer.status_code == 400, answer.text
    assert error_code(answer) == code


def test_invalid_json_body(env: Env) -> None:
    answer = env.api.post(
        f"/api/machines/{ACTIVE}/runliveresponse",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert error_code(answer) == "InvalidRequestBody"


def test_repeated_types_in_order_are_fine(env: Env) -> None:
    answer = env.run(
        ACTIVE,
        put("tool.exe"),
        put("ok.ps1"),
        script("ok.ps1"),
        script("ok.ps1", "-a"),
        get("C:\\x"),
        get("C:\\y"),
    )
    assert answer.status_code == 201


# --- limits ------------------------------------------------------------------------------------


def test_run_rate_limit_with_retry_after() -> None:
    with simulator(runs_per_minute=10) as env:
        for machine in SPARE[:10]:
            env.started(machine, script("ok.ps1"))
            env.clock.advance(1)
        refused = env.run(SPARE[10], script("ok.ps1"))
        assert refused.status_code == 429
        assert error_code(refused) == "TooManyRequests"
        assert refused.headers["Retry-After"] == "50"  # the first call leaves the window at 60 s
        env.clock.advance(49.5)
        assert env.run(SPARE[10], script("ok.ps1")).headers["Retry-After"] == "0.5"
        env.clock.advance(0.5)
        assert env.run(SPARE[10], script("ok.ps1")).status_code == 201


def test_recorded_requests_carry_arrival_time_and_answer_status() -> None:
    with simulator(runs_per_minute=1) as env:
        env.started(SPARE[0], script("ok.ps1"))
        env.clock.advance(5)
        assert env.run(SPARE[1], script("ok.ps1")).status_code == 429
        *_, accepted, refused = env.sim.requests
        assert (accepted.status, refused.status) == (201, 429)
        assert refused.at - accepted.at == 5


def test_retry_after_is_in_real_seconds() -> None:
    clock = ManualClock(scale=120.0)  # 120 simulated seconds per real second
    with (
        SimulatorServer(build_scenario(runs_per_minute=1), clock=clock) as sim,
        client(sim.base_url) as api,
    ):
        env = Env(sim, clock, api)
        env.sign_in()
        assert env.token().json()["expires_in"] == 30  # 3600 simulated seconds
        env.started(SPARE[0], script("ok.ps1"))
        refused = env.run(SPARE[1], script("ok.ps1"))
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "0.5"


def test_session_cap() -> None:
    with simulator(max_sessions=3) as env:
        env.started(OFFLINE, script("ok.ps1"))  # queued: counts as a session
        env.started(SPARE[0], script("ok.ps1"))
        env.started(SPARE[1], script("ok.ps1"))
        refused = env.run(SPARE[2], script("ok.ps1"))
        assert refused.status_code == 429
        assert error_code(refused) == "TooManyRequests"
        assert refused.headers["Retry-After"] == "6"  # SPARE[0] ends after 1 + 5 s
        env.clock.advance(6)
        assert env.run(SPARE[2], script("ok.ps1")).status_code == 201


def test_api_call_budget() -> None:
    with simulator(api_calls_per_minute=5, api_calls_per_hour=8) as env:
        for _ in range(5):
            assert env.api.get(f"/api/machines/{ACTIVE}").status_code == 200
        refused = env.api.get("/api/libraryfiles")
        assert refused.status_code == 429
        assert error_code(refused) == "TooManyRequests"
        assert refused.headers["Retry-After"] == "60"
        # Runs have their own limit and do not spend this budget.
        assert env.run(ACTIVE, script("ok.ps1")).status_code == 201
        env.clock.advance(60)
        for _ in range(3):
            assert env.api.get("/api/libraryfiles").status_code == 200
        hourly = env.api.get("/api/libraryfiles")
        assert hourly.status_code == 429
        assert hourly.headers["Retry-After"] == "3540"


# --- cancel ---------------------------------------------------------------------------------------


def test_cancel_pending_action(env: Env) -> None:
    action_id = env.started(OFFLINE, script("ok.ps1"))
    env.clock.advance(30)
    answer = env.api.post(f"/api/machineactions/{action_id}/cancel", json={"Comment": "wrong host"})
    assert answer.status_code == 200
    action = answer.json()
    assert action["status"] == "Cancelled"
    assert action["cancellationComment"] == "wrong host"
    assert action["cancellationRequestor"] == "lrbot-sim"
    assert action["cancellationDateTimeUtc"] == action["lastUpdateDateTimeUtc"]
    env.sim.set_online(OFFLINE, True)
    env.clock.advance(60)
    assert env.statuses(action_id) == ("Cancelled", ["Created"])
    again = env.api.post(f"/api/machineactions/{action_id}/cancel", json={"Comment": "again"})
    assert again.status_code == 400
    assert error_code(again) == "BadRequest"


def test_cancel_running_action_stops_it(env: Env) -> None:
    action_id = env.started(ACTIVE, put("tool.exe"), script("ok.ps1"), get("C:\\Temp\\a.txt"))
    env.clock.advance(4)
    env.api.post(f"/api/machineactions/{action_id}/cancel", json={"Comment": "stop"})
    env.clock.advance(60)
    status, commands = env.statuses(action_id)
    assert status == "Cancelled"
    assert commands == ["Completed", "Failed", "Created"]


def test_cancel_refusals(env: Env) -> None:
    unknown = env.api.post(f"/api/machineactions/{uuid.uuid4()}/cancel", json={"Comment": "x"})
    assert unknown.status_code == 404
    assert error_code(unknown) == "ResourceNotFound"
    action_id = env.started(ACTIVE, script("ok.ps1"))
    env.clock.advance(10)
    final = env.api.post(f"/api/machineactions/{action_id}/cancel", json={"Comment": "late"})
    assert final.status_code == 400


# --- results --------------------------------------------------------------------------------------


def test_run_script_result_link(env: Env) -> None:
    action_id = env.started(ACTIVE, put("tool.exe"), script("ok.ps1"))
    env.clock.advance(1)
    early = env.link(action_id, 1)
    assert early.status_code == 400
    assert error_code(early) == "BadRequest"
    env.clock.advance(10)
    putfile = env.link(action_id, 0)
    assert putfile.status_code == 400
    assert error_code(putfile) == "InvalidInput"
    assert env.link(action_id, 7).status_code == 400
    link = env.link(action_id, 1).json()["value"]
    assert link.startswith(f"{env.sim.base_url}/blob/") and "se=" in link and "sig=" in link
    with client() as plain:
        document = json.loads(plain.get(link).content)
        assert document["script_name"] == "ok.ps1"
        assert document["exit_code"] == 0
        assert document["script_errors"] == ""
        assert document["script_output"].startswith("all good\n")
        assert document["script_output"].endswith("\u0000")
        assert document["script_output"].rstrip("\u0000") == "all good\n"
        with_auth = plain.get(link, headers={"Authorization": "Bearer x"})
        assert with_auth.status_code == 403
        tampered = plain.get(link.replace("sig=", "sig=x"))
        assert tampered.status_code == 404


def test_links_expire_and_can_be_renewed(env: Env) -> None:
    action_id = env.started(ACTIVE, script("ok.ps1"))
    env.clock.advance(10)
    old = env.link(action_id, 0).json()["value"]
    with client() as plain:
        env.clock.advance(1799)
        assert plain.get(old).status_code == 200
        env.clock.advance(1)
        expired = plain.get(old)
        assert expired.status_code == 403
        assert b"AuthenticationFailed" in expired.content
        env.sign_in()
        fresh = env.link(action_id, 0).json()["value"]
        assert fresh != old
        assert plain.get(fresh).status_code == 200


def test_get_file_results_and_raw_overrides() -> None:
    with simulator() as env:
        action_id = env.started(
            ACTIVE, script("raw.ps1"), get("C:\\Temp\\a.txt"), get("C:\\Temp\\raw.bin")
        )
        env.clock.advance(20)
        assert env.statuses(action_id)[0] == "Succeeded"
        with client() as plain:
            raw_script = plain.get(env.link(action_id, 0).json()["value"]).content
            zipped = plain.get(env.link(action_id, 1).json()["value"]).content
            raw_file = plain.get(env.link(action_id, 2).json()["value"]).content
        assert raw_script == b"\x00\x01 not json"
        assert zipped[:2] == b"\x1f\x8b"
        assert gzip.decompress(zipped) == b"hello from ws-001\n" * 20
        assert raw_file == b"not gzip"


# --- listing actions ------------------------------------------------------------------------------


def test_filters_over_actions() -> None:
    with simulator() as env:
        ids = [env.started(machine, script("ok.ps1")) for machine in SPARE[:12]]
        env.clock.advance(100)
        late = env.started(ACTIVE, script("ok.ps1"))

        def found(text: str) -> list[str]:
            answer = env.actions(**{"$filter": text})
            assert answer.status_code == 200, answer.text
            return [a["id"] for a in answer.json()["value"]]

        assert found(" or ".join(f"id eq '{i}'" for i in ids[:11])) == ids[:11]
        assert found(f"id in ('{ids[0]}','{ids[5]}')") == [ids[0], ids[5]]
        assert found(f"machineId eq '{SPARE[3]}'") == [ids[3]]
        assert found("status eq 'Pending'") == [late]
        assert len(found("status ne 'Pending'")) == 12
        assert found(
            f"machineId eq '{ACTIVE}' and (status eq 'Pending' or status eq 'InProgress')"
        ) == [late]
        assert len(found("type eq 'LiveResponse'")) == 13
        assert found("creationDateTimeUtc ge 2026-01-05T09:01:00Z") == [late]
        assert found("creationDateTimeUtc ge '2026-01-05T09:01:00Z'") == [late]
        assert (
            found("requestor eq 'lrbot-sim' and creationDateTimeUtc lt 2026-01-05T09:01:00Z") == ids
        )
        bad = env.actions(**{"$filter": "id eq"})
        assert bad.status_code == 400
        assert error_code(bad) == "ODataError"
        assert error_code(env.actions(**{"$orderby": "id"})) == "ODataError"


def test_paging_with_next_links() -> None:
    with simulator(page_size=5) as env:
        ids = [env.started(machine, script("ok.ps1")) for machine in SPARE[:12]]
        first = env.actions().json()
        assert first["@odata.context"].endswith("#MachineActions")
        seen = [a["id"] for a in first["value"]]
        link = first.get("@odata.nextLink")
        pages = 1
        while link:
            assert link.startswith(env.sim.base_url + "/api/machineactions?")
            following = env.api.get(link).json()
            seen += [a["id"] for a in following["value"]]
            link = following.get("@odata.nextLink")
            pages += 1
        assert seen == ids and pages == 3
        top = env.actions(**{"$top": "7", "$skip": "1", "$filter": "status eq 'Pending'"}).json()
        assert [a["id"] for a in top["value"]] == ids[1:6]
        rest = env.api.get(top["@odata.nextLink"]).json()
        assert [a["id"] for a in rest["value"]] == ids[6:8]
        assert "@odata.nextLink" not in rest


# --- faults ---------------------------------------------------------------------------------------


def test_status_faults(env: Env) -> None:
    env.sim.fault(Fault(method="GET", path_regex=r"^/api/machineactions", status=503, times=2))
    action_id = env.started(ACTIVE, script("ok.ps1"))
    for _ in range(2):
        answer = env.api.get(f"/api/machineactions/{action_id}")
        assert answer.status_code == 503
        assert error_code(answer) == "ServiceUnavailable"
    assert env.api.get(f"/api/machineactions/{action_id}").status_code == 200
    env.sim.fault(Fault(path_regex="libraryfiles", status=429, retry_after=2.5))
    throttled = env.api.get("/api/libraryfiles")
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "2.5"
    assert error_code(throttled) == "TooManyRequests"


def test_dropped_post_still_creates_the_action(env: Env) -> None:
    env.sim.fault(Fault(method="POST", path_regex=r"/runliveresponse$", drop=True))
    with pytest.raises(httpx.RemoteProtocolError):
        env.run(ACTIVE, script("ok.ps1"), comment="request 42")
    mine = env.actions(**{"$filter": f"machineId eq '{ACTIVE}'"}).json()["value"]
    assert [a["requestorComment"] for a in mine] == ["request 42"]
    assert env.run(ACTIVE, script("ok.ps1")).status_code == 400  # it is active


def test_a_held_post_creates_the_action_and_answers_once_released(env: Env) -> None:
    held = env.sim.fault(Fault(method="POST", path_regex=r"/runliveresponse$", hold=True))
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(env.run, ACTIVE, script("ok.ps1"), comment="request 43")
        assert held.arrived.wait(5)
        [action] = env.sim.actions()  # it exists while its answer waits
        assert action["requestorComment"] == "request 43"
        assert not answer.done()
        held.release()
        assert answer.result(timeout=5).json()["id"] == action["id"]
    assert env.actions().status_code == 200  # only the one request was held


@pytest.mark.parametrize("tls", [False, True])
def test_a_held_answer_is_never_sent_once_the_client_hangs_up(tls: bool) -> None:
    with SimulatorServer(build_scenario(), clock=ManualClock(), tls=tls) as sim:
        release = threading.Event()
        held = sim.fault(Fault(method="GET", path_regex="^/api/machineactions$", hold=release))
        assert held.released is release
        url = urlsplit(sim.base_url)
        raw = socket.create_connection((url.hostname, url.port), timeout=5)
        if tls:
            trust = ssl.create_default_context(cafile=sim.ca_pem_path)
            raw = trust.wrap_socket(raw, server_hostname=url.hostname)
        with raw as caller:
            caller.sendall(b"GET /api/machineactions HTTP/1.1\r\nHost: sim\r\n\r\n")
            assert held.arrived.wait(5)
            # The client is gone (a process killed mid-call); TLS state kept to read what comes.
            socket.socket.shutdown(caller, socket.SHUT_WR)
            assert caller.recv(100) == b""  # closed without an answer, though not released
        assert [r.path for r in sim.requests] == ["/api/machineactions"]


def test_actions_snapshot(env: Env) -> None:
    action_id = env.started(ACTIVE, script("ok.ps1"))
    env.clock.advance(10)
    (snapshot,) = env.sim.actions()
    assert snapshot["id"] == action_id
    assert snapshot["status"] == "Succeeded"


# --- TLS and MSAL ---------------------------------------------------------------------------------


def _rsa_certificate() -> tuple[str, str]:
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lrbot")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def _msal_token(sim: SimulatorServer, credential: Any) -> dict[str, Any]:
    import msal

    app = msal.ConfidentialClientApplication(
        "lrbot-sim",
        authority=f"{sim.authority_host}/{TENANT}",
        client_credential=credential,
        instance_discovery=False,
    )
    result: dict[str, Any] = app.acquire_token_for_client(scopes=[SCOPE])
    return result


def test_tls_with_msal_secret_and_certificate(monkeypatch: pytest.MonkeyPatch) -> None:
    key_pem, cert_pem = _rsa_certificate()
    scenario = build_scenario(client_certificate_pem=cert_pem)
    with SimulatorServer(scenario, clock=ManualClock(), tls=True) as sim:
        assert sim.base_url.startswith("https://127.0.0.1:")
        assert sim.ca_pem_path is not None
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", sim.ca_pem_path)
        by_secret = _msal_token(sim, "sim-secret")
        assert "access_token" in by_secret, by_secret
        by_cert = _msal_token(sim, {"private_key": key_pem, "public_certificate": cert_pem})
        assert "access_token" in by_cert, by_cert
        wrong = _msal_token(sim, "not-the-secret")
        assert wrong.get("error") == "invalid_client"
        trust = ssl.create_default_context(cafile=sim.ca_pem_path)
        with httpx.Client(base_url=sim.base_url, verify=trust) as api:
            headers = {"Authorization": f"Bearer {by_cert['access_token']}"}
            assert api.get(f"/api/machines/{ACTIVE}", headers=headers).status_code == 200


def test_forged_client_assertion_is_refused() -> None:
    _, cert_pem = _rsa_certificate()
    header = base64.urlsafe_b64encode(b'{"alg":"RS256"}').rstrip(b"=").decode()
    claims = base64.urlsafe_b64encode(b'{"iss":"lrbot-sim"}').rstrip(b"=").decode()
    form = {
        "grant_type": "client_credentials",
        "client_id": "lrbot-sim",
        "scope": SCOPE,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": f"{header}.{claims}.c2ln",
    }
    scenario = build_scenario(client_certificate_pem=cert_pem)
    with SimulatorServer(scenario, clock=ManualClock()) as sim, client() as plain:
        answer = plain.post(sim.token_url, data=form)
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"
    assert "signature" in answer.json()["error_description"]


# --- the demo -------------------------------------------------------------------------------------


def test_demo_scenario_runs_end_to_end() -> None:
    scenario = demo_scenario()
    names = [m.computer_dns_name for m in scenario.machines]
    assert {"ws-010.contoso.com", "ws-011.contoso.com"} <= set(names)
    assert {f.file_name for f in scenario.library} >= {
        "collect-triage.ps1",
        "memdump.ps1",
        "slow.ps1",
        "procdump64.exe",
    }
    clock = ManualClock()
    with SimulatorServer(scenario, clock=clock) as sim, client(sim.base_url) as api:
        env = Env(sim, clock, api)
        env.sign_in()
        host = scenario.machines[0].id
        action_id = env.started(
            host,
            put("procdump64.exe"),
            script("collect-triage.ps1"),
            get("C:\\Windows\\Temp\\triage.zip"),
        )
        clock.advance(60)
        assert env.statuses(action_id)[0] == "Succeeded"
        memdump = env.started(host, put("procdump64.exe"), script("memdump.ps1", "lsass"))
        clock.advance(60)
        assert env.statuses(memdump)[0] == "Failed"
        slow = env.started(host, script("slow.ps1"))
        clock.advance(700)
        assert env.statuses(slow)[0] == "TimeOut"


# --- configuration, clocks and the command line --------------------------------------------------


def test_scenario_checks_machine_ids_and_duplicates() -> None:
    with pytest.raises(ValueError, match="40 lowercase"):
        SimMachine(id="A" * 40, computer_dns_name="x")
    with pytest.raises(ValueError, match="share an id"):
        Scenario(machines=[SimMachine(id=ACTIVE, computer_dns_name=n) for n in ("a", "b")])


def test_clocks() -> None:
    clock = ManualClock()
    start = clock.now()
    clock.advance(2.5)
    assert clock.now() == start + 2.5
    with pytest.raises(ValueError):
        clock.advance(-1)
    fast = ScaledClock(scale=1000.0)
    assert fast.scale == 1000.0
    assert fast.now() <= fast.now()


def test_scenario_file_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tenant.json"
    path.write_text(
        json.dumps(
            {
                "machines": [
                    {
                        "id": ACTIVE,
                        "computer_dns_name": "ws-001.contoso.com",
                        "files": {"C:\\a.txt": "text content"},
                    }
                ],
                "library": [{"file_name": "ok.ps1", "content": "'ok'"}],
                "scripts": {"ok.ps1": {"seconds": 1, "output": "fine"}},
            }
        ),
        encoding="utf-8",
    )
    scenario = load_scenario(str(path))
    assert scenario.machines[0].files["C:\\a.txt"].content == b"text content"
    assert scenario.library[0].content == b"'ok'"
    assert load_scenario(None) == demo_scenario()
    path.write_text('{"machines": [{"id": "nope"}]}', encoding="utf-8")
    args = argparse.Namespace(
        scenario=str(path), host="127.0.0.1", port=0, time_scale=1.0, tls=False
    )
    assert serve_simulator(args) == 2
    assert "cannot load the scenario" in capsys.readouterr().err
