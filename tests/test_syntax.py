"""The command text analysts type: what it means, how it prints, and what it says when wrong."""

from __future__ import annotations

import operator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commands.errors import CommandError, SyntaxProblem
from commands.models import (
    MAX_COMMANDS,
    CommandSequence,
    GetFile,
    PutFile,
    RunScript,
    check_path,
)
from commands.syntax import (
    format_command,
    format_sequence,
    parse_command,
    parse_sequence,
    split_device_and_commands,
)


def seq(*commands: PutFile | RunScript | GetFile) -> CommandSequence:
    return CommandSequence.of(*commands)


# --- reading ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("putfile collect.ps1", seq(PutFile(file_name="collect.ps1"))),
        (
            "PutFile a.ps1;RUNSCRIPT a.ps1",
            seq(PutFile(file_name="a.ps1"), RunScript(script_name="a.ps1")),
        ),
        (
            r"getfile C:\Program Files\Vendor\log file.txt",
            seq(GetFile(path=r"C:\Program Files\Vendor\log file.txt")),
        ),
        (
            r"getfile   \\srv\share\case 42\out.zip  ",
            seq(GetFile(path=r"\\srv\share\case 42\out.zip")),
        ),
        ("getfile /var/log/syslog", seq(GetFile(path="/var/log/syslog"))),
        (
            'runscript collect.ps1 -Name "two words" -Days 7',
            seq(RunScript(script_name="collect.ps1", args='-Name "two words" -Days 7')),
        ),
        ('runscript a.ps1 "-Filter a;b"', seq(RunScript(script_name="a.ps1", args="-Filter a;b"))),
        (
            'runscript a.ps1 "-Name ""x y"""',
            seq(RunScript(script_name="a.ps1", args='-Name "x y"')),
        ),
        ('runscript a.ps1 " padded "  ', seq(RunScript(script_name="a.ps1", args=" padded "))),
        (
            'runscript a.ps1 """quoted"" first"',
            seq(RunScript(script_name="a.ps1", args='"quoted" first')),
        ),
        ('runscript a.ps1 ""', seq(RunScript(script_name="a.ps1"))),
        ('runscript "a.ps1" -x', seq(RunScript(script_name="a.ps1", args="-x"))),
        ('putfile "a.ps1" ', seq(PutFile(file_name="a.ps1"))),
        (
            r'getfile "C:\dir;with;semicolons\x.txt"',
            seq(GetFile(path=r"C:\dir;with;semicolons\x.txt")),
        ),
        (r'getfile "C:\ends with space "', seq(GetFile(path="C:\\ends with space "))),
        (
            "putfile a.ps1\r\nrunscript a.ps1 -x\r\ngetfile /tmp/out\r\n",
            seq(
                PutFile(file_name="a.ps1"),
                RunScript(script_name="a.ps1", args="-x"),
                GetFile(path="/tmp/out"),
            ),
        ),
        (
            "\n  ; putfile a.ps1 ;;\n\n   ;getfile /x;  \n",
            seq(PutFile(file_name="a.ps1"), GetFile(path="/x")),
        ),
        ("\tgetfile\tC:\\x\t", seq(GetFile(path="C:\\x"))),
    ],
)
def test_parse_sequence_reads_what_analysts_type(text: str, expected: CommandSequence) -> None:
    assert parse_sequence(text) == expected


def test_a_quote_inside_a_plain_value_is_an_ordinary_character() -> None:
    assert parse_sequence(r'getfile C:\odd"name.txt') == seq(GetFile(path=r'C:\odd"name.txt'))


def test_parse_command_reads_one_command() -> None:
    assert parse_command("  GETFILE /tmp/x ;") == GetFile(path="/tmp/x")


def test_parse_command_refuses_two_commands_or_none() -> None:
    with pytest.raises(SyntaxProblem) as two:
        parse_command("putfile a; putfile b")
    assert str(two.value) == "command 2 (line 1, column 12): only one command is expected here"
    with pytest.raises(SyntaxProblem) as none:
        parse_command(" ;\n")
    assert str(none.value) == (
        "line 1, column 1: no command: give one (putfile, runscript or getfile)"
    )


# --- printing --------------------------------------------------------------------------


def test_format_sequence_prints_one_lower_case_command_per_line() -> None:
    sequence = parse_sequence(
        'PUTFILE a.ps1; RunScript a.ps1 -Days 7;runscript a.ps1 "x;y"\n'
        r"GetFile C:\Program Files\x.log; getfile \\srv\share\y"
    )
    assert format_sequence(sequence) == (
        "putfile a.ps1\n"
        "runscript a.ps1 -Days 7\n"
        'runscript a.ps1 "x;y"\n'
        "getfile C:\\Program Files\\x.log\n"
        "getfile \\\\srv\\share\\y"
    )


@pytest.mark.parametrize(
    ("command", "text"),
    [
        (PutFile(file_name="a.ps1"), "putfile a.ps1"),
        (RunScript(script_name="a.ps1"), "runscript a.ps1"),
        (RunScript(script_name="a.ps1", args='-Name "a b"'), 'runscript a.ps1 -Name "a b"'),
        (RunScript(script_name="a.ps1", args='"a" b'), 'runscript a.ps1 """a"" b"'),
        (RunScript(script_name="a.ps1", args=" x"), 'runscript a.ps1 " x"'),
        (RunScript(script_name="a.ps1", args="x\t"), 'runscript a.ps1 "x\t"'),
        (RunScript(script_name="a.ps1", args='a;"b"'), 'runscript a.ps1 "a;""b"""'),
        (GetFile(path=r"C:\a b\c.txt"), r"getfile C:\a b\c.txt"),
        (GetFile(path="/tmp/a;b"), 'getfile "/tmp/a;b"'),
        (GetFile(path="/tmp/trailing "), 'getfile "/tmp/trailing "'),
    ],
)
def test_format_command_quotes_exactly_when_needed(
    command: PutFile | RunScript | GetFile, text: str
) -> None:
    assert format_command(command) == text
    assert parse_command(text) == command


# --- errors: where and what ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column", "position", "message"),
    [
        (
            "putfile a.ps1; runscrpt a.ps1",
            1,
            16,
            2,
            "unknown verb 'runscrpt'; use putfile, runscript or getfile",
        ),
        (
            'getfile"C:\\x"',
            1,
            1,
            1,
            "unknown verb 'getfile\"C:\\\\x\"'; use putfile, runscript or getfile"
            " (put a space after 'getfile')",
        ),
        ("putfile", 1, 8, 1, "missing file name, e.g. putfile collect.ps1"),
        ("putfile a.ps1\nputfile   ;", 2, 11, 2, "missing file name, e.g. putfile collect.ps1"),
        ("runscript\n", 1, 10, 1, "missing script name, e.g. runscript collect.ps1 -Days 7"),
        ("getfile ", 1, 9, 1, r"missing path, e.g. getfile C:\Windows\Temp\out.txt"),
        (
            "putfile a.ps1 b.ps1",
            1,
            15,
            1,
            "extra words after the file name 'a.ps1'; putfile takes one library file name",
        ),
        (
            'putfile "a.ps1" b',
            1,
            17,
            1,
            "after the closing quote of the file name only spaces may follow",
        ),
        (
            'runscript "a.ps1"-x',
            1,
            18,
            1,
            "after the closing quote of the script name put a space or end the command",
        ),
        (
            'runscript a.ps1 "-x" -y',
            1,
            22,
            1,
            "after the closing quote of the script arguments only spaces may follow",
        ),
        (
            'getfile "C:\\a;b"x; getfile /y',
            1,
            17,
            1,
            "after the closing quote of the path only spaces may follow",
        ),
        (
            'getfile "C:\\a;b',
            1,
            9,
            1,
            'unterminated quote: close it with " on the same line',
        ),
        (
            'runscript a.ps1 "-x\n-y"',
            1,
            17,
            1,
            'unterminated quote: close it with " on the same line',
        ),
        (
            'getfile "C:\\x""',
            1,
            9,
            1,
            'unterminated quote: close it with " on the same line',
        ),
    ],
)
def test_syntax_errors_say_where_and_what(
    text: str, line: int, column: int, position: int, message: str
) -> None:
    with pytest.raises(SyntaxProblem) as problem:
        parse_sequence(text)
    assert (problem.value.line, problem.value.column) == (line, column)
    assert problem.value.position == position
    assert problem.value.message == message
    assert str(problem.value) == f"command {position} (line {line}, column {column}): {message}"


@pytest.mark.parametrize(
    ("text", "line", "column", "position", "message"),
    [
        ("putfile ..", 1, 9, 1, "the file name '..' is not a file name"),
        (
            "putfile a.ps1;\r\nputfile my/tool.exe",
            2,
            9,
            2,
            "the file name 'my/tool.exe' has '/': library file names use only letters,"
            " digits, '-', '_' and '.'",
        ),
        ('putfile ""', 1, 9, 1, "the file name is empty"),
        (
            'putfile a.ps1; runscript  "bad name.ps1"',
            1,
            27,
            2,
            "the script name 'bad name.ps1' has ' ': library file names use only letters,"
            " digits, '-', '_' and '.'",
        ),
        (
            "runscript a.ps1 " + "x" * 1001,
            1,
            17,
            1,
            "the script arguments are 1001 characters long; at most 1000",
        ),
        (
            "runscript a.ps1 -x \x00",
            1,
            17,
            1,
            "the script arguments contain a NUL character; use one line",
        ),
        (
            "getfile /a\n  getfile Temp\\out.txt",
            2,
            11,
            2,
            "the path 'Temp\\out.txt' is not absolute: use a drive (C:\\dir\\file),"
            " a UNC path (\\\\server\\share\\file) or a POSIX path (/var/log/file)",
        ),
        ('getfile ""', 1, 9, 1, "the path is empty"),
        ("getfile /tmp/\x1b", 1, 9, 1, "the path contains the control character U+001B"),
    ],
)
def test_refused_values_point_at_the_value(
    text: str, line: int, column: int, position: int, message: str
) -> None:
    with pytest.raises(SyntaxProblem) as problem:
        parse_sequence(text)
    assert str(problem.value) == f"command {position} (line {line}, column {column}): {message}"


def test_out_of_order_points_at_the_verb_of_the_misplaced_command() -> None:
    with pytest.raises(SyntaxProblem) as problem:
        parse_sequence("putfile a.ps1\ngetfile C:\\out.txt\n  runscript a.ps1 -x")
    assert str(problem.value) == (
        "command 3 (line 3, column 3): RunScript a.ps1 -x comes after command 2"
        " (GetFile C:\\out.txt): Defender runs PutFile commands first, then RunScript,"
        " then GetFile; move it up"
    )


def test_too_many_commands_points_at_the_first_one_over_the_limit() -> None:
    text = "\n".join(["putfile a.ps1"] * (MAX_COMMANDS + 2))
    with pytest.raises(SyntaxProblem) as problem:
        parse_sequence(text)
    assert str(problem.value) == (
        "command 11 (line 11, column 1): 12 commands; one live response action takes at most 10"
    )


@pytest.mark.parametrize("text", ["", "   ", ";;", "\r\n\r\n"])
def test_no_commands_is_refused(text: str) -> None:
    with pytest.raises(SyntaxProblem) as problem:
        parse_sequence(text)
    assert str(problem.value) == (
        "line 1, column 1: no commands: give at least one (putfile, runscript or getfile)"
    )


def test_lines_and_columns_count_crlf_and_lone_cr_as_one_line_break() -> None:
    with pytest.raises(SyntaxProblem) as problem:
        parse_sequence("putfile a\r\n\r\rputfile b\r  bogus")
    assert (problem.value.line, problem.value.column, problem.value.position) == (5, 3, 3)


# --- the slash command -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("WS-042 putfile a.ps1; runscript a.ps1", ("WS-042", "putfile a.ps1; runscript a.ps1")),
        ("  ws-042\n  getfile C:\\x y\n", ("ws-042", "getfile C:\\x y\n")),
        ("ws-042", ("ws-042", "")),
        ("ws-042   ", ("ws-042", "")),
        ("", ("", "")),
        ("   ", ("", "")),
    ],
)
def test_split_device_and_commands(text: str, expected: tuple[str, str]) -> None:
    assert split_device_and_commands(text) == expected


# --- properties ------------------------------------------------------------------------

# Characters that stress the syntax, mixed into arbitrary one-line unicode.
_TRICKY = st.sampled_from([";", '"', '""', " ", "\t", "\\", "\\\\", "\xa0"])
_ONE_LINE = st.characters(exclude_categories=("Cs", "Cc"))
_TEXT = st.lists(_TRICKY | _ONE_LINE, max_size=30).map("".join)

_NAMES = st.from_regex(r"[A-Za-z0-9._-]{1,40}", fullmatch=True).filter(lambda n: set(n) != {"."})


def _is_path(value: str) -> bool:
    try:
        check_path(value)
    except CommandError:
        return False
    return True


_PATHS = st.builds(
    operator.add, st.sampled_from(["C:\\", "d:/", "\\\\srv\\share", "/"]), _TEXT
).filter(_is_path)

_BY_KIND: tuple[st.SearchStrategy[PutFile | RunScript | GetFile], ...] = (
    st.builds(PutFile, file_name=_NAMES),
    st.builds(RunScript, script_name=_NAMES, args=st.none() | _TEXT),
    st.builds(GetFile, path=_PATHS),
)


@st.composite
def sequences(draw: st.DrawFn) -> CommandSequence:
    kinds = draw(st.lists(st.sampled_from([0, 1, 2]), min_size=1, max_size=MAX_COMMANDS))
    return CommandSequence.of(*(draw(_BY_KIND[kind]) for kind in sorted(kinds)))


@given(sequences())
def test_printed_sequences_read_back_unchanged(sequence: CommandSequence) -> None:
    text = format_sequence(sequence)
    assert parse_sequence(text) == sequence
    assert parse_sequence(text.replace("\n", "\r\n")) == sequence
    assert parse_sequence(text.replace("\n", " ; ")) == sequence


_ANY_CHARS = st.lists(_TRICKY | st.characters(), max_size=30).map("".join)
# Text shaped like commands reaches the value and quote rules; plain noise mostly stops at
# the verb.
_VERB_START = st.sampled_from(["putfile ", "RunScript a.ps1 ", "getfile C:\\", "getfile ", '"', ""])
_SEPARATOR = st.sampled_from([";", "\n", "\r\n", "\r", " ; "])
_COMMAND_LIKE = st.lists(
    st.tuples(_VERB_START, _ANY_CHARS, _SEPARATOR).map("".join), max_size=12
).map("".join)


@given(_COMMAND_LIKE | _ANY_CHARS)
def test_any_text_parses_or_is_refused_with_a_place_in_the_text(text: str) -> None:
    try:
        sequence = parse_sequence(text)
    except SyntaxProblem as problem:
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        assert 1 <= problem.line <= len(lines)
        assert 1 <= problem.column <= len(lines[problem.line - 1]) + 1
        return
    # Whatever was accepted prints and reads back as the same sequence.
    assert parse_sequence(format_sequence(sequence)) == sequence
