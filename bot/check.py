"""``lrbot check``'s results as data, their lines, and the exit status they add up to.

Pure: ``check_cli`` makes the calls and builds the results; this module decides how they
read and what they mean for a run. A check whose prerequisite failed is skipped with the
reason, so the first failure is the one to fix.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "OFFLINE",
    "SETTINGS",
    "TIMEOUT_SECONDS",
    "CheckResult",
    "State",
    "exit_status",
    "fail",
    "ok",
    "render",
    "skip",
    "summary",
    "warn",
]

SETTINGS = "settings"  # the check whose failure means nothing else could be read (exit 2)
TIMEOUT_SECONDS = 5.0  # each Slack or Defender call: the whole check ends in seconds
OFFLINE = "`lrbot check --offline` (the built-in Defender simulator and a stand-in Slack)"


class State(enum.StrEnum):
    OK = "ok"
    WARN = "warn"  # works, but worth knowing; a run is not stopped by it
    FAIL = "fail"  # a run needs this and it is not in place
    SKIP = "skip"  # not checked: what it depends on failed, or it does not apply


@dataclass(frozen=True)
class CheckResult:
    """One line of the report: which check, how it went, what was seen, and the fix."""

    name: str
    state: State
    detail: str
    fix: str = ""


def ok(name: str, detail: str) -> CheckResult:
    return CheckResult(name, State.OK, detail)


def warn(name: str, detail: str, fix: str = "") -> CheckResult:
    return CheckResult(name, State.WARN, detail, fix)


def fail(name: str, detail: str, fix: str = "") -> CheckResult:
    return CheckResult(name, State.FAIL, detail, fix)


def skip(name: str, reason: str) -> CheckResult:
    return CheckResult(name, State.SKIP, reason)


_LABELS = {State.OK: "ok  ", State.WARN: "WARN", State.FAIL: "FAIL", State.SKIP: "skip"}


def render(result: CheckResult) -> str:
    """One line: ``FAIL  defender token: the client secret is wrong. Fix: …``."""
    text = f"{result.name}: {result.detail}"
    if result.fix and result.state in (State.FAIL, State.WARN):
        text += f". Fix: {result.fix}"
    return f"{_LABELS[result.state]}  {' '.join(text.split())}"  # one line, whatever was quoted


def summary(results: Sequence[CheckResult]) -> str:
    """The last line: everything in place, or how many problems."""
    failed = sum(r.state is State.FAIL for r in results)
    if failed:
        return f"{failed} problem(s): lrbot cannot run as configured; fix the FAIL lines above"
    warned = sum(r.state is State.WARN for r in results)
    note = f" ({warned} warning(s))" if warned else ""
    return f"all {len(results)} checks passed{note}: lrbot has what a run needs"


def exit_status(results: Sequence[CheckResult]) -> int:
    """0 when nothing failed; 2 when the settings could not be read; 1 otherwise."""
    if any(r.name == SETTINGS and r.state is State.FAIL for r in results):
        return 2
    if any(r.state is State.FAIL for r in results):
        return 1
    return 0
