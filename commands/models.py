"""Live response commands and the ordered sequence Defender accepts in one action.

Each rule lives in one small checker (``check_*``) that raises ``CommandError`` with a
message meant for the analyst who typed the value; the pydantic models call the same
checkers, so the text syntax, the modal and JSON loading all refuse the same things
with the same words.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from commands.errors import CommandError

__all__ = [
    "KIND_ORDER",
    "MAX_ARGS_LENGTH",
    "MAX_COMMANDS",
    "MAX_NAME_LENGTH",
    "MAX_PATH_LENGTH",
    "Command",
    "CommandSequence",
    "GetFile",
    "PutFile",
    "RunScript",
    "check_args",
    "check_library_name",
    "check_machine_id",
    "check_order",
    "check_path",
]

MAX_COMMANDS = 10
MAX_NAME_LENGTH = 255
MAX_ARGS_LENGTH = 1000
MAX_PATH_LENGTH = 1024

# Defender runs an action's commands in this order; a type may repeat.
KIND_ORDER: tuple[str, ...] = ("PutFile", "RunScript", "GetFile")

_LIBRARY_NAME = re.compile(r"[A-Za-z0-9._-]+")
_MACHINE_ID = re.compile(r"[0-9a-fA-F]{40}")
_WINDOWS_DRIVE = re.compile(r"[A-Za-z]:[\\/]")
_UNC = re.compile(r"\\\\[^\\/]+[\\/][^\\/]+")
# Control characters other than tab: they cannot be typed in one line and often hide tricks.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")


def _describe_control(value: str) -> str:
    found = _CONTROL.search(value)
    assert found is not None
    char = found.group()
    names = {
        "\x00": "a NUL character",
        "\n": "a line break",
        "\r": "a line break",
        "\x85": "a line break",
        "\u2028": "a line break",
        "\u2029": "a paragraph break",
    }
    return names.get(char, f"the control character U+{ord(char):04X}")


def check_library_name(value: str, what: str = "file name") -> str:
    """A library file name: letters, digits, '-', '_' and '.' only."""
    if not value:
        raise CommandError(f"the {what} is empty")
    if len(value) > MAX_NAME_LENGTH:
        raise CommandError(f"the {what} is {len(value)} characters long; at most {MAX_NAME_LENGTH}")
    if not _LIBRARY_NAME.fullmatch(value):
        bad = next(c for c in value if not _LIBRARY_NAME.fullmatch(c))
        raise CommandError(
            f"the {what} {value!r} has {bad!r}: library file names use only letters, digits,"
            " '-', '_' and '.'"
        )
    if set(value) == {"."}:
        raise CommandError(f"the {what} {value!r} is not a file name")
    return value


def check_args(value: str) -> str:
    """Script arguments: one line of bounded length."""
    if _CONTROL.search(value):
        raise CommandError(f"the script arguments contain {_describe_control(value)}; use one line")
    if len(value) > MAX_ARGS_LENGTH:
        raise CommandError(
            f"the script arguments are {len(value)} characters long; at most {MAX_ARGS_LENGTH}"
        )
    return value


def check_path(value: str) -> str:
    """A GetFile path: absolute (Windows drive, UNC or POSIX), one line, bounded."""
    if not value:
        raise CommandError("the path is empty")
    if _CONTROL.search(value):
        raise CommandError(f"the path contains {_describe_control(value)}")
    if len(value) > MAX_PATH_LENGTH:
        raise CommandError(f"the path is {len(value)} characters long; at most {MAX_PATH_LENGTH}")
    if not (_WINDOWS_DRIVE.match(value) or _UNC.match(value) or value.startswith("/")):
        raise CommandError(
            f"the path '{value}' is not absolute: use a drive (C:\\dir\\file), a UNC path"
            " (\\\\server\\share\\file) or a POSIX path (/var/log/file)"
        )
    return value


def check_machine_id(value: str) -> str:
    """A Defender machine id: 40 hexadecimal characters, returned in lower case."""
    if not _MACHINE_ID.fullmatch(value):
        raise CommandError(f"{value!r} is not a machine id (40 hexadecimal characters)")
    return value.lower()


class _Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def params(self) -> list[dict[str, str]]:
        raise NotImplementedError

    @property
    def value(self) -> str:
        """The command's main value as shown to people (file name, script and args, path)."""
        raise NotImplementedError


class PutFile(_Command):
    """Copy a library file to the machine's working folder."""

    kind: Literal["PutFile"] = "PutFile"
    file_name: str

    @field_validator("file_name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_library_name(value)

    def params(self) -> list[dict[str, str]]:
        return [{"key": "FileName", "value": self.file_name}]

    @property
    def value(self) -> str:
        return self.file_name


class RunScript(_Command):
    """Run a library script, with one optional argument string."""

    kind: Literal["RunScript"] = "RunScript"
    script_name: str
    args: str | None = None

    @field_validator("script_name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_library_name(value, "script name")

    @field_validator("args")
    @classmethod
    def _args(cls, value: str | None) -> str | None:
        # Empty arguments and no arguments are the same request to Defender.
        return check_args(value) if value else None

    def params(self) -> list[dict[str, str]]:
        params = [{"key": "ScriptName", "value": self.script_name}]
        if self.args is not None:
            params.append({"key": "Args", "value": self.args})
        return params

    @property
    def value(self) -> str:
        return self.script_name if self.args is None else f"{self.script_name} {self.args}"


class GetFile(_Command):
    """Collect a file from the machine."""

    kind: Literal["GetFile"] = "GetFile"
    path: str

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return check_path(value)

    def params(self) -> list[dict[str, str]]:
        return [{"key": "Path", "value": self.path}]

    @property
    def value(self) -> str:
        return self.path


Command = Annotated[PutFile | RunScript | GetFile, Field(discriminator="kind")]


def check_order(commands: tuple[PutFile | RunScript | GetFile, ...] | list[Any]) -> None:
    """Refuse a sequence Defender would refuse: 1 to 10 commands, PutFile, RunScript, GetFile."""
    if not commands:
        raise CommandError("no commands: give at least one (putfile, runscript or getfile)")
    if len(commands) > MAX_COMMANDS:
        raise CommandError(
            f"{len(commands)} commands; one live response action takes at most {MAX_COMMANDS}"
        )
    highest = 0
    for position, command in enumerate(commands, start=1):
        rank = KIND_ORDER.index(command.kind)
        if rank < highest:
            first, blocker = next(
                (p, c) for p, c in enumerate(commands, start=1) if KIND_ORDER.index(c.kind) > rank
            )
            raise CommandError(
                f"{command.kind} {command.value} comes after command"
                f" {first} ({blocker.kind} {blocker.value}): Defender runs PutFile commands"
                " first, then RunScript, then GetFile; move it up",
                position=position,
            )
        highest = rank


class CommandSequence(BaseModel):
    """The ordered commands of one live response action."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    commands: tuple[Command, ...]

    @model_validator(mode="after")
    def _order(self) -> CommandSequence:
        check_order(self.commands)
        return self

    @classmethod
    def of(cls, *commands: PutFile | RunScript | GetFile) -> CommandSequence:
        """Build a sequence, raising ``CommandError`` (not a pydantic error) when it is invalid."""
        check_order(list(commands))
        return cls(commands=commands)

    def __len__(self) -> int:
        return len(self.commands)

    def library_files(self) -> list[str]:
        """The library files the sequence uses, in order, without repeats."""
        names: list[str] = []
        for command in self.commands:
            if isinstance(command, PutFile):
                name = command.file_name
            elif isinstance(command, RunScript):
                name = command.script_name
            else:
                continue
            if name not in names:
                names.append(name)
        return names

    def to_request(self, comment: str) -> dict[str, Any]:
        """The exact body of ``POST /api/machines/{id}/runliveresponse``."""
        return {
            "Commands": [{"type": c.kind, "params": c.params()} for c in self.commands],
            "Comment": comment,
        }
