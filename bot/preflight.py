"""Preflight: what is known about a run before anyone is asked to approve it.

Pure: the device, its active action, the library and the commands in; a list of findings
out, each ``ok``, ``warn`` (an approver should know) or ``block`` (the run cannot work, so
the request is refused at submit with the reason, instead of failing at Defender later).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from bot.time_limits import OTHER_COMMAND_SECONDS, RUNSCRIPT_LIMIT_SECONDS, expected_seconds
from commands.errors import CommandError
from commands.models import CommandSequence, check_order
from commands.wire import LibraryFile, Machine, MachineAction

__all__ = ["Finding", "Level", "blocking", "preflight", "supports_live_response"]

Level = Literal["ok", "warn", "block"]

# Live response runs on Windows 10/11, Windows Server 2012 R2 and later, macOS and Linux.
_SUPPORTED = frozenset(
    {
        "windows10",
        "windows11",
        "windowsserver2012r2",
        "windowsserver2016",
        "windowsserver2019",
        "windowsserver2022",
        "windowsserver2025",
        "linux",
        "macos",
    }
)
_UNSUPPORTED_PREFIXES = ("windows7", "windows8", "windowsxp", "windowsserver2008", "ios", "android")
STALE_AFTER_HOURS = 24


@dataclass(frozen=True)
class Finding:
    level: Level
    text: str

    def as_json(self) -> dict[str, str]:
        return {"level": self.level, "text": self.text}


def supports_live_response(os_platform: str | None) -> bool | None:
    """True or False when the platform is known, None when Defender named something new."""
    if not os_platform:
        return None
    key = os_platform.replace(" ", "").casefold()
    if key in _SUPPORTED:
        return True
    if key == "windowsserver2012" or key.startswith(_UNSUPPORTED_PREFIXES):
        return False
    return None


def blocking(findings: Iterable[Finding]) -> list[Finding]:
    """What stops a request from running at all: refused at submit, before any approval."""
    return [f for f in findings if f.level == "block"]


def preflight(
    machine: Machine,
    active: MachineAction | None,
    commands: CommandSequence,
    library: Mapping[str, LibraryFile],
    now: datetime,
    start_deadline_minutes: float,
) -> list[Finding]:
    """Every check, in the order an approver reads them."""
    return [
        _onboarding(machine),
        _health(machine),
        _last_seen(machine, now),
        _os(machine),
        _active(active),
        *_library(commands, library),
        _order(commands),
        _limits(commands, start_deadline_minutes),
    ]


def _onboarding(machine: Machine) -> Finding:
    status = machine.onboarding_status
    if status == "Onboarded":
        return Finding("ok", "Onboarded to Defender.")
    if status is None:
        return Finding("warn", "Defender does not say whether the device is onboarded.")
    return Finding("block", f"The device is not onboarded to Defender (status: {status}).")


def _health(machine: Machine) -> Finding:
    if machine.is_active:
        return Finding("ok", "Sensor health: Active.")
    shown = machine.health_status or "unknown"
    return Finding(
        "warn", f"The device is not Active (health: {shown}): the run will queue until it connects."
    )


def _last_seen(machine: Machine, now: datetime) -> Finding:
    if machine.last_seen is None:
        return Finding("warn", "Defender has no last-seen time for the device.")
    hours = (now - machine.last_seen).total_seconds() / 3600
    when = machine.last_seen.strftime("%Y-%m-%d %H:%M UTC")
    if hours > STALE_AFTER_HOURS:
        return Finding("warn", f"Last seen {when}, {hours / 24:.1f} days ago.")
    return Finding("ok", f"Last seen {when}.")


def _os(machine: Machine) -> Finding:
    shown = " ".join(p for p in (machine.os_platform, machine.os_version) if p) or "unknown"
    supported = supports_live_response(machine.os_platform)
    if supported is False:
        return Finding(
            "block",
            f"Live response does not support {shown} (it needs Windows 10/11, Windows Server"
            " 2012 R2 or later, macOS or Linux).",
        )
    if supported is None:
        return Finding("warn", f"OS {shown}: not known to support live response.")
    return Finding("ok", f"OS {shown} supports live response.")


def _active(active: MachineAction | None) -> Finding:
    if active is None:
        return Finding("ok", "No other live response action on the device.")
    who = f", {active.status}, started by {active.requestor}" if active.requestor else ""
    return Finding(
        "warn",
        f"The device already has a live response action running (`{active.id}`){who}:"
        " this run waits for it.",
    )


def _library(commands: CommandSequence, library: Mapping[str, LibraryFile]) -> list[Finding]:
    findings = []
    for name in commands.library_files():
        file = library.get(name)
        if file is None:
            findings.append(Finding("block", f"{name} is not in the live response library."))
        elif not file.sha256:
            findings.append(Finding("block", f"Defender reports no SHA-256 for {name}."))
        else:
            findings.append(Finding("ok", f"{name} in the library, sha256 {file.sha256}."))
    return findings


def _order(commands: CommandSequence) -> Finding:
    try:
        check_order(list(commands.commands))
    except CommandError as exc:
        return Finding("block", f"Command order: {exc}")
    return Finding("ok", "Command order valid (PutFile, then RunScript, then GetFile).")


def _limits(commands: CommandSequence, start_deadline_minutes: float) -> Finding:
    parts = []
    if any(c.kind == "RunScript" for c in commands.commands):
        parts.append(f"Defender stops each script after {RUNSCRIPT_LIMIT_SECONDS // 60} min")
    if any(c.kind != "RunScript" for c in commands.commands):
        parts.append(f"other commands are allowed {OTHER_COMMAND_SECONDS // 60} min")
    parts.append(f"the run is flagged after {expected_seconds(commands) / 60:.0f} min")
    parts.append(f"it must start within {start_deadline_minutes:g} min of approval")
    return Finding("ok", "Time limits: " + "; ".join(parts) + ".")
