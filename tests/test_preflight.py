"""Preflight findings: what an approver is told, and what refuses a request at submit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.preflight import Finding, blocking, preflight, supports_live_response
from commands.models import CommandSequence, GetFile, PutFile, RunScript
from commands.wire import LibraryFile, Machine, MachineAction

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
COMMANDS = CommandSequence(
    commands=(
        PutFile(file_name="tool.exe"),
        RunScript(script_name="ok.ps1", args="-Days 3"),
        GetFile(path="C:\\Temp\\a.txt"),
    )
)
LIBRARY = {
    "tool.exe": LibraryFile(fileName="tool.exe", sha256="a" * 64),
    "ok.ps1": LibraryFile(fileName="ok.ps1", sha256="b" * 64),
}


def machine(**fields: Any) -> Machine:
    wire = {
        "id": "1" * 40,
        "computerDnsName": "ws-001",
        "osPlatform": "Windows11",
        "version": "22H2",
        "healthStatus": "Active",
        "onboardingStatus": "Onboarded",
        "lastSeen": (NOW - timedelta(minutes=5)).isoformat(),
    }
    return Machine.model_validate(wire | fields)


def run(m: Machine | None = None, active: MachineAction | None = None, **kw: Any) -> list[Finding]:
    return preflight(
        m or machine(),
        active,
        kw.get("commands", COMMANDS),
        kw.get("library", LIBRARY),
        NOW,
        120,
    )


def test_a_healthy_device_passes_every_check_and_hears_the_time_limits() -> None:
    findings = run()
    assert all(f.level == "ok" for f in findings)
    texts = [f.text for f in findings]
    assert f"tool.exe in the library, sha256 {'a' * 64}." in texts
    assert f"ok.ps1 in the library, sha256 {'b' * 64}." in texts
    assert texts[-1] == (
        "Time limits: Defender stops each script after 10 min; other commands are allowed"
        " 5 min; the run is flagged after 25 min; it must start within 120 min of approval."
    )


@pytest.mark.parametrize(
    ("fields", "level", "words"),
    [
        ({"onboardingStatus": "InsufficientInfo"}, "block", "not onboarded"),
        ({"onboardingStatus": None}, "warn", "does not say whether"),
        ({"healthStatus": "Inactive"}, "warn", "not Active (health: Inactive)"),
        ({"lastSeen": (NOW - timedelta(days=3)).isoformat()}, "warn", "3.0 days ago"),
        ({"lastSeen": None}, "warn", "no last-seen time"),
        ({"osPlatform": "Windows7", "version": "SP1"}, "block", "does not support Windows7"),
        ({"osPlatform": "WindowsServer2008R2"}, "block", "does not support"),
        ({"osPlatform": "WindowsServer2012"}, "block", "does not support"),
        ({"osPlatform": "Quantum9"}, "warn", "not known to support"),
    ],
)
def test_device_findings(fields: dict[str, Any], level: str, words: str) -> None:
    findings = [f for f in run(machine(**fields)) if f.level != "ok"]
    assert [(f.level, words in f.text) for f in findings] == [(level, True)]


def test_an_active_action_is_a_warning_naming_whose_it_is() -> None:
    action = MachineAction.model_validate(
        {"id": "act-1", "status": "InProgress", "requestor": "other-tool@contoso.com"}
    )
    [warning] = [f for f in run(active=action) if f.level != "ok"]
    assert warning.level == "warn"
    assert "(`act-1`), InProgress, started by other-tool@contoso.com" in warning.text


def test_missing_or_unhashed_library_files_block() -> None:
    library = {"tool.exe": LibraryFile(fileName="tool.exe", sha256=None)}
    refused = blocking(run(library=library))
    assert [f.text for f in refused] == [
        "Defender reports no SHA-256 for tool.exe.",
        "ok.ps1 is not in the live response library.",
    ]


def test_getfile_only_needs_no_library_and_no_script_limit() -> None:
    only = CommandSequence(commands=(GetFile(path="C:\\a"),))
    findings = run(commands=only, library={})
    assert not blocking(findings)
    assert "stops each script" not in findings[-1].text


@pytest.mark.parametrize(
    ("platform", "supported"),
    [
        ("Windows10", True),
        ("windows 11", True),
        ("WindowsServer2012R2", True),
        ("Linux", True),
        ("macOS", True),
        ("Windows8.1", False),
        ("iOS", False),
        (None, None),
        ("Windows12", None),
    ],
)
def test_supported_platforms(platform: str | None, supported: bool | None) -> None:
    assert supports_live_response(platform) is supported
