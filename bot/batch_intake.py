"""A batch submission (several devices, or ``tag:<name>``) becomes one accepted request per
device, or field errors naming the device at fault.

The commands, the library and the texts are checked once, by ``Intake.check`` on the first
device; every other device is looked up at the same time, all within Slack's 3 seconds.
A device that already has a live response action is not refused: its run waits for that
action (the tracker runs one action per device), and the batch message says so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from bot.device_list import MAX_DEVICES, DeviceListError, parse_devices
from bot.ids import Block
from bot.intake import Accepted, DefenderLookups, Intake
from bot.logs import ContextThreadPool
from bot.modal import ModalValues
from bot.preflight import blocking, preflight
from commands.errors import DefenderError, MachineLookupError, NotFound
from commands.playbooks import Playbook
from commands.wire import LibraryFile, Machine, MachineAction

__all__ = ["BatchIntake", "TagLookups"]

log = logging.getLogger(__name__)

_TAG_SECONDS = 0.8  # a tag must be expanded before the first device can be checked


class TagLookups(DefenderLookups, Protocol):
    def machines_by_tag(self, tag: str) -> list[Machine]: ...


class BatchIntake(Intake):
    """``Intake`` for one device, and ``check_batch`` for several: the bot's one intake."""

    def __init__(
        self,
        defender: TagLookups,
        *,
        deadline_seconds: float = 2.2,
        monotonic: Callable[[], float] = time.monotonic,
        playbooks: dict[str, Playbook] | None = None,
        start_deadline_minutes: float = 120.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        shared: dict[str, Any] = {
            "playbooks": playbooks,
            "start_deadline_minutes": start_deadline_minutes,
            "clock": clock,
        }
        super().__init__(defender, deadline_seconds=deadline_seconds, monotonic=monotonic, **shared)
        interactive = getattr(defender, "interactive", None)
        self._tags: TagLookups = interactive() if callable(interactive) else defender
        self._monotonic = monotonic
        # What is left after the tags is the first device's check (commands, library).
        self._first = Intake(defender, deadline_seconds=deadline_seconds - _TAG_SECONDS, **shared)
        self._lookups = ContextThreadPool(max_workers=8, thread_name_prefix="batch-intake")

    def close(self) -> None:
        super().close()
        self._first.close()
        self._lookups.shutdown(wait=False, cancel_futures=True)

    def check_batch(self, values: ModalValues) -> list[Accepted] | dict[str, str]:
        """One accepted request per distinct device, or ``{block_id: message}``."""
        device = str(Block.DEVICE)
        try:
            named = parse_devices(values.device)
        except DeviceListError as exc:
            return {device: str(exc)}
        started = self._monotonic()
        # The first named device is looked up by the single-device check itself.
        others = named.devices[1:]
        # Tags first: they have the shorter allowance, and must not queue behind 19 names.
        by_tag = {t: self._lookups.submit(self._tags.machines_by_tag, t) for t in named.tags}
        by_name = {n: self._lookups.submit(self._tags.resolve_machine, n) for n in others}
        errors: dict[str, str] = {}
        tagged: list[Machine] = []
        for tag, future in by_tag.items():
            found = self._result(future, started, _TAG_SECONDS, f"tag {tag}", errors)
            if found is not None and not found:
                _add(errors, f"No device in Defender carries the tag {tag!r}.")
            tagged.extend(found or [])
        if not named.devices and not tagged:
            return errors
        first = named.devices[0] if named.devices else tagged[0].id
        single = self._first.check(values.model_copy(update={"device": first}))
        machines: list[Machine] = []
        if isinstance(single, dict):
            for block, message in single.items():
                if block == device:
                    _add(errors, f"{first}: {message}")
                else:
                    errors.setdefault(block, message)
        elif named.devices:
            machines.append(single.machine)
        for name, future in by_name.items():
            found = self._result(future, started, self._deadline, name, errors)
            if found is not None:
                machines.append(found)
        machines.extend(tagged)
        unique = list({m.id: m for m in machines}.values())
        if len(unique) > MAX_DEVICES:
            _add(errors, f"A batch has at most {MAX_DEVICES} devices; this names {len(unique)}.")
        if errors or isinstance(single, dict):
            return errors
        active = {m.id: self._lookups.submit(self._tags.active_action, m.id) for m in unique}
        accepted = [self._for(single, m, self._active(active[m.id], started)) for m in unique]
        # What cannot run on a device (not onboarded, an OS without live response) refuses
        # the batch now, naming the device, as it would refuse a single request.
        for each in accepted:
            blocked = [f.text for f in blocking(each.preflight)]
            if blocked:
                _add(errors, f"{each.machine.name}: {' '.join(blocked)}")
        return errors or accepted

    def _for(self, single: Accepted, machine: Machine, active: MachineAction | None) -> Accepted:
        """The first device's accepted request, for ``machine``, with its own preflight."""
        library = {
            name: LibraryFile.model_validate({"fileName": name, "sha256": sha})
            for name, sha in single.library.items()
        }
        checks = preflight(
            machine,
            active,
            single.commands,
            library,
            self._clock(),
            self._start_deadline_minutes,
        )
        return replace(single, machine=machine, active_action=active, preflight=tuple(checks))

    def _result(
        self, future: Future[Any], started: float, within: float, what: str, errors: dict[str, str]
    ) -> Any:
        remaining = max(0.0, within - (self._monotonic() - started))
        try:
            return future.result(timeout=remaining)
        except FutureTimeout:
            _add(errors, f"{what}: Defender did not answer in time; nothing was sent.")
        except MachineLookupError as exc:
            _add(errors, f"{what}: {exc}.")
        except NotFound:
            _add(errors, f"{what}: no machine in Defender has this id.")
        except DefenderError as exc:
            _add(errors, f"{what}: Defender refused the lookup: {exc}")
        log.info("batch device lookup failed for %s", what)
        return None

    def _active(self, future: Future[MachineAction | None], started: float) -> Any:
        remaining = max(0.0, self._deadline - (self._monotonic() - started))
        try:
            return future.result(timeout=remaining)
        except (FutureTimeout, DefenderError):
            return None  # only shown as a warning; the tracker waits for the device anyway


def _add(errors: dict[str, str], message: str) -> None:
    device = str(Block.DEVICE)
    errors[device] = f"{errors[device]} {message}" if device in errors else message
