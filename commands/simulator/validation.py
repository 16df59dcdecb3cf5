"""Checks on a ``runliveresponse`` body, refused the way Defender refuses it.

Keys are case-sensitive (``Commands``, ``Comment``, ``type``, ``params``, ``key``,
``value``, and the parameter names). Codes: ``InvalidRequestBody`` for a malformed shape,
``MissingRequiredParameter`` for an absent key, ``InvalidInput`` for a wrong value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from commands.simulator.errors import SimError

__all__ = ["MAX_COMMANDS", "RequestedCommand", "RunRequest", "parse_run_request"]

MAX_COMMANDS = 10
_ORDER = ("PutFile", "RunScript", "GetFile")
# type -> (required parameters, optional parameters)
_PARAMS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "PutFile": (frozenset({"FileName"}), frozenset()),
    "RunScript": (frozenset({"ScriptName"}), frozenset({"Args"})),
    "GetFile": (frozenset({"Path"}), frozenset()),
}


@dataclass(frozen=True)
class RequestedCommand:
    type: str
    params: tuple[tuple[str, str], ...]

    def param(self, key: str) -> str | None:
        return next((value for name, value in self.params if name == key), None)


@dataclass(frozen=True)
class RunRequest:
    commands: tuple[RequestedCommand, ...]
    comment: str


def _bad(code: str, message: str) -> SimError:
    return SimError(400, code, message)


def _params(raw: Any, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, list):
        raise _bad("InvalidRequestBody", f"{where}: 'params' must be an array")
    params: list[tuple[str, str]] = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise _bad("InvalidRequestBody", f"{where}: each parameter is {{'key', 'value'}}")
        value = item.get("value")
        if not isinstance(value, str):
            raise _bad(
                "InvalidRequestBody", f"{where}: parameter {item['key']} needs a string value"
            )
        params.append((item["key"], value))
    return tuple(params)


def _command(raw: Any, index: int) -> RequestedCommand:
    where = f"Commands[{index}]"
    if not isinstance(raw, dict):
        raise _bad("InvalidRequestBody", f"{where} must be an object")
    if "type" not in raw:
        raise _bad("MissingRequiredParameter", f"{where}: 'type' is required")
    kind = raw["type"]
    if kind not in _PARAMS:
        raise _bad("InvalidInput", f"{where}: unknown command type {kind!r}")
    if "params" not in raw:
        raise _bad("MissingRequiredParameter", f"{where}: 'params' is required")
    params = _params(raw["params"], where)
    required, optional = _PARAMS[kind]
    keys = [key for key, _ in params]
    for key in keys:
        if key not in required | optional:
            raise _bad("InvalidInput", f"{where}: {kind} has no parameter {key!r}")
        if keys.count(key) > 1:
            raise _bad("InvalidInput", f"{where}: parameter {key!r} is given twice")
    for key in sorted(required - set(keys)):
        raise _bad("MissingRequiredParameter", f"{where}: {kind} requires parameter {key!r}")
    for key, value in params:
        if key in required and not value.strip():
            raise _bad("InvalidInput", f"{where}: parameter {key!r} is empty")
    return RequestedCommand(kind, params)


def _check_order(commands: tuple[RequestedCommand, ...]) -> None:
    highest = 0
    for index, command in enumerate(commands):
        rank = _ORDER.index(command.type)
        if rank < highest:
            raise _bad(
                "InvalidInput",
                f"Commands[{index}]: {command.type} after {_ORDER[highest]}; commands must be"
                " ordered PutFile, then RunScript, then GetFile",
            )
        highest = rank


def parse_run_request(body: Any) -> RunRequest:
    """The commands and comment of a ``runliveresponse`` body, or a 400 ``SimError``."""
    if not isinstance(body, dict):
        raise _bad("InvalidRequestBody", "The request body must be a JSON object")
    if "Commands" not in body:
        raise _bad("MissingRequiredParameter", "'Commands' is required (keys are case-sensitive)")
    raw = body["Commands"]
    if not isinstance(raw, list):
        raise _bad("InvalidRequestBody", "'Commands' must be an array")
    if not 1 <= len(raw) <= MAX_COMMANDS:
        raise _bad(
            "InvalidInput", f"'Commands' must hold 1 to {MAX_COMMANDS} commands, not {len(raw)}"
        )
    if "Comment" not in body:
        raise _bad("MissingRequiredParameter", "'Comment' is required (keys are case-sensitive)")
    if not isinstance(body["Comment"], str):
        raise _bad("InvalidRequestBody", "'Comment' must be a string")
    commands = tuple(_command(item, index) for index, item in enumerate(raw))
    _check_order(commands)
    return RunRequest(commands, body["Comment"])
