"""Everything the bot shows in Slack, as pure functions of domain objects.

common   Message, escaping and clipping, sizes, durations, dates, small block builders
modal    the request modal and the ``help`` text
request  the request message in the channel, for every state
thread   the replies in the request's thread
status   the status, cancel and history answers; one line per request
home     the App Home tab
notify   the requester's direct messages
"""

from __future__ import annotations

from bot.views.common import (
    Message,
    clip,
    escape,
    human_duration,
    human_size,
    sentence,
    slack_date,
    truncate,
)
from bot.views.home import home_view
from bot.views.modal import help_text, notice_modal, request_modal
from bot.views.notify import requester_dm
from bot.views.request import request_message
from bot.views.status import (
    batch_status,
    cancel_answer,
    device_history,
    request_status,
    status_overview,
    subcommand_help,
)
from bot.views.thread import (
    INLINE_OUTPUT_MAX,
    large_result_note,
    output_fits_inline,
    reply_approval,
    reply_cancelled,
    reply_command,
    reply_decision,
    reply_expired,
    reply_final,
    reply_not_approved,
    reply_overtime,
    reply_refused,
    reply_result_error,
    reply_result_too_large,
    reply_runscript_result,
    reply_skipped,
    reply_start_deadline,
    reply_started,
    reply_submitted,
    reply_waiting,
    result_file_comment,
)

__all__ = [
    "INLINE_OUTPUT_MAX",
    "Message",
    "batch_status",
    "cancel_answer",
    "clip",
    "device_history",
    "escape",
    "help_text",
    "home_view",
    "human_duration",
    "human_size",
    "large_result_note",
    "notice_modal",
    "output_fits_inline",
    "reply_approval",
    "reply_cancelled",
    "reply_command",
    "reply_decision",
    "reply_expired",
    "reply_final",
    "reply_not_approved",
    "reply_overtime",
    "reply_refused",
    "reply_result_error",
    "reply_result_too_large",
    "reply_runscript_result",
    "reply_skipped",
    "reply_start_deadline",
    "reply_started",
    "reply_submitted",
    "reply_waiting",
    "request_message",
    "request_modal",
    "request_status",
    "requester_dm",
    "result_file_comment",
    "sentence",
    "slack_date",
    "status_overview",
    "subcommand_help",
    "truncate",
]
