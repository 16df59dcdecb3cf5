"""Bodies Slack sends to an app: slash-command forms and interactivity payloads.

Shapes follow what Slack sends (and what Bolt's own scenario tests use). Element types are
read from the blocks the bot sent, so a test names only ids and values.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from bot.sandbox._slack_records import JsonDict, Message

__all__ = [
    "block_actions_payload",
    "block_suggestion_payload",
    "external_select",
    "find_element",
    "new_trigger_id",
    "plain_text",
    "slash_command_form",
    "state_values",
    "static_select",
    "users_select",
    "view_submission_payload",
]

_counter = itertools.count(1)


def new_trigger_id() -> str:
    """A unique trigger id shaped like Slack's (``digits.digits.hex``)."""
    return f"{next(_counter)}.1000000001.{uuid.uuid4().hex}"


def _user(user_id: str, team_id: str) -> JsonDict:
    name = user_id.lower()
    return {"id": user_id, "username": name, "name": name, "team_id": team_id}


def _team(team_id: str) -> JsonDict:
    return {"id": team_id, "domain": "fake-workspace"}


def _plain(text: str) -> JsonDict:
    return {"type": "plain_text", "text": text, "emoji": True}


# -- state entries (what Slack puts under view.state.values[block][action]) -----------


def plain_text(value: str | None) -> JsonDict:
    return {"type": "plain_text_input", "value": value}


def static_select(value: str | None, text: str | None = None) -> JsonDict:
    option = None if value is None else {"text": _plain(text or value), "value": value}
    return {"type": "static_select", "selected_option": option}


def users_select(user_id: str | None) -> JsonDict:
    return {"type": "users_select", "selected_user": user_id}


def external_select(value: str | None, text: str | None = None) -> JsonDict:
    option = None if value is None else {"text": _plain(text or value), "value": value}
    return {"type": "external_select", "selected_option": option}


def find_element(
    blocks: Sequence[Mapping[str, Any]], action_id: str, block_id: str | None = None
) -> tuple[str, JsonDict] | None:
    """The (block_id, element) carrying ``action_id`` in input, actions or section blocks."""
    for block in blocks:
        if block_id is not None and block.get("block_id") != block_id:
            continue
        candidates = [block.get("element"), block.get("accessory"), *block.get("elements", [])]
        for element in candidates:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return str(block.get("block_id", "")), element
    return None


def _options(element: Mapping[str, Any]) -> list[JsonDict]:
    groups = element.get("option_groups") or []
    return [*element.get("options", []), *(o for g in groups for o in g.get("options", []))]


def _offered(element: Mapping[str, Any], value: str) -> JsonDict:
    for option in _options(element):
        if option.get("value") == value:
            return copy.deepcopy(option)
    raise ValueError(f"{value!r} is not an option of {element.get('action_id')!r}")


def _state_entry(element: Mapping[str, Any] | None, value: object) -> JsonDict:
    """One state entry for ``value`` typed after ``element`` (plain text if unknown)."""
    if isinstance(value, Mapping) and "type" in value:
        return dict(value)
    kind = "plain_text_input" if element is None else str(element["type"])
    if kind in ("static_select", "overflow", "radio_buttons"):
        option = None if value is None else _offered(element or {}, str(value))
        return {"type": kind, "selected_option": option}
    if kind in ("multi_static_select", "checkboxes"):
        values = list(value) if isinstance(value, (list, tuple)) else []
        return {"type": kind, "selected_options": [_offered(element or {}, v) for v in values]}
    if kind == "external_select":
        return external_select(None if value is None else str(value))
    if kind == "users_select":
        return users_select(None if value is None else str(value))
    if kind == "multi_users_select":
        users = list(value) if isinstance(value, (list, tuple)) else []
        return {"type": kind, "selected_users": users}
    return {"type": kind, "value": value}


def state_values(
    values: Mapping[str, Mapping[str, object]], blocks: Sequence[Mapping[str, Any]] = ()
) -> dict[str, dict[str, JsonDict]]:
    """``view.state.values`` from ``{block_id: {action_id: value}}``.

    With the view's ``blocks``, each value is typed after its element: a string for
    ``plain_text_input``, the option *value* for ``static_select`` (its text is looked up),
    a user id for ``users_select``, any string for ``external_select``, lists for multi
    selects. Without blocks, strings become ``plain_text_input``; use :func:`static_select`,
    :func:`users_select`, :func:`external_select` or :func:`plain_text` to be explicit.
    """
    out: dict[str, dict[str, JsonDict]] = {}
    for block_id, actions in values.items():
        for action_id, value in actions.items():
            found = find_element(blocks, action_id, block_id)
            entry = _state_entry(found[1] if found else None, value)
            out.setdefault(block_id, {})[action_id] = entry
    return out


# -- bodies -----------------------------------------------------------------------------


def slash_command_form(
    text: str,
    *,
    user_id: str,
    channel_id: str,
    response_url: str,
    trigger_id: str,
    command: str = "/liveresponse",
    team_id: str = "T0001",
    api_app_id: str = "A0001",
) -> dict[str, str]:
    """The form fields of a slash command, in Slack's order."""
    return {
        "token": "verification-token",
        "team_id": team_id,
        "team_domain": "fake-workspace",
        "channel_id": channel_id,
        "channel_name": "security-ops",
        "user_id": user_id,
        "user_name": user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }


def _base(kind: str, user_id: str, team_id: str, api_app_id: str) -> JsonDict:
    return {
        "type": kind,
        "user": _user(user_id, team_id),
        "api_app_id": api_app_id,
        "token": "verification-token",
        "team": _team(team_id),
        "enterprise": None,
        "is_enterprise_install": False,
    }


def _action(
    element: Mapping[str, Any] | None, block_id: str, action_id: str, value: object
) -> JsonDict:
    action: JsonDict = {
        "action_id": action_id,
        "block_id": block_id,
        "action_ts": "1700000001.000200",
    }
    kind = "button" if element is None else str(element["type"])
    if kind == "button":
        text = element["text"] if element else _plain(action_id)
        default = element.get("value") if element else None
        action.update(type="button", text=text, value=value if value is not None else default)
        if element and "style" in element:
            action["style"] = element["style"]
        return action
    entry = _state_entry(element, value)
    action.update(entry)
    return action


def block_actions_payload(
    action_id: str,
    *,
    user_id: str,
    message: Message | None = None,
    view: Mapping[str, Any] | None = None,
    value: object = None,
    block_id: str | None = None,
    response_url: str,
    trigger_id: str,
    team_id: str = "T0001",
    api_app_id: str = "A0001",
) -> JsonDict:
    """A click (or selection) on ``action_id`` in a bot message or in a modal.

    The element is looked up in the message's or view's blocks: a button's ``value`` is
    the one the bot set unless ``value`` overrides it (to test a forged value).
    """
    blocks = message.blocks if message is not None else (view or {}).get("blocks", [])
    found = find_element(blocks, action_id, block_id)
    element = found[1] if found else None
    payload = _base("block_actions", user_id, team_id, api_app_id)
    payload["trigger_id"] = trigger_id
    payload["actions"] = [_action(element, found[0] if found else block_id or "", action_id, value)]
    if message is not None:
        container: JsonDict = {"type": "message", "message_ts": message.ts}
        container.update(channel_id=message.channel, is_ephemeral=False)
        if message.is_reply:
            container["thread_ts"] = message.thread_ts
        payload.update(container=container, message=message.payload(), response_url=response_url)
        payload["channel"] = {"id": message.channel, "name": "security-ops"}
        payload["state"] = {"values": {}}
    elif view is not None:
        payload.update(container={"type": "view", "view_id": view["id"]}, view=dict(view))
    return payload


def view_submission_payload(
    view: Mapping[str, Any],
    *,
    user_id: str,
    values: Mapping[str, Mapping[str, object]],
    trigger_id: str,
    team_id: str = "T0001",
    api_app_id: str = "A0001",
) -> JsonDict:
    """The submit of modal ``view`` (as views.open answered it) with the given inputs."""
    submitted = copy.deepcopy(dict(view))
    submitted["state"] = {"values": state_values(values, submitted.get("blocks", []))}
    payload = _base("view_submission", user_id, team_id, api_app_id)
    payload.update(trigger_id=trigger_id, view=submitted, response_urls=[])
    return payload


def block_suggestion_payload(
    action_id: str,
    typed: str,
    *,
    user_id: str,
    view: Mapping[str, Any],
    block_id: str | None = None,
    team_id: str = "T0001",
    api_app_id: str = "A0001",
) -> JsonDict:
    """An options request from an ``external_select`` in modal ``view``; ``typed`` is the query."""
    found = find_element(view.get("blocks", []), action_id, block_id)
    payload = _base("block_suggestion", user_id, team_id, api_app_id)
    payload.update(
        container={"type": "view", "view_id": view["id"]},
        action_id=action_id,
        block_id=found[0] if found else block_id or "",
        value=typed,
        view=dict(view),
    )
    return payload
