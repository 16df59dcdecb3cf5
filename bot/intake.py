"""A modal submission becomes a valid request, or field errors on the inputs that caused them.

Slack gives a view submission 3 seconds; Defender lookups run in a small pool with one
deadline for all of them, and the library listing is cached, so an analyst always gets an
answer in time: the request, or a specific error under the field they typed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Protocol

from bot import views
from bot.ids import Block, row_block
from bot.logs import ContextThreadPool
from bot.modal import ModalValues
from commands.errors import CommandError, DefenderError, MachineLookupError, NotFound
from commands.models import CommandSequence, GetFile, PutFile, RunScript, check_order
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


def machine_card(machine: Machine, active: MachineAction | None) -> dict[str, Any]:
    """What the request message shows about the device, as stored with the request."""
    return {
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


class _LibraryCache:
    def __init__(self, ttl_seconds: float, monotonic: Callable[[], float]) -> None:
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._files: dict[str, LibraryFile] | None = None
        self._at = 0.0

    def get(self, load: Callable[[], list[LibraryFile]]) -> dict[str, LibraryFile]:
        with self._lock:
            if self._files is not None and self._monotonic() - self._at < self._ttl:
                return self._files
        files = {f.file_name: f for f in load()}
        with self._lock:
            self._files, self._at = files, self._monotonic()
        return files


class Intake:
    """Validates submissions against the syntax, the rules and Defender."""

    def __init__(
        self,
        defender: DefenderLookups,
        *,
        deadline_seconds: float = 2.2,
        library_ttl_seconds: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        # An analyst waits on these lookups: a client that has an interactive view (the
        # budget's reserve, a short wait for it) lends it; fakes are used as they are.
        interactive = getattr(defender, "interactive", None)
        self._defender: DefenderLookups = interactive() if callable(interactive) else defender
        self._deadline = deadline_seconds
        self._library = _LibraryCache(library_ttl_seconds, monotonic)
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
        library_f = self._pool.submit(self._library.get, self._defender.library_files)
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
        return Accepted(
            machine=machine,
            active_action=active,
            commands=commands,
            library={name: library[name].sha256 for name in commands.library_files()},
            justification=values.justification,
            ticket=values.ticket or None,
            sources=tuple(sources),
        )

    def _commands(
        self, values: ModalValues, errors: dict[str, str]
    ) -> tuple[CommandSequence | None, list[str]]:
        """The sequence, and for each command the block its problems belong under."""
        filled = [(i, kind, value) for i, (kind, value) in enumerate(values.rows) if kind or value]
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
        for index, kind, value in filled:
            if kind is None:
                errors[row_block(index, "type")] = "Pick PutFile, RunScript or GetFile."
                continue
            if not value:
                errors[row_block(index, "value")] = f"{kind} needs a value."
                continue
            try:
                parsed.append(parse_command(f"{_VERBS[kind]} {value}"))
                sources.append(row_block(index, "value"))
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
