"""The payload digest an approval is bound to, and how a changed library is described."""

from __future__ import annotations

import hashlib

import pytest

from commands.digest import LibraryChange, library_changes, payload_digest
from commands.models import CommandSequence, GetFile, PutFile, RunScript

DEVICE = "a" * 40
OTHER_DEVICE = "b" * 40
TOOL = hashlib.sha256(b"MZ tool").hexdigest()
SCRIPT = hashlib.sha256(b"'ok'").hexdigest()
LIBRARY = {"tool.exe": TOOL, "collect.ps1": SCRIPT}


def seq(*commands: PutFile | RunScript | GetFile) -> CommandSequence:
    return CommandSequence(commands=commands)


BASE = seq(
    PutFile(file_name="tool.exe"),
    RunScript(script_name="collect.ps1", args="-Case 7"),
    GetFile(path="C:\\Temp\\a.txt"),
    GetFile(path="C:\\Temp\\b.txt"),
)
APPROVED = payload_digest(DEVICE, BASE, LIBRARY)


def test_the_digest_is_a_sha256_and_the_same_for_the_same_payload() -> None:
    assert len(APPROVED) == 64 and int(APPROVED, 16) >= 0
    again = seq(*BASE.commands)
    assert payload_digest(DEVICE, again, dict(reversed(LIBRARY.items()))) == APPROVED


def test_case_in_ids_and_hashes_does_not_matter() -> None:
    # Defender writes machine ids and hashes in either case; the payload is the same.
    upper = {name: sha.upper() for name, sha in LIBRARY.items()}
    assert payload_digest(DEVICE.upper(), BASE, upper) == APPROVED


def test_library_files_the_commands_do_not_use_are_left_out() -> None:
    assert payload_digest(DEVICE, BASE, {**LIBRARY, "other.ps1": "f" * 64}) == APPROVED


@pytest.mark.parametrize(
    ("device", "commands"),
    [
        pytest.param(OTHER_DEVICE, BASE, id="another device"),
        pytest.param(
            DEVICE,
            seq(*BASE.commands[:2], BASE.commands[3], BASE.commands[2]),
            id="commands in another order",
        ),
        pytest.param(
            DEVICE,
            seq(
                BASE.commands[0],
                RunScript(script_name="collect.ps1", args="-Case 8"),
                *BASE.commands[2:],
            ),
            id="another argument",
        ),
        pytest.param(
            DEVICE,
            seq(BASE.commands[0], RunScript(script_name="collect.ps1"), *BASE.commands[2:]),
            id="no argument",
        ),
        pytest.param(
            DEVICE,
            seq(*BASE.commands[:2], GetFile(path="C:\\Temp\\A.txt"), BASE.commands[3]),
            id="a path's case",
        ),
        pytest.param(DEVICE, seq(*BASE.commands[:3]), id="a command fewer"),
        pytest.param(
            DEVICE, seq(*BASE.commands, GetFile(path="C:\\Temp\\c.txt")), id="a command more"
        ),
    ],
)
def test_any_change_to_device_or_commands_changes_the_digest(
    device: str, commands: CommandSequence
) -> None:
    assert payload_digest(device, commands, LIBRARY) != APPROVED


@pytest.mark.parametrize("name", ["tool.exe", "collect.ps1"])
def test_a_library_file_with_new_content_changes_the_digest(name: str) -> None:
    replaced = {**LIBRARY, name: hashlib.sha256(b"something else").hexdigest()}

    assert payload_digest(DEVICE, BASE, replaced) != APPROVED


def test_a_library_file_missing_from_the_hashes_changes_the_digest() -> None:
    assert payload_digest(DEVICE, BASE, {"tool.exe": TOOL}) != APPROVED
    assert payload_digest(DEVICE, BASE, {**LIBRARY, "tool.exe": None}) != APPROVED


# --- what changed in the library -------------------------------------------------------------


def test_an_unchanged_library_has_no_changes() -> None:
    assert library_changes(LIBRARY, {**LIBRARY, "new.ps1": "1" * 64}) == []
    assert library_changes(LIBRARY, {k: v.upper() for k, v in LIBRARY.items()}) == []


def test_changed_and_vanished_files_are_named_with_both_hashes_in_name_order() -> None:
    now = hashlib.sha256(b"replaced").hexdigest()

    changes = library_changes(LIBRARY, {"tool.exe": now.upper(), "other.ps1": SCRIPT})

    assert changes == [
        LibraryChange("collect.ps1", SCRIPT, None),
        LibraryChange("tool.exe", TOOL, now),
    ]
    assert [c.describe() for c in changes] == [
        f"collect.ps1 is no longer in the library (approved sha256 {SCRIPT})",
        f"tool.exe changed: approved sha256 {TOOL}, now {now}",
    ]


def test_a_file_whose_hash_defender_no_longer_gives_counts_as_changed() -> None:
    [change] = library_changes({"tool.exe": TOOL}, {"tool.exe": None})

    assert change.describe() == f"tool.exe changed: approved sha256 {TOOL}, now unknown"
