"""Reading the policy file (``LRBOT_POLICY``, TOML) into a ``Policy``, or a precise error.

TOML because it is in the standard library, has no implicit typing surprises (YAML's
``no`` is a boolean) and reads well for a short list of rules. Every mistake is reported
with the file and the key it is under, at start-up, so a bad policy never half-applies.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bot.policy import ANYONE, Kind, KindRule, Policy
from bot.settings import BotSettings
from commands.errors import ConfigurationError

__all__ = ["load_policy", "parse_policy", "policy_from_settings"]

MAX_APPROVALS = 5
MAX_APPROVAL_MINUTES = 7 * 24 * 60

_PRINCIPAL = re.compile(r"[UWS][A-Z0-9]{2,}")
_CHANNEL = re.compile(r"[CG][A-Z0-9]{2,}")
_PATTERN = re.compile(r"[A-Za-z0-9._*?\[\]-]+")
_TOP_KEYS = ("channels", "blocked_scripts", *[str(k) for k in Kind])
_KIND_KEYS = {
    Kind.GETFILE: ("requesters", "approvers", "approvals", "approval_minutes"),
    Kind.PUTFILE: ("requesters", "approvers", "approvals", "approval_minutes", "files"),
    Kind.RUNSCRIPT: ("requesters", "approvers", "approvals", "approval_minutes", "scripts"),
}


class _Errors:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> ConfigurationError:
        return ConfigurationError(f"LRBOT_POLICY {self.source}: {key}: {message}")


def policy_from_settings(settings: BotSettings) -> Policy:
    """The policy file if LRBOT_POLICY names one, else the simple settings' policy."""
    if settings.policy_file is not None:
        return load_policy(settings.policy_file, default_minutes=settings.approval_ttl_minutes)
    if not settings.approvers:
        # Without approvers nobody could approve, or worse, anybody could: refuse to guess.
        raise ConfigurationError(
            "LRBOT_APPROVERS: required (or LRBOT_POLICY): the Slack user ids (U…) or user"
            " groups (S…) who may approve live response"
        )
    return Policy.simple(settings.requesters, settings.approvers, settings.approval_ttl_minutes)


def load_policy(path: Path, *, default_minutes: float = 60.0) -> Policy:
    """Read and validate the policy file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"LRBOT_POLICY: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"LRBOT_POLICY: {path} is not UTF-8 text") from None
    return parse_policy(text, str(path), default_minutes=default_minutes)


def parse_policy(text: str, source: str = "policy", *, default_minutes: float = 60.0) -> Policy:
    errors = _Errors(source)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"LRBOT_POLICY {source}: not valid TOML: {exc}") from None
    _known_keys(document, _TOP_KEYS, "", errors)
    channels = _string_list(document, "channels", errors, _CHANNEL, "a Slack channel id (C…)")
    blocked = _string_list(
        document, "blocked_scripts", errors, _PATTERN, "a library file name or glob"
    )
    rules: dict[Kind, KindRule] = {}
    for kind in Kind:
        table = document.get(str(kind))
        if table is None:
            continue
        if not isinstance(table, dict):
            raise errors.fail(str(kind), f"must be a table ([{kind}]), not {_type(table)}")
        rules[kind] = _rule(kind, table, errors, default_minutes)
    if not rules:
        raise errors.fail(
            "(top level)",
            "no [getfile], [putfile] or [runscript] table: nobody could request anything",
        )
    return Policy(rules=rules, channels=channels, blocked=blocked, source=source)


def _rule(kind: Kind, table: Mapping[str, Any], errors: _Errors, minutes: float) -> KindRule:
    prefix = f"{kind}."
    _known_keys(table, _KIND_KEYS[kind], prefix, errors)
    described = 'a Slack user (U…/W…) or user group (S…) id, or "*"'
    requesters = _string_list(table, "requesters", errors, _PRINCIPAL, described, prefix, True)
    # "*" is read here so that it meets its own refusal below, not the id check's (whose
    # wording offers "*" as an option).
    approvers = _string_list(table, "approvers", errors, _PRINCIPAL, described, prefix, True)
    if not requesters:
        raise errors.fail(prefix + "requesters", "is missing or empty: nobody could request it")
    if not approvers:
        raise errors.fail(prefix + "approvers", "is missing or empty: nobody could approve it")
    if ANYONE in approvers:
        raise errors.fail(prefix + "approvers", '"*" is not allowed: name the approvers')
    approvals = table.get("approvals", 1)
    if isinstance(approvals, bool) or not isinstance(approvals, int):
        raise errors.fail(prefix + "approvals", f"must be a whole number, not {_type(approvals)}")
    if not 1 <= approvals <= MAX_APPROVALS:
        raise errors.fail(
            prefix + "approvals", f"must be from 1 to {MAX_APPROVALS}, not {approvals}"
        )
    people = [a for a in approvers if not a.startswith("S")]
    if len(people) == len(approvers) and len(people) < approvals:
        raise errors.fail(
            prefix + "approvals",
            f"needs {approvals} distinct approvers but {prefix}approvers names only {len(people)}",
        )
    lifetime = table.get("approval_minutes", minutes)
    if isinstance(lifetime, bool) or not isinstance(lifetime, int | float):
        raise errors.fail(prefix + "approval_minutes", f"must be a number, not {_type(lifetime)}")
    if not 0 < lifetime <= MAX_APPROVAL_MINUTES:
        raise errors.fail(
            prefix + "approval_minutes",
            f"must be more than 0 and at most {MAX_APPROVAL_MINUTES}, not {lifetime}",
        )
    files: tuple[str, ...] = (ANYONE,)
    key = {Kind.PUTFILE: "files", Kind.RUNSCRIPT: "scripts"}.get(kind)
    if key is not None and key in table:
        files = _string_list(
            table, key, errors, _PATTERN, "a library file name or glob", prefix, True
        )
        if not files:
            raise errors.fail(prefix + key, 'is empty: list the allowed files, or "*" for any')
    return KindRule(
        requesters=requesters,
        approvers=approvers,
        approvals=approvals,
        approval_minutes=float(lifetime),
        allowed_files=files,
    )


def _known_keys(
    table: Mapping[str, Any], known: tuple[str, ...], prefix: str, errors: _Errors
) -> None:
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = (
                f"; did you mean {prefix}{close[0]}?" if close else f"; known: {', '.join(known)}"
            )
            raise errors.fail(prefix + key, f"is not a policy setting{hint}")


def _string_list(
    table: Mapping[str, Any],
    key: str,
    errors: _Errors,
    pattern: re.Pattern[str],
    described: str,
    prefix: str = "",
    star: bool = False,
) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list):
        raise errors.fail(prefix + key, f"must be a list of strings, not {_type(value)}")
    items: list[str] = []
    for index, item in enumerate(value):
        where = f"{prefix}{key}[{index}]"
        if not isinstance(item, str):
            raise errors.fail(where, f"must be a string, not {_type(item)}")
        item = item.strip()
        if item == ANYONE and (star or pattern is _PATTERN):
            items.append(item)
            continue
        if not pattern.fullmatch(item):
            raise errors.fail(where, f"{item!r} is not {described}")
        items.append(item)
    return tuple(dict.fromkeys(items))


def _type(value: object) -> str:
    names = {bool: "true/false", int: "a number", float: "a number", str: "a string"}
    names |= {list: "a list", dict: "a table"}
    return names.get(type(value), type(value).__name__)
