"""Reading the playbooks file (``LRBOT_PLAYBOOKS``, TOML) into ``Playbook`` objects.

Like the policy file, it is read and checked once at start-up, and every mistake names the
file and the key at fault: a playbook that could not expand is found by whoever deploys it,
not by an analyst at 3 a.m. Each playbook's template is expanded with its defaults (or a
sample value for a required parameter) so a broken template fails here.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from commands.errors import CommandError, ConfigurationError
from commands.playbooks import NAME, Parameter, Playbook, check_value, expand, placeholders

__all__ = ["load_playbooks", "parse_playbooks"]

MAX_PLAYBOOKS = 100  # a static_select holds at most 100 options
_PLAYBOOK_KEYS = ("description", "commands", "parameters")
_PARAMETER_KEYS = ("description", "default", "pattern", "example")


def load_playbooks(path: Path | None) -> dict[str, Playbook]:
    """The playbooks in ``path`` by name; none when no file is configured."""
    if path is None:
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"LRBOT_PLAYBOOKS: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"LRBOT_PLAYBOOKS: {path} is not UTF-8 text") from None
    return parse_playbooks(text, str(path))


def parse_playbooks(text: str, source: str = "playbooks") -> dict[str, Playbook]:
    def fail(key: str, message: str) -> ConfigurationError:
        return ConfigurationError(f"LRBOT_PLAYBOOKS {source}: {key}: {message}")

    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"LRBOT_PLAYBOOKS {source}: not valid TOML: {exc}") from None
    _known(document, ("playbooks",), "", fail)
    tables = document.get("playbooks", {})
    if not isinstance(tables, dict) or not tables:
        raise fail("playbooks", "no [playbooks.<name>] table: define at least one playbook")
    if len(tables) > MAX_PLAYBOOKS:
        raise fail("playbooks", f"at most {MAX_PLAYBOOKS} playbooks, not {len(tables)}")
    playbooks: dict[str, Playbook] = {}
    for name, table in tables.items():
        key = f"playbooks.{name}"
        if not NAME.fullmatch(name):
            raise fail(key, "a playbook name is lower-case letters, digits, - and _ (at most 40)")
        if not isinstance(table, dict):
            raise fail(key, "must be a table")
        playbooks[name] = _playbook(name, table, key, fail)
    return playbooks


def _playbook(name: str, table: Mapping[str, Any], key: str, fail: Any) -> Playbook:
    _known(table, _PLAYBOOK_KEYS, key + ".", fail)
    description = table.get("description", "")
    if not isinstance(description, str):
        raise fail(key + ".description", "must be a string")
    template = table.get("commands")
    if not isinstance(template, str) or not template.strip():
        raise fail(key + ".commands", "is missing: the commands, in the /liveresponse syntax")
    raw_params = table.get("parameters", {})
    if not isinstance(raw_params, dict):
        raise fail(key + ".parameters", "must be a table of parameters")
    parameters: list[Parameter] = []
    samples: dict[str, str] = {}
    for pname, ptable in raw_params.items():
        pkey = f"{key}.parameters.{pname}"
        if not NAME.fullmatch(pname):
            raise fail(pkey, "a parameter name is lower-case letters, digits, - and _")
        if not isinstance(ptable, dict):
            raise fail(pkey, "must be a table (description, default, pattern, example)")
        _known(ptable, _PARAMETER_KEYS, pkey + ".", fail)
        for field in _PARAMETER_KEYS:
            if field in ptable and not isinstance(ptable[field], str):
                raise fail(f"{pkey}.{field}", "must be a string")
        pattern = ptable.get("pattern")
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise fail(pkey + ".pattern", f"is not a regular expression: {exc}") from None
        parameter = Parameter(
            name=pname,
            description=ptable.get("description", ""),
            default=ptable.get("default"),
            pattern=pattern,
        )
        sample = ptable.get("example", parameter.default)
        if sample is None:
            raise fail(pkey, "a parameter without a default needs an example value to check")
        try:
            check_value(parameter, sample)
        except CommandError as exc:
            raise fail(pkey, str(exc)) from None
        parameters.append(parameter)
        samples[pname] = sample
    used = placeholders(template)
    for placeholder in used:
        if placeholder not in samples:
            raise fail(key + ".commands", f"uses {{{placeholder}}}, which is no parameter")
    unused = [p for p in samples if p not in used]
    if unused:
        raise fail(f"{key}.parameters.{unused[0]}", "is never used in commands")
    playbook = Playbook(name, description.strip(), template.strip(), tuple(parameters))
    try:
        expand(playbook, samples)
    except CommandError as exc:
        raise fail(key + ".commands", str(exc)) from None
    return playbook


def _known(table: Mapping[str, Any], known: tuple[str, ...], prefix: str, fail: Any) -> None:
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = (
                f"; did you mean {prefix}{close[0]}?" if close else f"; known: {', '.join(known)}"
            )
            raise fail(prefix + key, f"is not a playbook setting{hint}")
