"""Hypothesis strategies for hostile input, shared by the unit and end-to-end fuzz tests.

Everything an attacker, a broken client or a confused analyst can put in a string or a JSON
document: huge strings, unicode tricks, Slack markup, and JSON of any shape.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

__all__ = [
    "MARKUP",
    "TRICKS",
    "any_json",
    "hostile_text",
    "json_scalars",
    "printable_hostile_text",
]

# What a user may type to ping people or disguise a link, and what Slack escapes for us.
MARKUP = [
    "<@U0HOSTILE>",
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<!subteam^S0LEADS01>",
    "<#C0SOC0001>",
    "<http://evil.example|click me>",
    "<mailto:x@evil.example|x>",
    "&lt;!channel&gt;",
    "&amp;",
    "&lt;@U0HOSTILE&gt;",
    "*bold* _it_ ~s~ `code` ```block```",
    "> quoted",
]
TRICKS = [
    "\u202e",  # right-to-left override: "exe.txt" shows as "txt.exe"
    "\u200b",  # zero-width space
    "\u200d",  # zero-width joiner
    "\ufeff",  # byte-order mark
    "\u0430",  # Cyrillic a, a homoglyph of Latin a
    "\u0441\u043e\u0440",  # Cyrillic "сор"
    "e\u0301\u0301\u0301",  # stacked combining marks
    "\x00",
    "\x1b[31m",
    "\r\n",
    "\u2028",  # line separator
    "\U0001f4a9",
    "\ufffd",
    "C:\\Windows\\..\\..\\",
    '"',
    ";",
    "getfile C:\\x",
]
_LONE_SURROGATES = ["\ud800", "\udfff", "\udc00x"]


def hostile_text(max_size: int = 200, *, surrogates: bool = True) -> st.SearchStrategy[str]:
    """Text mixing tricks, markup and any characters, sometimes 50-100 KB long."""
    pieces = list(MARKUP) + list(TRICKS) + (_LONE_SURROGATES if surrogates else [])
    chars = st.characters() if surrogates else st.characters(exclude_categories=["Cs"])
    short = st.lists(st.sampled_from(pieces) | st.text(chars, max_size=8), max_size=12).map("".join)
    huge = st.tuples(st.sampled_from(pieces), st.integers(50_000, 100_000)).map(
        lambda p: (p[0] * (p[1] // max(len(p[0]), 1) + 1))[: p[1]]
    )
    return short | st.text(chars, max_size=max_size) | huge


def printable_hostile_text(max_size: int = 200) -> st.SearchStrategy[str]:
    """As ``hostile_text`` but encodable as UTF-8 (what can travel in a form-encoded field)."""
    return hostile_text(max_size, surrogates=False)


json_scalars: st.SearchStrategy[Any] = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | hostile_text(40)
)


def any_json(keys: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[Any]:
    """Any JSON value (lone surrogates included: JSON's \\ud800 escapes carry them)."""
    key = keys if keys is not None else st.text(max_size=10)
    return st.recursive(
        json_scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(key, inner, max_size=4),
        max_leaves=12,
    )
