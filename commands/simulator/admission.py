"""Whether Defender takes a new live response action: library, device group, platform,
one action per machine, and the cap on concurrent sessions."""

from __future__ import annotations

from collections.abc import Container, Sequence

from commands.simulator.errors import SimError
from commands.simulator.limits import format_retry_after
from commands.simulator.scenario import SimMachine
from commands.simulator.validation import RunRequest

__all__ = ["admit"]


def _check_library(request: RunRequest, library: Container[str]) -> None:
    for command in request.commands:
        name = command.param("FileName") or command.param("ScriptName")
        if name is not None and name not in library:
            raise SimError(400, "InvalidInput", f"File {name} does not exist in the library")


def admit(
    machine: SimMachine,
    request: RunRequest,
    library: Container[str],
    active: Sequence[tuple[str, float]],
    max_sessions: int,
    now: float,
    scale: float,
) -> None:
    """Raise ``SimError`` unless the action may start; ``active`` is (machine id, ends at)."""
    _check_library(request, library)
    if not machine.remediation:
        raise SimError(
            403,
            "DisallowedOperation",
            f"Live response is not allowed on machines of device group {machine.rbac_group_name}",
        )
    if not machine.supported:
        raise SimError(
            400, "OsPlatformNotSupported", f"Live response does not support {machine.os_platform}"
        )
    if any(machine_id == machine.id for machine_id, _ in active):
        raise SimError(
            400,
            "ActiveRequestAlreadyExists",
            f"Machine {machine.id} already has an active live response request",
        )
    if len(active) >= max_sessions:
        soonest = min(ends_at for _, ends_at in active)
        retry = format_retry_after(soonest - now, scale)
        raise SimError(
            429,
            "TooManyRequests",
            f"{len(active)} live response sessions are active; the limit is {max_sessions}",
            retry_after=retry,
        )
