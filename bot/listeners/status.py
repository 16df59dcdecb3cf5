"""``/liveresponse status|cancel|history …``: answered ephemerally through the command's
``response_url``. Lookups read the store; the cancel goes through the lifecycle and its
policy, as the Cancel button does."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot import views
from bot.batch_lifecycle import BatchLifecycle
from bot.lifecycle import Lifecycle
from bot.links import WorkspaceLinks
from bot.lookup import REQUEST_ID, Lookup, looks_like_request_id
from bot.records import RequestRecord
from bot.views import Message

__all__ = ["SUBCOMMANDS", "Subcommands", "parse_subcommand"]

log = logging.getLogger(__name__)

SUBCOMMANDS = ("status", "cancel", "history")
# Words people reach for instead of a subcommand: told the right one rather than opening a
# request form for a device of that name.
_MISTAKES = {
    "stop": "cancel",
    "abort": "cancel",
    "kill": "cancel",
    "list": "status",
    "show": "status",
    "info": "status",
    "state": "status",
    "mine": "status",
    "log": "history",
    "hist": "history",
}
_MAX_ARG = 200


def parse_subcommand(text: str) -> tuple[str, list[str]] | None:
    """``("status", ["lr-…"])`` for a subcommand, None for a request to open the form."""
    words = text.split()
    if not words:
        return None
    first = words[0].lower()
    if first in SUBCOMMANDS or first in _MISTAKES:
        return first, words[1:]
    return None


@dataclass(frozen=True)
class Subcommands:
    lifecycle: Lifecycle
    lookup: Lookup
    links: WorkspaceLinks
    command: str
    batches: BatchLifecycle | None = None  # ``lb-…`` ids: a batch's devices as one

    def answer(self, name: str, args: list[str], user: str) -> Message:
        """The ephemeral answer to one subcommand (an error names what was wrong)."""
        if name in _MISTAKES:
            return self._usage(f"`{name}` is not a subcommand: did you mean `{_MISTAKES[name]}`?")
        if name == "status":
            return self._status(args, user)
        if name == "cancel":
            return self._cancel(args, user)
        return self._history(args)

    def _status(self, args: list[str], user: str) -> Message:
        workspace = self.links.workspace_url()
        if not args:
            return views.status_overview(
                self.lookup.of_requester(user), self.lookup.running(), workspace
            )
        if len(args) > 1:
            return self._usage("`status` takes one request id or one device.")
        wanted = args[0][:_MAX_ARG]
        batch = self._batch(wanted)
        if batch is not None:
            if isinstance(batch, Message):
                return batch
            return views.batch_status(wanted.lower(), batch, workspace)
        if looks_like_request_id(wanted):
            record = self._request(wanted)
            if isinstance(record, Message):
                return record
            return views.request_status(record, workspace, self.lifecycle.clock())
        return views.device_history(wanted, self.lookup.on_device(wanted), workspace)

    def _cancel(self, args: list[str], user: str) -> Message:
        if len(args) != 1:
            return self._usage("`cancel` takes one request id, such as `lr-7k2m9q4x`.")
        batch = self._batch(args[0][:_MAX_ARG])
        if batch is not None:
            if isinstance(batch, Message):
                return batch
            return self._cancel_batch(batch, user)
        record = self._request(args[0][:_MAX_ARG])
        if isinstance(record, Message):
            return record
        outcome = self.lifecycle.cancel(record.id, user)
        if not outcome.ok:
            log.info("refused cancel of %s by %s: %s", record.id, user, outcome.message)
            return Message(text=outcome.message, blocks=[])
        return Message(text=views.cancel_answer(record, self.links.workspace_url()), blocks=[])

    def _cancel_batch(self, members: list[RequestRecord], user: str) -> Message:
        assert self.batches is not None and members[0].batch_id is not None
        batch_id = members[0].batch_id
        outcome = self.batches.cancel(batch_id, user)
        if not outcome.ok:
            log.info("refused cancel of %s by %s: %s", batch_id, user, outcome.message)
            return Message(text=outcome.message, blocks=[])
        return Message(
            text=f"Cancelling the runs of batch `{batch_id}` still queued or running;"
            " its thread tells each device's end.",
            blocks=[],
        )

    def _batch(self, text: str) -> list[RequestRecord] | Message | None:
        """A batch's members for an ``lb-…`` id (a Message if there is none), or None when
        ``text`` is no batch id."""
        if self.batches is None or not text.lower().startswith("lb-"):
            return None
        shown = views.clip(text, 60)
        if not REQUEST_ID.fullmatch("lr-" + text.lower()[3:]):
            return self._usage(f"`{shown}` is not a batch id: they look like `lb-7k2m9q4x`.")
        members = self.batches.batches.members(text.lower())
        if not members:
            log.info("subcommand for an unknown batch %s", shown)
            return Message(text=f"No batch `{shown}` is known to this bot.", blocks=[])
        return members

    def _history(self, args: list[str]) -> Message:
        if len(args) != 1:
            return self._usage("`history` takes one device: its host name or machine id.")
        device = args[0][:_MAX_ARG]
        found = self.lookup.on_device(device)
        return views.device_history(device, found, self.links.workspace_url())

    def _request(self, text: str) -> RequestRecord | Message:
        shown = views.clip(text, 60)
        if not REQUEST_ID.fullmatch(text.lower()):
            return self._usage(
                f"`{shown}` is not a request id: they look like `lr-7k2m9q4x`"
                " (see `status` for yours)."
            )
        record = self.lookup.request(text)
        if record is None:
            log.info("subcommand for an unknown request %s", shown)
            return Message(text=f"No request `{shown}` is known to this bot.", blocks=[])
        return record

    def _usage(self, problem: str) -> Message:
        log.info("subcommand refused: %s", problem)
        return Message(text=f"{problem}\n{views.subcommand_help(self.command)}", blocks=[])
