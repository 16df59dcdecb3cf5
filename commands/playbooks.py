"""Playbooks: named, reviewed command sequences with parameters, and their expansion.

A playbook's template is written in the text syntax of ``commands.syntax`` with
``{name}`` placeholders. A parameter value is pasted into that text, so a value is refused
when it could change the command around it (a ``;`` or a line break starts another
command, a quote changes where a value ends, ``$``, backticks, ``|`` or ``&`` mean
something to the script's shell): what the reviewers approved is what runs, with only the
blanks filled. Everything here is pure; ``bot.playbook_file`` reads playbooks from TOML.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from commands.errors import CommandError
from commands.models import CommandSequence
from commands.syntax import parse_sequence

__all__ = [
    "FORBIDDEN_CHARACTERS",
    "Parameter",
    "Playbook",
    "PlaybookError",
    "expand",
    "format_params",
    "parse_params",
    "placeholders",
]

NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")
MAX_VALUE = 200
# Characters that end a value, start a command or mean something to a shell.
FORBIDDEN_CHARACTERS = frozenset(";\"'`$|&<>{}\r\n\t\x00")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class PlaybookError(CommandError):
    """A playbook or its parameters that cannot make a command sequence; says which and why."""


@dataclass(frozen=True)
class Parameter:
    """One blank in a playbook: what it means, its default, and what a value must look like."""

    name: str
    description: str = ""
    default: str | None = None
    pattern: str | None = None  # a regular expression the whole value must match

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True)
class Playbook:
    name: str
    description: str
    template: str
    parameters: tuple[Parameter, ...] = ()

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)

    def usage(self) -> str:
        """``name param=<…> [param=default]``: how to type it."""
        parts = [self.name]
        for p in self.parameters:
            parts.append(f"{p.name}=<{p.name}>" if p.required else f"[{p.name}={p.default}]")
        return " ".join(parts)


def placeholders(template: str) -> list[str]:
    """The parameter names a template uses, in order of first use."""
    seen: list[str] = []
    for match in _PLACEHOLDER.finditer(template):
        if match.group(1) not in seen:
            seen.append(match.group(1))
    return seen


def parse_params(text: str) -> dict[str, str]:
    """``key=value key2=value2`` (blank-separated) into a dict, or a ``PlaybookError``.

    Values hold no blanks and no quotes: a playbook parameter is a name, a number or a
    path piece, and keeping the form this plain leaves no quoting rules to get wrong.
    """
    params: dict[str, str] = {}
    for word in text.split():
        key, equals, value = word.partition("=")
        if not equals:
            raise PlaybookError(f"{_show(word)} is not name=value: write each parameter so")
        if not NAME.fullmatch(key):
            raise PlaybookError(
                f"{_show(key)} is not a parameter name (lower-case letters, digits, - and _)"
            )
        if key in params:
            raise PlaybookError(f"parameter {key} is given twice")
        params[key] = value
    return params


def format_params(params: Mapping[str, str]) -> str:
    """The inverse of ``parse_params`` for values it accepts."""
    return " ".join(f"{k}={v}" for k, v in params.items())


def check_value(parameter: Parameter, value: str) -> None:
    """Raise ``PlaybookError`` when ``value`` may not fill ``parameter``."""
    if not value:
        raise PlaybookError(f"parameter {parameter.name} is empty: give it a value")
    if len(value) > MAX_VALUE:
        raise PlaybookError(f"parameter {parameter.name} is longer than {MAX_VALUE} characters")
    bad = sorted({c for c in value if c in FORBIDDEN_CHARACTERS or not c.isprintable()})
    if bad:
        shown = " ".join(repr(c) for c in bad)
        raise PlaybookError(
            f"parameter {parameter.name} holds {shown}, which would change the command"
        )
    if parameter.pattern is not None and not re.fullmatch(parameter.pattern, value):
        raise PlaybookError(
            f"parameter {parameter.name}={_show(value)} does not match {parameter.pattern}"
            + (f" ({parameter.description})" if parameter.description else "")
        )


def expand(playbook: Playbook, params: Mapping[str, str]) -> CommandSequence:
    """The playbook's commands with ``params`` (and defaults) filled in, checked like typed text."""
    unknown = [k for k in params if playbook.parameter(k) is None]
    if unknown:
        known = ", ".join(p.name for p in playbook.parameters) or "none"
        raise PlaybookError(
            f"playbook {playbook.name} has no parameter {unknown[0]} (its parameters: {known})"
        )
    values: dict[str, str] = {}
    for parameter in playbook.parameters:
        value = params.get(parameter.name, parameter.default)
        if value is None:
            raise PlaybookError(
                f"playbook {playbook.name} needs {parameter.name}"
                + (f": {parameter.description}" if parameter.description else "")
            )
        check_value(parameter, value)
        values[parameter.name] = value
    text = _PLACEHOLDER.sub(lambda m: values[m.group(1)], playbook.template)
    try:
        return parse_sequence(text)
    except CommandError as exc:
        raise PlaybookError(
            f"playbook {playbook.name} expands to an invalid sequence: {exc}"
        ) from exc


def _show(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "…")
