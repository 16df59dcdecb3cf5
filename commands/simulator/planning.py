"""Turn requested commands into plans: how long each takes, how it ends, what it produces."""

from __future__ import annotations

import gzip
import json

from commands.simulator.scenario import Scenario, SimFile, SimMachine, SimScript
from commands.simulator.timeline import TIMEOUT_HRESULT, Plan
from commands.simulator.validation import RequestedCommand

__all__ = ["file_result", "plan_commands", "script_result"]

# HRESULTs Windows reports for these failures.
E_FAIL = -2147467259  # 0x80004005
FILE_NOT_FOUND = -2147024894  # 0x80070002


def script_result(name: str, script: SimScript) -> bytes:
    """The RunScript result document; ``script_output`` ends in NUL padding, as observed."""
    if script.raw_result is not None:
        return script.raw_result
    padding = "\u0000" * (8 + (-len(script.output) % 32))
    document = {
        "script_name": name,
        "exit_code": script.exit_code,
        "script_output": script.output + padding,
        "script_errors": script.errors,
    }
    return json.dumps(document).encode()


def file_result(file: SimFile) -> bytes:
    """The GetFile result: the file gzip-compressed (deterministically)."""
    if file.raw_result is not None:
        return file.raw_result
    return gzip.compress(file.content, mtime=0)


def _run_script(command: RequestedCommand, scenario: Scenario) -> Plan:
    name = command.param("ScriptName") or ""
    script = scenario.script(name)
    limit = scenario.script_timeout_seconds
    if script.timeout or script.seconds > limit:
        error = f"Script {name} timed out after {limit:g} seconds."
        return Plan(command.type, command.params, limit, "TimeOut", error, TIMEOUT_HRESULT)
    if script.fail:
        error = script.errors or f"Script {name} failed to run."
        return Plan(command.type, command.params, script.seconds, "Failed", error, E_FAIL)
    return Plan(command.type, command.params, script.seconds, result=script_result(name, script))


def _get_file(command: RequestedCommand, machine: SimMachine, seconds: float) -> Plan:
    path = command.param("Path") or ""
    file = machine.find_file(path)
    if file is None:
        error = f"Failed to collect {path}: the system cannot find the file specified."
        return Plan(command.type, command.params, seconds, "Failed", error, FILE_NOT_FOUND)
    return Plan(command.type, command.params, seconds, result=file_result(file))


def plan_commands(
    commands: tuple[RequestedCommand, ...], machine: SimMachine, scenario: Scenario
) -> tuple[Plan, ...]:
    """What each command will do on ``machine``, fixed when the action is created."""
    plans: list[Plan] = []
    for command in commands:
        if command.type == "RunScript":
            plans.append(_run_script(command, scenario))
        elif command.type == "GetFile":
            plans.append(_get_file(command, machine, scenario.command_seconds))
        else:
            plans.append(Plan(command.type, command.params, scenario.command_seconds))
    return tuple(plans)
