"""What the command model accepts and refuses, in the words the analyst reads."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from commands.errors import CommandError
from commands.models import (
    MAX_ARGS_LENGTH,
    MAX_COMMANDS,
    MAX_NAME_LENGTH,
    MAX_PATH_LENGTH,
    CommandSequence,
    GetFile,
    PutFile,
    RunScript,
    check_args,
    check_library_name,
    check_machine_id,
    check_path,
)

# --- paths -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        r"C:\Windows\Temp\out.txt",
        r"c:\Program Files\Vendor\log file.txt",
        "D:/logs/app.log",
        r"\\fileserver\share\case 42\dump.bin",
        "/var/log/syslog",
        "/",
        "C:\\tab\there",
        "C:\\" + "x" * (MAX_PATH_LENGTH - 3),
    ],
)
def test_check_path_accepts_absolute_paths(path: str) -> None:
    assert check_path(path) == path


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("", "the path is empty"),
        (
            r"Windows\Temp\out.txt",
            r"the path 'Windows\Temp\out.txt' is not absolute: use a drive (C:\dir\file),"
            r" a UNC path (\\server\share\file) or a POSIX path (/var/log/file)",
        ),
        ("C:out.txt", "the path 'C:out.txt' is not absolute"),
        (r"\\server", r"the path '\\server' is not absolute"),
        ("./x", "the path './x' is not absolute"),
        ("C:\\a\x00b", "the path contains a NUL character"),
        ("C:\\a\nb", "the path contains a line break"),
        ("/tmp/a\r", "the path contains a line break"),
        ("/tmp/\x1b[31m", "the path contains the control character U+001B"),
        ("/tmp/\x7f", "the path contains the control character U+007F"),
        ("/tmp/a\u2028b", "the path contains a line break"),
        ("/tmp/a\x85b", "the path contains a line break"),
        (
            "/" + "x" * MAX_PATH_LENGTH,
            f"the path is {MAX_PATH_LENGTH + 1} characters long; at most {MAX_PATH_LENGTH}",
        ),
    ],
)
def test_check_path_refuses_with_a_reason(path: str, message: str) -> None:
    with pytest.raises(CommandError) as refused:
        check_path(path)
    assert str(refused.value).startswith(message)
    assert refused.value.position is None


# --- library names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["collect.ps1", "Get-Logs_v2.PS1", "a", "..x", "x" * MAX_NAME_LENGTH]
)
def test_check_library_name_accepts_plain_names(name: str) -> None:
    assert check_library_name(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "the file name is empty"),
        (
            "my script.ps1",
            "the file name 'my script.ps1' has ' ': library file names use only letters,"
            " digits, '-', '_' and '.'",
        ),
        ("../evil.ps1", "the file name '../evil.ps1' has '/'"),
        (r"dir\x.ps1", "the file name 'dir\\\\x.ps1' has '\\\\'"),
        ("ünï.ps1", "the file name 'ünï.ps1' has 'ü'"),
        ("a;b", "the file name 'a;b' has ';'"),
        ("..", "the file name '..' is not a file name"),
        (".", "the file name '.' is not a file name"),
        (
            "x" * (MAX_NAME_LENGTH + 1),
            f"the file name is {MAX_NAME_LENGTH + 1} characters long; at most {MAX_NAME_LENGTH}",
        ),
    ],
)
def test_check_library_name_refuses_with_a_reason(name: str, message: str) -> None:
    with pytest.raises(CommandError) as refused:
        check_library_name(name)
    assert str(refused.value).startswith(message)


def test_check_library_name_names_what_it_checks() -> None:
    with pytest.raises(CommandError) as refused:
        check_library_name("", "script name")
    assert str(refused.value) == "the script name is empty"


# --- script arguments ------------------------------------------------------------------


@pytest.mark.parametrize(
    "args", ["", "-Days 7", '-Name "a b"; exit', "\t-x\t", "ü" * MAX_ARGS_LENGTH]
)
def test_check_args_accepts_one_bounded_line(args: str) -> None:
    assert check_args(args) == args


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("-a\n-b", "the script arguments contain a line break; use one line"),
        ("-a\r", "the script arguments contain a line break; use one line"),
        ("\x00", "the script arguments contain a NUL character; use one line"),
        (
            "x" * (MAX_ARGS_LENGTH + 1),
            f"the script arguments are {MAX_ARGS_LENGTH + 1} characters long;"
            f" at most {MAX_ARGS_LENGTH}",
        ),
    ],
)
def test_check_args_refuses_with_a_reason(args: str, message: str) -> None:
    with pytest.raises(CommandError) as refused:
        check_args(args)
    assert str(refused.value) == message


# --- machine ids -----------------------------------------------------------------------

MACHINE_ID = "0123456789abcdef0123456789abcdef01234567"


def test_check_machine_id_keeps_lower_case_and_lowers_upper_case() -> None:
    assert check_machine_id(MACHINE_ID) == MACHINE_ID
    assert check_machine_id(MACHINE_ID.upper()) == MACHINE_ID


@pytest.mark.parametrize(
    "value", ["", MACHINE_ID[:-1], MACHINE_ID + "0", "g" + MACHINE_ID[1:], f" {MACHINE_ID}"]
)
def test_check_machine_id_refuses_anything_but_40_hex(value: str) -> None:
    with pytest.raises(CommandError) as refused:
        check_machine_id(value)
    assert str(refused.value) == f"{value!r} is not a machine id (40 hexadecimal characters)"


# --- the commands ----------------------------------------------------------------------


def test_models_refuse_what_the_checkers_refuse() -> None:
    with pytest.raises(ValidationError, match="library file names use only"):
        PutFile(file_name="a b")
    with pytest.raises(ValidationError, match="the script name is empty"):
        RunScript(script_name="")
    with pytest.raises(ValidationError, match="contain a line break"):
        RunScript(script_name="a.ps1", args="x\ny")
    with pytest.raises(ValidationError, match="is not absolute"):
        GetFile(path="x.txt")


def test_empty_script_arguments_are_no_arguments() -> None:
    assert RunScript(script_name="a.ps1", args="") == RunScript(script_name="a.ps1")
    assert RunScript(script_name="a.ps1", args="").params() == [
        {"key": "ScriptName", "value": "a.ps1"}
    ]


def test_commands_are_frozen_and_refuse_unknown_fields() -> None:
    command = PutFile(file_name="a.ps1")
    with pytest.raises(ValidationError):
        command.file_name = "b.ps1"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        PutFile.model_validate({"file_name": "a.ps1", "path": "/x"})


def test_a_sequence_loads_from_json_by_kind() -> None:
    loaded = CommandSequence.model_validate_json(
        '{"commands": [{"kind": "PutFile", "file_name": "a.ps1"},'
        ' {"kind": "GetFile", "path": "/tmp/x"}]}'
    )
    assert loaded.commands == (PutFile(file_name="a.ps1"), GetFile(path="/tmp/x"))


# --- order and count -------------------------------------------------------------------


def test_a_sequence_in_defender_order_with_repeats_is_accepted() -> None:
    sequence = CommandSequence.of(
        PutFile(file_name="a.ps1"),
        PutFile(file_name="b.ps1"),
        RunScript(script_name="a.ps1"),
        RunScript(script_name="b.ps1", args="-x"),
        GetFile(path="/tmp/1"),
        GetFile(path="/tmp/2"),
    )
    assert len(sequence) == 6


def test_out_of_order_names_the_command_what_it_follows_and_the_order() -> None:
    with pytest.raises(CommandError) as refused:
        CommandSequence.of(
            PutFile(file_name="a.ps1"),
            GetFile(path=r"C:\out.txt"),
            RunScript(script_name="a.ps1", args="-Days 7"),
        )
    assert refused.value.position == 3
    assert str(refused.value) == (
        r"command 3: RunScript a.ps1 -Days 7 comes after command 2 (GetFile C:\out.txt):"
        " Defender runs PutFile commands first, then RunScript, then GetFile; move it up"
    )


def test_out_of_order_points_at_the_first_command_it_should_precede() -> None:
    with pytest.raises(CommandError) as refused:
        CommandSequence.of(
            RunScript(script_name="a.ps1"),
            GetFile(path="/x"),
            PutFile(file_name="b.ps1"),
        )
    assert refused.value.position == 3
    assert "PutFile b.ps1 comes after command 1 (RunScript a.ps1)" in str(refused.value)


def test_a_sequence_holds_one_to_ten_commands() -> None:
    assert len(CommandSequence.of(*[PutFile(file_name="a")] * MAX_COMMANDS)) == MAX_COMMANDS
    with pytest.raises(CommandError) as too_many:
        CommandSequence.of(*[PutFile(file_name="a")] * (MAX_COMMANDS + 1))
    assert str(too_many.value) == "11 commands; one live response action takes at most 10"
    with pytest.raises(CommandError) as none:
        CommandSequence.of()
    assert str(none.value) == "no commands: give at least one (putfile, runscript or getfile)"


def test_the_model_itself_refuses_a_bad_order() -> None:
    with pytest.raises(ValidationError, match="move it up"):
        CommandSequence(commands=(GetFile(path="/x"), PutFile(file_name="a")))


# --- what goes to Defender -------------------------------------------------------------


def test_request_json_is_exactly_what_defender_expects() -> None:
    sequence = CommandSequence.of(
        PutFile(file_name="collect.ps1"),
        RunScript(script_name="collect.ps1"),
        RunScript(script_name="collect.ps1", args='-Out "C:\\Temp"'),
        GetFile(path=r"\\srv\share\out.zip"),
    )
    body = json.dumps(sequence.to_request("case 42"))
    assert body == (
        '{"Commands": ['
        '{"type": "PutFile", "params": [{"key": "FileName", "value": "collect.ps1"}]}, '
        '{"type": "RunScript", "params": [{"key": "ScriptName", "value": "collect.ps1"}]}, '
        '{"type": "RunScript", "params": [{"key": "ScriptName", "value": "collect.ps1"}, '
        '{"key": "Args", "value": "-Out \\"C:\\\\Temp\\""}]}, '
        '{"type": "GetFile", "params": '
        '[{"key": "Path", "value": "\\\\\\\\srv\\\\share\\\\out.zip"}]}'
        '], "Comment": "case 42"}'
    )
    # Backslashes are escaped once, by json.dumps, and come back unchanged.
    assert json.loads(body)["Commands"][3]["params"][0]["value"] == r"\\srv\share\out.zip"


def test_library_files_in_order_without_repeats_or_paths() -> None:
    sequence = CommandSequence.of(
        PutFile(file_name="tool.exe"),
        PutFile(file_name="collect.ps1"),
        RunScript(script_name="collect.ps1"),
        RunScript(script_name="clean.ps1"),
        GetFile(path="/tmp/tool.exe"),
    )
    assert sequence.library_files() == ["tool.exe", "collect.ps1", "clean.ps1"]
