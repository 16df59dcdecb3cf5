"""Playbooks: parameters parsed, checked and filled into the reviewed template, or refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commands.errors import CommandError
from commands.models import GetFile, PutFile, RunScript
from commands.playbooks import (
    FORBIDDEN_CHARACTERS,
    Parameter,
    Playbook,
    PlaybookError,
    expand,
    format_params,
    parse_params,
)

MEMORY = Playbook(
    name="collect-memory",
    description="Dump a process",
    template=(
        "putfile procdump64.exe\nrunscript memdump.ps1 {process}\n"
        "getfile C:\\Windows\\Temp\\{process}.dmp"
    ),
    parameters=(Parameter("process", "process name", pattern=r"[A-Za-z0-9_.-]{1,64}"),),
)
TRIAGE = Playbook(
    name="triage",
    description="",
    template="runscript collect.ps1 -Days {days}",
    parameters=(Parameter("days", "days back", default="3", pattern=r"[0-9]{1,2}"),),
)


def test_expansion_fills_every_use_of_a_parameter() -> None:
    sequence = expand(MEMORY, {"process": "lsass"})
    assert sequence.commands == (
        PutFile(file_name="procdump64.exe"),
        RunScript(script_name="memdump.ps1", args="lsass"),
        GetFile(path="C:\\Windows\\Temp\\lsass.dmp"),
    )


def test_a_default_fills_a_parameter_not_given_and_a_value_overrides_it() -> None:
    assert expand(TRIAGE, {}).commands == (RunScript(script_name="collect.ps1", args="-Days 3"),)
    assert expand(TRIAGE, {"days": "10"}).commands[0].args == "-Days 10"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({}, "playbook collect-memory needs process: process name"),
        ({"process": "lsass", "user": "x"}, "has no parameter user (its parameters: process)"),
        ({"process": "ls ass"}, "does not match"),
        ({"process": "lsass;getfile"}, "holds ';', which would change the command"),
        ({"process": 'a"b'}, "would change the command"),
        ({"process": "a\nb"}, "would change the command"),
        ({"process": "$(whoami)"}, "would change the command"),
        ({"process": ""}, "is empty"),
        ({"process": "x" * 201}, "longer than 200"),
    ],
)
def test_bad_parameters_are_refused_with_the_reason(params: dict[str, str], words: str) -> None:
    with pytest.raises(PlaybookError) as raised:
        expand(MEMORY, params)
    assert words in str(raised.value)


def test_params_are_name_value_words() -> None:
    assert parse_params("  process=lsass  days=3 ") == {"process": "lsass", "days": "3"}
    assert parse_params("") == {}
    assert parse_params("empty=") == {"empty": ""}
    for text, words in [
        ("lsass", "is not name=value"),
        ("=x", "is not a parameter name"),
        ("Process=x", "is not a parameter name"),
        ("a=1 a=2", "given twice"),
    ]:
        with pytest.raises(PlaybookError, match=words):
            parse_params(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_parsing_any_text_gives_params_or_a_playbook_error(text: str) -> None:
    try:
        params = parse_params(text)
    except PlaybookError as exc:
        assert str(exc)
        return
    # What was accepted reads back the same, and no value holds a blank.
    assert parse_params(format_params(params)) == params
    assert all(not any(c.isspace() for c in v) for v in params.values())


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_value_expands_to_exactly_the_template_or_is_refused(value: str) -> None:
    open_playbook = Playbook("p", "", "getfile C:\\Temp\\{name}.txt", (Parameter("name"),))
    try:
        sequence = expand(open_playbook, {"name": value})
    except CommandError as exc:
        assert isinstance(exc, PlaybookError)
        return
    # Accepted: one command, the value pasted in whole; nothing that could end it got in.
    assert sequence.commands == (GetFile(path=f"C:\\Temp\\{value}.txt"),)
    assert not set(value) & FORBIDDEN_CHARACTERS


def test_usage_names_required_and_optional_parameters() -> None:
    assert MEMORY.usage() == "collect-memory process=<process>"
    assert TRIAGE.usage() == "triage [days=3]"
