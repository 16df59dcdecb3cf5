"""Every Slack identifier the bot uses, named once.

The callback and action ids are a stable interface: operators, audit rules and other
tools match on them. Never rename one.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Action", "Block", "Callback", "approve_value", "read_value", "row_block"]


class Callback(StrEnum):
    REQUEST_MODAL = "lr_request"


class Action(StrEnum):
    APPROVE = "lr_approve"
    REJECT = "lr_reject"
    CANCEL = "lr_cancel"
    WITHDRAW = "lr_withdraw"
    ADD_ROW = "lr_add_row"
    REMOVE_ROW = "lr_remove_row"
    BATCH_APPROVE = "lr_batch_approve"
    BATCH_REJECT = "lr_batch_reject"
    BATCH_WITHDRAW = "lr_batch_withdraw"
    BATCH_CANCEL = "lr_batch_cancel"
    VALUE = "value"  # the action id of every input element inside an input block
    # A row's library file picker (external_select): Slack asks for its options by this id.
    LIBRARY_FILE = "lr_library_file"


class Block(StrEnum):
    DEVICE = "device"
    COMMANDS_TEXT = "commands_text"
    JUSTIFICATION = "justification"
    TICKET = "ticket"
    ROW_BUTTONS = "row_buttons"
    PLAYBOOK = "playbook"
    PLAYBOOK_PARAMS = "playbook_params"


def row_block(index: int, part: str) -> str:
    """Block id of a command row's ``type`` select, ``file`` picker or ``value`` input (from 0)."""
    return f"row_{index}_{part}"


# The Approve button carries the payload digest its message showed: a click on a message
# rendered for another payload approves nothing. 24 hex characters (96 bits) suffice for
# that check and keep the value short.
DIGEST_IN_BUTTON = 24


def approve_value(request_id: str, digest: str | None) -> str:
    return f"{request_id}:{digest[:DIGEST_IN_BUTTON]}" if digest else request_id


def read_value(value: str) -> tuple[str, str | None]:
    """A button's request id, and the digest it carries (None when it has none)."""
    request_id, _, digest = value.partition(":")
    return request_id, digest or None
