"""The Slack app manifest: valid against Slack's schema, and scopes that match the code.

The schema is vendored in tests/data (MIT, Slack Technologies; licence beside it) so the
check runs offline. It does not know scope names, hence the method → scope table here.
"""

from __future__ import annotations

import copy
import inspect
import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from slack_sdk import WebClient

from bot import slack_scopes

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "manifest.yml"
SCHEMA = Path(__file__).resolve().parent / "data" / "slack-manifest.schema.json"
SHARED_SCHEMA = ROOT.parent / "shared" / "data" / "slack-manifest.schema.json"
BOT_SOURCES = ROOT / "bot"

# What the bot asks for (``lrbot check`` compares the token's scopes with it): the manifest
# must hold exactly these, and every one must be needed below.
BOT_SCOPES = set(slack_scopes.BOT_SCOPES)

# Every Web API method the bot may call, with the bot scopes it needs. Calling anything
# else (conversations.info needs channels:read, for one) fails the source check below.
METHOD_SCOPES: dict[str, set[str]] = {
    "auth.test": set(),  # Bolt's App calls it at start-up
    "chat.postMessage": {"chat:write"},  # + chat:write.public for channels not joined
    "chat.update": {"chat:write"},
    "chat.postEphemeral": {"chat:write"},
    "views.open": set(),
    "views.update": set(),
    "views.push": set(),
    "views.publish": set(),  # the App Home tab
    "conversations.open": {"im:write"},  # the requester's DM
    "usergroups.list": {"usergroups:read"},  # lrbot check: do the policy's groups exist
    "usergroups.users.list": {"usergroups:read"},
    "users.info": {"users:read"},
    "files.getUploadURLExternal": {"files:write"},
    "files.completeUploadExternal": {"files:write"},
}
# Scopes no Web API method in the table needs, and why the app holds them.
NON_METHOD_SCOPES = {
    "commands": "the /liveresponse slash command",
    "chat:write.public": "posting in public channels the bot has not joined",
}
# Bolt helpers that call the Web API on the listener's behalf.
BOLT_HELPERS = {"say": {"chat.postMessage"}}


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    loaded = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_manifest_is_valid_against_slack_schema(manifest: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(manifest), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_http_mode_edits_the_comments_describe_are_valid_too(manifest: dict[str, Any]) -> None:
    """HTTP mode, as manifest.yml's header says: the request URLs and the options URL the
    library file picker (an ``external_select``) loads its options from."""
    header = MANIFEST.read_text(encoding="utf-8").split("display_information", 1)[0]
    url = "https://lrbot.example.com/slack/events"
    http = copy.deepcopy(manifest)
    http["settings"]["socket_mode_enabled"] = False
    http["features"]["slash_commands"][0]["url"] = url
    for key in ("request_url", "message_menu_options_url"):
        assert f"settings.interactivity.{key}" in header
        http["settings"]["interactivity"][key] = url
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(http), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_vendored_schema_matches_the_shared_copy() -> None:
    if not SHARED_SCHEMA.exists():
        pytest.skip("no ../shared checkout next to the repository")
    assert SCHEMA.read_bytes() == SHARED_SCHEMA.read_bytes()
    assert (SCHEMA.parent / "slack-manifest.schema.LICENSE").exists()


def test_slash_command_and_socket_mode(manifest: dict[str, Any]) -> None:
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/liveresponse"
    assert "help" in command["usage_hint"]
    assert "url" not in command
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is True
    assert settings["interactivity"] == {"is_enabled": True}
    assert settings["org_deploy_enabled"] is False
    assert settings["token_rotation_enabled"] is False
    assert manifest["features"]["bot_user"] == {
        "display_name": "liveresponse",
        "always_online": True,
    }


def test_home_tab_and_its_event(manifest: dict[str, Any]) -> None:
    assert manifest["features"]["app_home"] == {
        "home_tab_enabled": True,
        "messages_tab_enabled": True,
        "messages_tab_read_only_enabled": True,
    }
    assert manifest["settings"]["event_subscriptions"] == {"bot_events": ["app_home_opened"]}


def test_bot_scopes_are_exactly_the_needed_ones(manifest: dict[str, Any]) -> None:
    scopes = manifest["oauth_config"]["scopes"]
    assert set(scopes) == {"bot"}, "no user scopes"
    assert sorted(scopes["bot"]) == sorted(BOT_SCOPES)
    needed = set().union(*METHOD_SCOPES.values()) | set(NON_METHOD_SCOPES)
    assert needed == BOT_SCOPES


# -- which Web API methods the bot's sources call -----------------------------------------

_API_CALL = re.compile(r"""api_call\(\s*["']([\w.]+)["']""")
_ATTRIBUTE = re.compile(r"\.([a-z]+_[A-Za-z0-9_]+)\b")
_HELPER = re.compile(r"\b(say)\(")


@cache
def web_api_methods(py_name: str) -> frozenset[str]:
    """The Web API methods a ``WebClient`` method calls (``files_upload_v2`` calls two)."""
    func = getattr(WebClient, py_name, None)
    if not callable(func) or py_name.startswith("_"):
        return frozenset()
    source = inspect.getsource(func)
    found = set(_API_CALL.findall(source))
    for inner in set(re.findall(r"self\.([a-z]+_[A-Za-z0-9_]+)\(", source)) - {py_name}:
        found |= web_api_methods(inner)
    return frozenset(found)


def methods_in_source(text: str) -> Iterator[tuple[int, str]]:
    """(line number, Web API method) for each call or reference found in ``text``."""
    for number, line in enumerate(text.splitlines(), start=1):
        code = line.split("#", 1)[0]
        for method in _API_CALL.findall(code):
            yield number, method
        for name in _ATTRIBUTE.findall(code):
            for method in sorted(web_api_methods(name)):
                yield number, method
        for helper in _HELPER.findall(code):
            for method in sorted(BOLT_HELPERS[helper]):
                yield number, method


def test_source_scan_finds_calls_references_and_helpers() -> None:
    snippet = """
        client.chat_postMessage(channel=c, text=t)
        upload = self.slack.files_upload_v2
        app.client.api_call("conversations.info", params={"channel": c})
        say("hi")  # client.users_list() in a comment does not count
        data.update(x)
    """
    assert sorted({m for _, m in methods_in_source(snippet)}) == [
        "chat.postMessage",
        "conversations.info",
        "files.completeUploadExternal",
        "files.getUploadURLExternal",
    ]
    assert web_api_methods("conversations_info") == {"conversations.info"}


def test_bot_calls_only_methods_the_scopes_allow() -> None:
    calls = [
        (path.relative_to(ROOT), number, method)
        for path in sorted(BOT_SOURCES.rglob("*.py"))
        for number, method in methods_in_source(path.read_text(encoding="utf-8"))
    ]
    if not calls:
        pytest.skip("bot/ calls no Slack Web API method yet")
    unknown = [
        f"{path}:{number}: {method}"
        for path, number, method in calls
        if method not in METHOD_SCOPES
    ]
    assert not unknown, "methods outside METHOD_SCOPES (add scopes deliberately):\n" + "\n".join(
        unknown
    )
