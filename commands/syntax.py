"""The text syntax analysts type for a command sequence, and back.

Grammar (verbs are case-insensitive; ``blank`` is any whitespace but a line break)::

    text      = command { separator command }
    separator = ";" | line break              (CRLF, LF or a lone CR)
    command   = blank* [ putfile | runscript | getfile ] blank*     (blank commands are ignored)
    putfile   = "putfile" blank+ name
    runscript = "runscript" blank+ name [ blank+ tail ]
    getfile   = "getfile" blank+ tail
    name      = quoted | a run of non-blank characters (a library file name)
    tail      = quoted | everything up to the separator, trimmed
    quoted    = '"' { any character but '"' and line breaks | '""' } '"'

A value is quoted only when it starts with ``"``; elsewhere ``"`` is an ordinary
character, and backslashes are always literal so Windows paths need no escaping. After a
closing quote only blanks may follow (for a quoted script name: blanks, then arguments).
``format_sequence`` writes one command per line and quotes a value exactly when the plain
form would not read back the same: it holds ``;``, starts with ``"`` or has leading or
trailing whitespace. Every error is a ``SyntaxProblem`` that says where (line and column
in the original text, command position) and what.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable

from commands.errors import CommandError, SyntaxProblem
from commands.models import (
    MAX_COMMANDS,
    CommandSequence,
    GetFile,
    PutFile,
    RunScript,
    check_args,
    check_library_name,
    check_order,
    check_path,
)

__all__ = [
    "format_command",
    "format_sequence",
    "parse_command",
    "parse_sequence",
    "split_device_and_commands",
]

AnyCommand = PutFile | RunScript | GetFile

_SEPARATORS = ";\r\n"
_QUOTE = '"'
_VERBS = ("putfile", "runscript", "getfile")


def format_command(command: AnyCommand) -> str:
    """One command as an analyst would type it; ``parse_command`` reads it back unchanged."""
    if isinstance(command, PutFile):
        return f"putfile {command.file_name}"
    if isinstance(command, GetFile):
        return f"getfile {_quote_if_needed(command.path)}"
    if command.args is None:
        return f"runscript {command.script_name}"
    return f"runscript {command.script_name} {_quote_if_needed(command.args)}"


def format_sequence(sequence: CommandSequence) -> str:
    """The sequence, one command per line."""
    return "\n".join(format_command(command) for command in sequence.commands)


def parse_command(text: str) -> AnyCommand:
    """Exactly one command; blank text or a second command is a ``SyntaxProblem``."""
    parsed = _Scanner(text).commands()
    if not parsed:
        raise SyntaxProblem(
            "no command: give one (putfile, runscript or getfile)", line=1, column=1
        )
    if len(parsed) > 1:
        line, column = _Locator(text).where(parsed[1][0])
        raise SyntaxProblem(
            "only one command is expected here", line=line, column=column, position=2
        )
    return parsed[0][1]


def parse_sequence(text: str) -> CommandSequence:
    """The commands in ``text``, in the order typed, refused as a whole if Defender would."""
    parsed = _Scanner(text).commands()
    commands = [command for _, command in parsed]
    try:
        check_order(commands)
    except CommandError as error:
        raise _order_problem(text, error, [at for at, _ in parsed]) from error
    return CommandSequence(commands=tuple(commands))


def split_device_and_commands(text: str) -> tuple[str, str]:
    """``/liveresponse <device> <commands>``: the first word, then the rest (maybe empty)."""
    parts = text.split(None, 1)
    if not parts:
        return "", ""
    return parts[0], parts[1] if len(parts) > 1 else ""


def _quote_if_needed(value: str) -> str:
    # Exactly the values the plain form would change: cut at ';', read as quoted, trimmed.
    if ";" in value or value.startswith(_QUOTE) or value != value.strip():
        return _QUOTE + value.replace(_QUOTE, _QUOTE * 2) + _QUOTE
    return value


def _order_problem(text: str, error: CommandError, verbs_at: list[int]) -> SyntaxProblem:
    # check_order names a position for a misplaced command but none for a count; for too
    # many commands the first one over the limit is the one to point at.
    position = error.position
    if position is None and len(verbs_at) > MAX_COMMANDS:
        position = MAX_COMMANDS + 1
    if position is None:
        return SyntaxProblem(error.message, line=1, column=1)
    line, column = _Locator(text).where(verbs_at[position - 1])
    return SyntaxProblem(error.message, line=line, column=column, position=position)


def _is_blank(char: str) -> bool:
    return char.isspace() and char not in "\r\n"


class _Locator:
    """Turns an index into the 1-based line and column people see in their editor."""

    def __init__(self, text: str) -> None:
        self._starts = [0]
        for index, char in enumerate(text):
            # CRLF is one line break: the line starts after the LF, not between the two.
            if char == "\n" or (char == "\r" and text[index + 1 : index + 2] != "\n"):
                self._starts.append(index + 1)

    def where(self, index: int) -> tuple[int, int]:
        line = bisect_right(self._starts, index)
        return line, index - self._starts[line - 1] + 1


class _Scanner:
    """Reads the text once, left to right, remembering where each command and value began."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.index = 0
        self.position = 0  # 1-based number of the command being read; blanks don't count
        self._locator: _Locator | None = None

    def commands(self) -> list[tuple[int, AnyCommand]]:
        """Every non-blank command with the index of its verb."""
        found: list[tuple[int, AnyCommand]] = []
        while True:
            self.skip_blanks()
            if not self.at_end_of_command():
                self.position += 1
                verb_at = self.index
                found.append((verb_at, self.command()))
            if self.index >= len(self.text):
                return found
            self.index += 1  # past the separator

    def command(self) -> AnyCommand:
        verb_at, verb = self.word()
        parse = _PARSERS.get(verb.lower())
        if parse is None:
            raise self.problem(_unknown_verb(verb), verb_at)
        self.skip_blanks()
        return parse(self)

    def problem(self, message: str, index: int) -> SyntaxProblem:
        if self._locator is None:
            self._locator = _Locator(self.text)
        line, column = self._locator.where(index)
        return SyntaxProblem(message, line=line, column=column, position=self.position)

    def peek(self) -> str:
        return self.text[self.index : self.index + 1]

    def at_end_of_command(self) -> bool:
        char = self.peek()
        return not char or char in _SEPARATORS

    def skip_blanks(self) -> None:
        while self.peek() and _is_blank(self.peek()):
            self.index += 1

    def word(self) -> tuple[int, str]:
        start = self.index
        while not self.at_end_of_command() and not _is_blank(self.peek()):
            self.index += 1
        return start, self.text[start : self.index]

    def require(self, what: str, example: str) -> None:
        if self.at_end_of_command():
            raise self.problem(f"missing {what}, e.g. {example}", self.index)

    def tail(self, what: str) -> tuple[int, str]:
        """A value running to the end of the command: quoted, or plain and trimmed."""
        if self.peek() == _QUOTE:
            found = self.quoted()
            self.expect_end(f"after the closing quote of the {what} only spaces may follow")
            return found
        start = self.index
        while not self.at_end_of_command():
            self.index += 1
        return start, self.text[start : self.index].rstrip()

    def name(self, what: str) -> tuple[int, str]:
        """A library file name: quoted, or one word."""
        if self.peek() != _QUOTE:
            return self.word()
        found = self.quoted()
        if not self.at_end_of_command() and not _is_blank(self.peek()):
            raise self.problem(
                f"after the closing quote of the {what} put a space or end the command",
                self.index,
            )
        return found

    def quoted(self) -> tuple[int, str]:
        """From an opening quote to its closing quote, ``""`` standing for one ``"``."""
        start = self.index
        self.index += 1
        value: list[str] = []
        while True:
            char = self.peek()
            if not char or char in "\r\n":
                raise self.problem('unterminated quote: close it with " on the same line', start)
            self.index += 1
            if char != _QUOTE:
                value.append(char)
            elif self.peek() == _QUOTE:
                value.append(_QUOTE)
                self.index += 1
            else:
                return start, "".join(value)

    def expect_end(self, message: str) -> None:
        self.skip_blanks()
        if not self.at_end_of_command():
            raise self.problem(message, self.index)

    def checked(self, check: Callable[[str], str], found: tuple[int, str]) -> str:
        """The value if its checker accepts it, else the checker's words at the value's place."""
        at, value = found
        try:
            return check(value)
        except CommandError as error:
            raise self.problem(error.message, at) from error


def _unknown_verb(verb: str) -> str:
    message = f"unknown verb {verb!r}; use putfile, runscript or getfile"
    # A quote typed right after the verb glues the two into one word.
    glued = next((v for v in _VERBS if verb.lower().startswith(v + _QUOTE)), None)
    return message if glued is None else f"{message} (put a space after {glued!r})"


def _putfile(scanner: _Scanner) -> PutFile:
    scanner.require("file name", "putfile collect.ps1")
    quoted = scanner.peek() == _QUOTE
    found = scanner.name("file name")
    scanner.expect_end(
        "after the closing quote of the file name only spaces may follow"
        if quoted
        else f"extra words after the file name {found[1]!r}; putfile takes one library file name"
    )
    return PutFile(file_name=scanner.checked(check_library_name, found))


def _runscript(scanner: _Scanner) -> RunScript:
    scanner.require("script name", "runscript collect.ps1 -Days 7")
    found = scanner.name("script name")
    name = scanner.checked(lambda v: check_library_name(v, "script name"), found)
    scanner.skip_blanks()
    if scanner.at_end_of_command():
        return RunScript(script_name=name)
    args = scanner.checked(check_args, scanner.tail("script arguments"))
    return RunScript(script_name=name, args=args or None)


def _getfile(scanner: _Scanner) -> GetFile:
    scanner.require("path", r"getfile C:\Windows\Temp\out.txt")
    found = scanner.tail("path")
    return GetFile(path=scanner.checked(check_path, found))


_PARSERS: dict[str, Callable[[_Scanner], AnyCommand]] = {
    "putfile": _putfile,
    "runscript": _runscript,
    "getfile": _getfile,
}
