"""A modal submission becomes a valid request, or field errors on the inputs that caused them.

Slack gives a view submission 3 seconds; Defender lookups run in a small pool with one
deadline for all of them, and the library listing is cached, so an analyst always gets an
answer in time: the request, or a specific error under the field they typed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from bot import views
from bot.ids import Block, row_block
from bot.library_cache import LibraryCache
from bot.logs import ContextThreadPool
from bot.modal import ModalValues
from bot.preflight import Finding, blocking, preflight
from commands.errors import CommandError, DefenderError, MachineLookupError, NotFound
from commands.models import CommandSequence, GetFile, PutFile, RunScript, check_order
from commands.playbooks import Playbook, expand, parse_params
from commands.syntax import parse_command, parse_sequence
from commands.wire import LibraryFile, Machine, MachineAction

__all__ = ["Accepted", "DefenderLookups", "Intake", "machine_card"]

log = logging.getLogger(__name__)

MAX_JUSTIFICATION = 3000
MAX_TICKET = 200
MAX_DEVICE = 255
_VERBS = {"PutFile": "putfile", "RunScript": "runscript", "GetFile": "getfile"}


class DefenderLookups(Protocol):
    """The read-only Defender calls intake needs (``DefenderClient`` provides them)."""

    def resolve_machine(self, query: str) -> Machine: ...
    def active_action(self, machine_id: str) -> MachineAction | None: ...
    def library_files(self) -> list[LibraryFile]: ...


@dataclass(frozen=True)
class Accepted:
    """A request ready to be posted for approval."""

    machine: Machine
    active_action: MachineAction | None
    commands: CommandSequence
    library: dict[str, str | None]  # file name -> sha256 read at request time
    justification: str
    ticket: str | None
    # For each command, the block its problems are shown under (a row, or the text box).
    sources: tuple[str, ...] = ()
    preflight: tuple[Finding, ...] = ()
    # The playbook the commands were expanded from: {"name": …, "params": {…}}.
    playbook: dict[str, Any] | None = None


def machine_card(
    machine: Machine,
    active: MachineAction | None,
    checks: tuple[Finding, ...] = (),
    playbook: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What the request message shows about the device, as stored with the request.

    The preflight findings and the playbook ride along in this JSON column: they are shown,
    never queried, so they need no columns (nor a migration) of their own.
    """
    card: dict[str, Any] = {
        "name": machine.name,
        "id": machine.id,
        "os_platform": machine.os_platform,
        "os_version": machine.os_version,
        "health_status": machine.health_status,
        "last_seen": machine.last_seen.isoformat() if machine.last_seen else None,
        "rbac_group_name": machine.rbac_group_name,
        "machine_tags": list(machine.machine_tags),
        "active_action_id": active.id if active else None,
    }
    if checks:
        card["preflight"] = [f.as_json() for f in checks]
    if playbook:
        card["playbook"] = playbook
    return card


class Intake:
    """Validates submissions against the syntax, the rules and Defender."""

    def __init__(
        self,
        defender: DefenderLookups,
        *,
        deadline_seconds: float = 2.2,
        library_ttl_seconds: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
        playbooks: dict[str, Playbook] | None = None,
        start_deadline_minutes: float = 120.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        # An analyst waits on these lookups: a client that has an interactive view (the
        # budget's reserve, a short wait for it) lends it; fakes are used as they are.
        interactive = getattr(defender, "interactive", None)
        self._defender: DefenderLookups = interactive() if callable(interactive) else defender
        self._deadline = deadline_seconds
        # The picker's listing only: a submission reads the library afresh, so a file that
        # vanished (or changed) since it was picked is caught before anyone approves.
        self.library = LibraryCache(self._defender.library_files, library_ttl_seconds, monotonic)
        self.playbooks: dict[str, Playbook] = dict(playbooks or {})
        self._start_deadline_minutes = start_deadline_minutes
        self._clock = clock
        # Lookups log with the submitter's context (``bot.logs.about``).
        self._pool = ContextThreadPool(max_workers=8, thread_name_prefix="intake")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def check(self, values: ModalValues) -> Accepted | dict[str, str]:
        """The accepted request, or ``{block_id: message}`` for every problem found."""
        errors: dict[str, str] = {}
        if not values.justification:
            errors[Block.JUSTIFICATION] = "Say why this run is needed: the approver reads it."
        elif len(values.justification) > MAX_JUSTIFICATION:
            errors[Block.JUSTIFICATION] = f"Keep it under {MAX_JUSTIFICATION} characters."
        if len(values.ticket) > MAX_TICKET:
            errors[Block.TICKET] = f"A ticket reference has at most {MAX_TICKET} characters."
        if not values.device:
            errors[Block.DEVICE] = "Give the device: a hostname or its 40-character machine id."
        elif len(values.device) > MAX_DEVICE:
            # No DNS name is longer; a 100 KB one would not even fit in the lookup's URL.
            errors[Block.DEVICE] = f"A device name has at most {MAX_DEVICE} characters."
        commands, sources = self._commands(values, errors)
        if errors and (not values.device or len(values.device) > MAX_DEVICE):
            return errors

        started = time.monotonic()
        machine_f = self._pool.submit(self._defender.resolve_machine, values.device)
        library_f = self._pool.submit(self._library_now)
        machine = self._wait(machine_f, started, errors, Block.DEVICE)
        active: MachineAction | None = None
        if machine is not None:
            active_f = self._pool.submit(self._defender.active_action, machine.id)
            active = self._wait(active_f, started, errors, Block.DEVICE, optional=True)
        library = self._wait(library_f, started, errors, Block.COMMANDS_TEXT)
        if commands is not None and library is not None:
            self._check_library(commands, sources, library, errors)
        if errors or machine is None or commands is None or library is None:
            return errors
        checks = tuple(
            preflight(
                machine, active, commands, library, self._clock(), self._start_deadline_minutes
            )
        )
        # What cannot run is refused now, under the device field; a missing library file
        # was already reported under its command by _check_library.
        refusals = [f.text for f in blocking(checks)]
        if refusals:
            errors[Block.DEVICE] = " ".join(refusals)
            log.info("request refused by preflight: %s", refusals)
            return errors
        return Accepted(
            machine=machine,
            active_action=active,
            commands=commands,
            library={name: library[name].sha256 for name in commands.library_files()},
            justification=values.justification,
            ticket=values.ticket or None,
            sources=tuple(sources),
            preflight=checks,
            playbook=(
                {"name": values.playbook, "params": parse_params(values.playbook_params)}
                if values.playbook
                else None
            ),
        )

    def _library_now(self) -> dict[str, LibraryFile]:
        return {f.file_name: f for f in self._defender.library_files()}

    def _commands(
        self, values: ModalValues, errors: dict[str, str]
    ) -> tuple[CommandSequence | None, list[str]]:
        """The sequence, and for each command the block its problems belong under."""
        files = values.row_files + [""] * (len(values.rows) - len(values.row_files))
        filled = [
            (i, kind, value, files[i])
            for i, (kind, value) in enumerate(values.rows)
            if kind or value or files[i]
        ]
        if values.playbook:
            return self._playbook(values, bool(filled), errors)
        if values.playbook_params:
            errors[Block.PLAYBOOK_PARAMS] = "Choose a playbook for these parameters, or clear them."
            return None, []
        if values.commands_text and filled:
            errors[Block.COMMANDS_TEXT] = (
                "Use either the command rows or this text, not both: clear one of them."
            )
            return None, []
        if values.commands_text:
            try:
                sequence = parse_sequence(values.commands_text)
            except CommandError as exc:
                errors[Block.COMMANDS_TEXT] = str(exc)
                return None, []
            return sequence, [str(Block.COMMANDS_TEXT)] * len(sequence)
        if not filled:
            errors[Block.COMMANDS_TEXT] = (
                "Add at least one command: fill a row, or type them here (putfile, runscript,"
                " getfile)."
            )
            return None, []
        parsed: list[PutFile | RunScript | GetFile] = []
        sources: list[str] = []
        for index, kind, value, file in filled:
            if kind is None:
                errors[row_block(index, "type")] = "Pick PutFile, RunScript or GetFile."
                continue
            text = _row_text(index, kind, value, file, errors)
            if text is None:
                continue
            try:
                parsed.append(parse_command(text))
                sources.append(row_block(index, "file" if file else "value"))
            except CommandError as exc:
                errors[row_block(index, "value")] = exc.message
        if len(parsed) != len(filled):
            return None, []
        try:
            check_order(parsed)
        except CommandError as exc:
            block = sources[exc.position - 1] if exc.position else str(Block.COMMANDS_TEXT)
            errors[block] = str(exc)
            return None, []
        return CommandSequence(commands=tuple(parsed)), sources

    def _playbook(
        self, values: ModalValues, other_commands: bool, errors: dict[str, str]
    ) -> tuple[CommandSequence | None, list[str]]:
        """The chosen playbook's expansion; its problems go under the parameters field."""
        if other_commands or values.commands_text:
            errors[Block.PLAYBOOK] = (
                "A playbook brings its own commands: clear the command rows and text, or the"
                " playbook."
            )
            return None, []
        playbook = self.playbooks.get(values.playbook)
        if playbook is None:
            known = ", ".join(sorted(self.playbooks)) or "none configured"
            errors[Block.PLAYBOOK] = f"No playbook {values.playbook}. Playbooks: {known}."
            return None, []
        try:
            sequence = expand(playbook, parse_params(values.playbook_params))
        except CommandError as exc:
            errors[Block.PLAYBOOK_PARAMS] = (
                f"{views.sentence(exc.message)} Usage: {playbook.usage()}"
            )
            return None, []
        return sequence, [str(Block.PLAYBOOK_PARAMS)] * len(sequence)

    def _wait(
        self,
        future: Future[Any],
        started: float,
        errors: dict[str, str],
        block: str,
        *,
        optional: bool = False,
    ) -> Any:
        remaining = max(0.0, self._deadline - (time.monotonic() - started))
        try:
            return future.result(timeout=remaining)
        except FutureTimeout:
            if not optional:
                errors.setdefault(
                    block, "Defender did not answer in time; nothing was sent. Submit again."
                )
            log.warning("Defender lookup for the request modal timed out (%s)", block)
        except MachineLookupError as exc:
            errors.setdefault(block, views.sentence(str(exc)))
        except NotFound:
            errors.setdefault(
                block, "No machine in Defender has this id; check it, or give a hostname."
            )
        except DefenderError as exc:
            if not optional:
                errors.setdefault(block, f"Defender refused the lookup: {exc}")
            log.warning("Defender lookup for the request modal failed: %s", exc)
        return None

    @staticmethod
    def _check_library(
        commands: CommandSequence,
        sources: list[str],
        library: dict[str, LibraryFile],
        errors: dict[str, str],
    ) -> None:
        for command, block in zip(commands.commands, sources, strict=True):
            name = (
                command.file_name
                if isinstance(command, PutFile)
                else command.script_name
                if isinstance(command, RunScript)
                else None
            )
            if name is None:
                continue
            if name in library and not library[name].sha256:
                # An approval is bound to the file's content: without a hash there is
                # nothing to bind it to, and a replaced file could run unseen.
                errors.setdefault(
                    block,
                    f"Defender reports no SHA-256 for {name}, so an approval could not be"
                    " bound to its content. Upload it to the library again.",
                )
                continue
            if name in library:
                continue
            known = ", ".join(sorted(library)[:15]) or "none"
            errors.setdefault(
                block,
                f"{name} is not in the live response library. Library files: {known}.",
            )


def _row_text(index: int, kind: str, value: str, file: str, errors: dict[str, str]) -> str | None:
    """A row as one command in the text syntax; None (and an error) when it makes none."""
    if not file:
        if not value:
            pick = "" if kind == "GetFile" else ", or pick a library file"
            errors[row_block(index, "value")] = f"{kind} needs a value{pick}."
            return None
        return f"{_VERBS[kind]} {value}"
    if kind == "GetFile":
        errors[row_block(index, "file")] = (
            "GetFile collects a path from the device: clear the library file and type the path."
        )
        return None
    if kind == "PutFile" and value:
        errors[row_block(index, "value")] = (
            "PutFile takes only the library file: clear this box (arguments go with RunScript)."
        )
        return None
    if value.split(None, 1)[:1] == [file]:
        # The name twice would run the script with its own name as the first argument.
        errors[row_block(index, "value")] = (
            f"{file} is picked above: leave only its arguments here."
        )
        return None
    # Quoted, so a picked name is read back as exactly that name.
    name = '"' + file.replace('"', '""') + '"'
    return f"{_VERBS[kind]} {name} {value}".rstrip()
