"""Defender's time limits on a run, shared by the tracker (overtime) and the preflight.

Defender ends a RunScript after 10 minutes; other commands have no documented limit, so
they get a generous allowance, and the whole run a margin, before anyone is alerted.
"""

from __future__ import annotations

from commands.models import CommandSequence

__all__ = [
    "OTHER_COMMAND_SECONDS",
    "OVERTIME_MARGIN_SECONDS",
    "RUNSCRIPT_LIMIT_SECONDS",
    "expected_seconds",
]

RUNSCRIPT_LIMIT_SECONDS = 600
OTHER_COMMAND_SECONDS = 300
OVERTIME_MARGIN_SECONDS = 300


def expected_seconds(commands: CommandSequence) -> float:
    """How long a run may take by Defender's limits, plus a margin."""
    return OVERTIME_MARGIN_SECONDS + sum(
        RUNSCRIPT_LIMIT_SECONDS if c.kind == "RunScript" else OTHER_COMMAND_SECONDS
        for c in commands.commands
    )
