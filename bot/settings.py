"""The bot's settings: Slack, approval policy, tracking and storage, from the environment.

Defender's own settings live in ``commands.config``; this model holds everything else.
Loaded once in the entry point and passed down; nothing else reads ``os.environ``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.views.thread import DEFAULT_LARGE_RESULT_NOTE, LARGE_RESULT_NOTE_FIELDS
from commands.errors import ConfigurationError

__all__ = ["BotSettings", "load_bot_settings"]

_SLACK_PRINCIPAL = re.compile(r"[UWS][A-Z0-9]{2,}")


def _env(name: str) -> Any:
    return Field(None, validation_alias=AliasChoices(name))


class BotSettings(BaseSettings):
    """Every ``SLACK_*`` and ``LRBOT_*`` setting, with its default."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    slack_bot_token: SecretStr | None = _env("SLACK_BOT_TOKEN")
    slack_app_token: SecretStr | None = _env("SLACK_APP_TOKEN")
    slack_signing_secret: SecretStr | None = _env("SLACK_SIGNING_SECRET")
    slack_api_url: str = Field(
        "https://slack.com/api/", validation_alias=AliasChoices("SLACK_API_URL")
    )
    slash_command: str = Field(
        "/liveresponse", validation_alias=AliasChoices("LRBOT_SLASH_COMMAND")
    )

    requesters: Annotated[tuple[str, ...], NoDecode] = Field(
        (), validation_alias=AliasChoices("LRBOT_REQUESTERS")
    )
    approvers: Annotated[tuple[str, ...], NoDecode] = Field(
        (), validation_alias=AliasChoices("LRBOT_APPROVERS")
    )
    # A policy file (TOML) replaces LRBOT_REQUESTERS/APPROVERS/APPROVAL_TTL_MINUTES' rules.
    policy_file: Path | None = _env("LRBOT_POLICY")
    # Direct messages to the requester when their request is decided, expires or ends.
    notify_requester: bool = Field(True, validation_alias=AliasChoices("LRBOT_NOTIFY_REQUESTER"))
    # Playbooks (TOML): named command sequences with parameters, checked at start-up.
    playbooks_file: Path | None = _env("LRBOT_PLAYBOOKS")
    approval_ttl_minutes: float = Field(
        60, gt=0, le=7 * 24 * 60, validation_alias=AliasChoices("LRBOT_APPROVAL_TTL_MINUTES")
    )
    start_deadline_minutes: float = Field(
        120, gt=0, le=3 * 24 * 60, validation_alias=AliasChoices("LRBOT_START_DEADLINE_MINUTES")
    )
    poll_seconds: float = Field(
        10, gt=0, le=600, validation_alias=AliasChoices("LRBOT_POLL_SECONDS")
    )
    # Defender's own limits (10 runs a minute, 25 running at once), kept by the tracker:
    # lower them to leave room for other tools on the tenant.
    runs_per_minute: int = Field(10, ge=1, validation_alias=AliasChoices("LRBOT_RUNS_PER_MINUTE"))
    max_active_runs: int = Field(25, ge=1, validation_alias=AliasChoices("LRBOT_MAX_ACTIVE_RUNS"))
    # Several replicas: how long the one doing the fleet's background work (the tracker and
    # the outbox) holds it without renewing; a dead holder's work moves on after this.
    lease_seconds: float = Field(
        10, ge=1, le=300, validation_alias=AliasChoices("LRBOT_LEASE_SECONDS")
    )
    usergroup_cache_seconds: float = Field(
        300, ge=0, validation_alias=AliasChoices("LRBOT_USERGROUP_CACHE_SECONDS")
    )
    database_url: str = Field(
        "sqlite:///lrbot.sqlite3", validation_alias=AliasChoices("LRBOT_DATABASE_URL")
    )
    data_dir: Path = Field(Path("lrbot-data"), validation_alias=AliasChoices("LRBOT_DATA_DIR"))
    max_result_mb: float = Field(100, gt=0, validation_alias=AliasChoices("LRBOT_MAX_RESULT_MB"))
    # Where the analyst gets a result too large to post: {action_id}, {command}, … filled in.
    large_result_note: str = Field(
        DEFAULT_LARGE_RESULT_NOTE,
        min_length=1,
        max_length=1000,
        validation_alias=AliasChoices("LRBOT_LARGE_RESULT_NOTE"),
    )
    inline_output_chars: int = Field(
        2500, ge=0, le=2800, validation_alias=AliasChoices("LRBOT_INLINE_OUTPUT_CHARS")
    )
    # Socket Mode has no HTTP port: /healthz, /readyz and /metrics are served here instead
    # (loopback by default; set LRBOT_HEALTH_HOST=0.0.0.0 for a scraper on another host).
    # In HTTP mode they are on the Slack port and these two are not used.
    health_host: str = Field("127.0.0.1", validation_alias=AliasChoices("LRBOT_HEALTH_HOST"))
    health_port: int = Field(
        9090, ge=0, le=65535, validation_alias=AliasChoices("LRBOT_HEALTH_PORT")
    )
    # /readyz: Slack and Defender must each have answered within this many seconds (when
    # idle, the bot makes one cheap call to each every half of it).
    # SIGTERM: how long lrbot serve may take to finish what it has in hand (Slack requests
    # being answered, the tracker's current step, the outbox's current item). What is left
    # stays in the store and resumes at the next start.
    shutdown_seconds: float = Field(
        20, ge=0, le=600, validation_alias=AliasChoices("LRBOT_SHUTDOWN_SECONDS")
    )
    ready_seconds: float = Field(
        300, gt=0, le=3600, validation_alias=AliasChoices("LRBOT_READY_SECONDS")
    )

    @field_validator("requesters", "approvers", mode="before")
    @classmethod
    def _principals(cls, value: object) -> tuple[str, ...]:
        if value is None or value == "":
            return ()
        items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]
        principals = tuple(str(item).strip() for item in items if str(item).strip())
        for principal in principals:
            if not _SLACK_PRINCIPAL.fullmatch(principal):
                raise ValueError(
                    f"{principal!r} is not a Slack user id (U… or W…) or user-group id (S…)"
                )
        return principals

    @field_validator("large_result_note")
    @classmethod
    def _note(cls, value: str) -> str:
        unknown = sorted(set(re.findall(r"\{(\w+)\}", value)) - set(LARGE_RESULT_NOTE_FIELDS))
        if unknown:
            known = ", ".join(f"{{{name}}}" for name in LARGE_RESULT_NOTE_FIELDS)
            raise ValueError(f"{{{unknown[0]}}} is not one of {known}")
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError(f"{value!r} is not an http(s) URL")
        # slack_sdk joins method names with urljoin: a base without the final '/' loses its path.
        return value if value.endswith("/") else value + "/"

    @field_validator("slash_command")
    @classmethod
    def _command(cls, value: str) -> str:
        if not re.fullmatch(r"/[a-z0-9_-]{1,31}", value):
            raise ValueError(f"{value!r} is not a slash command such as /liveresponse")
        return value

    @property
    def approval_ttl_seconds(self) -> float:
        return self.approval_ttl_minutes * 60

    @property
    def max_result_bytes(self) -> int:
        return int(self.max_result_mb * 1024 * 1024)


_ALIASES = {
    name: str(field.validation_alias.choices[0])  # type: ignore[union-attr]
    for name, field in BotSettings.model_fields.items()
}


def load_bot_settings(**overrides: Any) -> BotSettings:
    """Read the settings, or raise ``ConfigurationError`` with one line naming the variable."""
    try:
        return BotSettings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        name = _ALIASES.get(field, field)
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigurationError(f"{name}: {message}") from None
