"""LRBOT_PLAYBOOKS: read and checked at start-up, every mistake naming the key at fault."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.playbook_file import load_playbooks, parse_playbooks
from commands.errors import ConfigurationError

EXAMPLE = Path(__file__).resolve().parents[1] / "bot" / "data" / "playbooks.example.toml"

GOOD = """
[playbooks.grab]
description = "Collect one file"
commands = "getfile C:\\\\Temp\\\\{name}"
[playbooks.grab.parameters.name]
pattern = "[a-z.]+"
example = "a.txt"
"""


def test_the_example_file_loads_and_expands() -> None:
    playbooks = load_playbooks(EXAMPLE)
    assert set(playbooks) == {"collect-memory", "collect-triage"}
    assert playbooks["collect-memory"].usage() == "collect-memory process=<process>"


def test_no_file_means_no_playbooks() -> None:
    assert load_playbooks(None) == {}


def test_a_good_file() -> None:
    [grab] = parse_playbooks(GOOD).values()
    assert grab.template == "getfile C:\\Temp\\{name}"
    assert grab.parameters[0].pattern == "[a-z.]+"


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("x = 1", "x", "is not a playbook setting"),
        ("[playbooks]", "playbooks", "define at least one"),
        ("[playbooks.Bad]\ncommands='getfile C:\\\\a'", "playbooks.Bad", "lower-case"),
        ("[playbooks.a]\ndescription='x'", "playbooks.a.commands", "is missing"),
        ("[playbooks.a]\ncommand='x'", "playbooks.a.command", "did you mean playbooks.a.commands"),
        (
            "[playbooks.a]\ncommands='getfile C:\\\\{p}'",
            "playbooks.a.commands",
            "uses {p}, which is no parameter",
        ),
        (
            "[playbooks.a]\ncommands='getfile C:\\\\a'\n[playbooks.a.parameters.p]\ndefault='x'",
            "playbooks.a.parameters.p",
            "is never used",
        ),
        (
            "[playbooks.a]\ncommands='getfile C:\\\\{p}'\n[playbooks.a.parameters.p]\npattern='x'",
            "playbooks.a.parameters.p",
            "needs an example",
        ),
        (
            "[playbooks.a]\ncommands='getfile C:\\\\{p}'\n[playbooks.a.parameters.p]\n"
            "pattern='('\nexample='x'",
            "playbooks.a.parameters.p.pattern",
            "is not a regular expression",
        ),
        (
            "[playbooks.a]\ncommands='getfile C:\\\\{p}'\n[playbooks.a.parameters.p]\n"
            "pattern='[0-9]+'\nexample='x'",
            "playbooks.a.parameters.p",
            "does not match",
        ),
        (
            "[playbooks.a]\ncommands='getfile {p}'\n[playbooks.a.parameters.p]\nexample='rel'",
            "playbooks.a.commands",
            "not absolute",
        ),
        ("[playbooks.a]\ncommands='runscript x.ps1; putfile y'", "playbooks.a.commands", "move"),
        ("not toml [", "", "not valid TOML"),
    ],
)
def test_mistakes_name_the_key(text: str, key: str, words: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_playbooks(text, "pb.toml")
    message = str(raised.value)
    assert message.startswith("LRBOT_PLAYBOOKS pb.toml")
    assert f": {key}: " in message if key else True
    assert words in message


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="LRBOT_PLAYBOOKS: cannot read"):
        load_playbooks(tmp_path / "missing.toml")
