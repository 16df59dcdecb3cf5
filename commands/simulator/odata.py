"""The part of OData ``$filter`` Defender's clients use, parsed by recursive descent.

Grammar (keywords and property names are case-sensitive, string comparisons are not)::

    expr       := and_expr ("or" and_expr)*
    and_expr   := unary ("and" unary)*
    unary      := "not" unary | "(" expr ")" | call | comparison
    call       := ("startswith" | "endswith" | "contains") "(" NAME "," literal ")"
                  [("eq" | "ne") ("true" | "false")]
    comparison := NAME ("eq"|"ne"|"gt"|"ge"|"lt"|"le") literal
                | NAME "in" "(" literal ("," literal)* ")"
    literal    := 'quoted, with '' for a quote' | 2026-01-01T00:00:00Z | 42 | true | false | null

``compile_filter`` checks every property against the collection's fields and converts each
literal to the field's type, so a bad filter fails before anything is evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["Expr", "ODataError", "compile_filter"]

Value = str | datetime | int | bool | None
Record = Mapping[str, Any]  # a record's properties; unknown types never match

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<punct>[(),])|(?P<word>[A-Za-z0-9_.:+\-]+))"
)
_COMPARE = ("eq", "ne", "gt", "ge", "lt", "le")
_CALLS = ("startswith", "endswith", "contains")
_KIND = {
    str: "a 'quoted string'",
    datetime: "a date and time",
    int: "a number",
    bool: "true or false",
}


class ODataError(ValueError):
    """A ``$filter`` (or another query option) the simulator does not accept."""


@dataclass(frozen=True)
class _Token:
    kind: str  # "string", "punct", "word" or "end"
    text: str
    position: int


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            if text[position:].strip() == "":
                break
            rest = text[position:].lstrip()
            where = len(text) - len(rest)
            problem = "an unterminated string" if rest[0] == "'" else f"{rest[0]!r}"
            raise ODataError(f"$filter has {problem} at position {where}")
        kind = match.lastgroup or "word"
        tokens.append(_Token(kind, match.group(kind), match.start(kind)))
        position = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


class Expr:
    """A compiled filter: ``evaluate(record)`` says whether the record matches."""

    def evaluate(self, record: Record) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class _Bool(Expr):
    op: str  # "and" or "or"
    parts: tuple[Expr, ...]

    def evaluate(self, record: Record) -> bool:
        results = (part.evaluate(record) for part in self.parts)
        return all(results) if self.op == "and" else any(results)


@dataclass(frozen=True)
class _Not(Expr):
    inner: Expr

    def evaluate(self, record: Record) -> bool:
        return not self.inner.evaluate(record)


def _key(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: bool(a == b),
    "ne": lambda a, b: bool(a != b),
    "gt": lambda a, b: bool(a > b),
    "ge": lambda a, b: bool(a >= b),
    "lt": lambda a, b: bool(a < b),
    "le": lambda a, b: bool(a <= b),
}


@dataclass(frozen=True)
class _Compare(Expr):
    name: str
    op: str
    value: Value

    def evaluate(self, record: Record) -> bool:
        actual = record.get(self.name)
        if actual is None or self.value is None:
            return (actual is self.value) == (self.op == "eq") if self.op in ("eq", "ne") else False
        return _OPS[self.op](_key(actual), _key(self.value))


@dataclass(frozen=True)
class _In(Expr):
    name: str
    values: frozenset[Any]

    def evaluate(self, record: Record) -> bool:
        return _key(record.get(self.name)) in self.values


@dataclass(frozen=True)
class _Call(Expr):
    function: str
    name: str
    value: str

    def evaluate(self, record: Record) -> bool:
        actual = record.get(self.name)
        if not isinstance(actual, str):
            return False
        text, part = actual.casefold(), self.value.casefold()
        if self.function == "startswith":
            return text.startswith(part)
        if self.function == "endswith":
            return text.endswith(part)
        return part in text


def _datetime(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ODataError(f"$filter: {text!r} is not a date and time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class _Parser:
    def __init__(self, text: str, fields: Mapping[str, type]) -> None:
        self._tokens = _tokens(text)
        self._at = 0
        self._fields = fields

    @property
    def _peek(self) -> _Token:
        return self._tokens[self._at]

    def _next(self) -> _Token:
        token = self._tokens[self._at]
        self._at += 1
        return token

    def _fail(self, expected: str) -> ODataError:
        token = self._peek
        found = "the end" if token.kind == "end" else repr(token.text)
        return ODataError(
            f"$filter: expected {expected} at position {token.position}, found {found}"
        )

    def _expect(self, text: str) -> None:
        if self._peek.text != text or self._peek.kind == "string":
            raise self._fail(repr(text))
        self._at += 1

    def _is_word(self, *words: str) -> bool:
        return self._peek.kind == "word" and self._peek.text in words

    def parse(self) -> Expr:
        expr = self._or()
        if self._peek.kind != "end":
            raise self._fail("'and', 'or' or the end")
        return expr

    def _or(self) -> Expr:
        parts = [self._and()]
        while self._is_word("or"):
            self._at += 1
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else _Bool("or", tuple(parts))

    def _and(self) -> Expr:
        parts = [self._unary()]
        while self._is_word("and"):
            self._at += 1
            parts.append(self._unary())
        return parts[0] if len(parts) == 1 else _Bool("and", tuple(parts))

    def _unary(self) -> Expr:
        if self._is_word("not"):
            self._at += 1
            return _Not(self._unary())
        if self._peek.text == "(" and self._peek.kind == "punct":
            self._at += 1
            inner = self._or()
            self._expect(")")
            return inner
        if self._is_word(*_CALLS):
            return self._call()
        return self._comparison()

    def _field(self) -> str:
        token = self._peek
        if token.kind != "word":
            raise self._fail("a property name")
        if token.text not in self._fields:
            known = ", ".join(sorted(self._fields))
            raise ODataError(f"$filter: unknown property {token.text!r}; known: {known}")
        self._at += 1
        return token.text

    def _call(self) -> Expr:
        function = self._next().text
        self._expect("(")
        name = self._field()
        if self._fields[name] is not str:
            raise ODataError(f"$filter: {function}() needs a text property, not {name!r}")
        self._expect(",")
        value = self._literal(name)
        self._expect(")")
        assert isinstance(value, str)
        expr: Expr = _Call(function, name, value)
        if self._is_word("eq", "ne"):
            negate = self._next().text == "ne"
            if not self._is_word("true", "false"):
                raise self._fail("true or false")
            negate ^= self._next().text == "false"
            expr = _Not(expr) if negate else expr
        return expr

    def _comparison(self) -> Expr:
        name = self._field()
        if self._is_word("in"):
            self._at += 1
            self._expect("(")
            values = [self._literal(name)]
            while self._peek.text == "," and self._peek.kind == "punct":
                self._at += 1
                values.append(self._literal(name))
            self._expect(")")
            return _In(name, frozenset(_key(v) for v in values))
        if not self._is_word(*_COMPARE):
            raise self._fail("an operator (eq, ne, gt, ge, lt, le, in)")
        op = self._next().text
        return _Compare(name, op, self._literal(name))

    def _literal(self, name: str) -> Value:
        token = self._next()
        wanted = self._fields[name]
        if token.kind == "word" and token.text == "null":
            return None
        if token.kind == "string":
            text = token.text[1:-1].replace("''", "'")
            if wanted is datetime:
                return _datetime(text)
            if wanted is str:
                return text
        elif token.kind == "word":
            if wanted is datetime:
                return _datetime(token.text)
            if wanted is bool and token.text in ("true", "false"):
                return token.text == "true"
            if wanted is int and re.fullmatch(r"-?\d+", token.text):
                return int(token.text)
        self._at -= 1
        raise self._fail(f"{_KIND.get(wanted, wanted.__name__)} for {name!r}")


def compile_filter(text: str, fields: Mapping[str, type]) -> Expr:
    """Parse ``text`` for records whose properties (and their types) are ``fields``."""
    if not text.strip():
        raise ODataError("$filter is empty")
    return _Parser(text, fields).parse()
