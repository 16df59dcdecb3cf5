"""Which machine an analyst means by a host name: the rules, without the API."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from commands.errors import MachineLookupError
from commands.wire import Machine

__all__ = ["candidate_names", "normalise_host", "pick_machine"]


def normalise_host(query: str) -> str:
    """A host name as compared: trimmed, lower case, without a trailing dot."""
    return query.strip().rstrip(".").lower()


def candidate_names(machines: Sequence[Machine]) -> list[str]:
    """Names to show for an ambiguous query; the id is added where a name repeats."""
    counts = Counter(m.name.lower() for m in machines)
    return sorted(f"{m.name} ({m.id})" if counts[m.name.lower()] > 1 else m.name for m in machines)


def _first_label(machine: Machine) -> str:
    return machine.name.lower().split(".", 1)[0]


def pick_machine(query: str, machines: Sequence[Machine]) -> Machine:
    """The one machine ``query`` names among those whose name starts with it.

    An exact name wins, then an exact first label (``ws-001`` for ``ws-001.contoso.com``),
    then a single prefix match; anything else raises ``MachineLookupError``.
    """
    wanted = normalise_host(query)
    starting = [m for m in machines if m.name.lower().startswith(wanted)] if wanted else []
    for rule in (
        lambda m: m.name.lower() == wanted,
        lambda m: _first_label(m) == wanted,
        lambda m: True,
    ):
        matches = [m for m in starting if rule(m)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise MachineLookupError(query, candidate_names(matches))
    raise MachineLookupError(query)
