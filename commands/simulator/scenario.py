"""What a simulated tenant holds: machines, library files, script behaviour, timings and limits.

A ``Scenario`` is plain configuration (pydantic, loadable from JSON); the engine in
``state.py`` turns it into live state. Byte fields accept text in JSON files.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["DEFAULT_ROLES", "Scenario", "SimFile", "SimLibraryFile", "SimMachine", "SimScript"]

# What Defender's live response needs, and what a tenant set up for lrbot grants.
DEFAULT_ROLES = ("Machine.LiveResponse", "Machine.Read.All", "Library.Manage")

_MACHINE_ID = re.compile(r"[0-9a-f]{40}")


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SimFile(_Config):
    """A file GetFile can collect; ``raw_result`` replaces the gzip result byte for byte."""

    content: bytes = b""
    raw_result: bytes | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_bytes(cls, data: Any) -> Any:
        # ``files={"C:\\a.txt": b"..."}`` is the common case: bare content.
        if isinstance(data, bytes | str):
            return {"content": data}
        return data


class SimScript(_Config):
    """How a library script behaves when RunScript runs it."""

    seconds: float = Field(5.0, ge=0)
    exit_code: int = 0
    output: str = ""
    errors: str = ""
    fail: bool = False  # the command ends Failed (the action Failed)
    timeout: bool = False  # runs until script_timeout_seconds, then the action ends TimeOut
    raw_result: bytes | None = None  # replaces the JSON result document byte for byte


class SimLibraryFile(_Config):
    """A file in the live response library."""

    file_name: str
    content: bytes = b""
    description: str = ""
    has_parameters: bool = False
    parameters_description: str | None = None
    created_by: str = "secops@contoso.com"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


class SimMachine(_Config):
    """A device onboarded to the simulated tenant."""

    id: str
    computer_dns_name: str
    os_platform: str = "Windows11"
    version: str = "22H2"
    health_status: str = "Active"  # anything else: offline, actions queue until set_online()
    onboarding_status: str = "Onboarded"
    rbac_group_name: str = "Workstations"
    machine_tags: list[str] = Field(default_factory=list)
    last_ip_address: str = "10.0.0.10"
    remediation: bool = True  # False: 403 DisallowedOperation
    supported: bool = True  # False: 400 OsPlatformNotSupported
    files: dict[str, SimFile] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _MACHINE_ID.fullmatch(value):
            raise ValueError(f"machine id {value!r} is not 40 lowercase hexadecimal characters")
        return value

    @property
    def is_windows(self) -> bool:
        return self.os_platform.lower().startswith("windows")

    def find_file(self, path: str) -> SimFile | None:
        """The file at ``path``; Windows paths compare without regard to case."""
        if path in self.files:
            return self.files[path]
        if path.startswith("/"):
            return None
        wanted = path.replace("/", "\\").casefold()
        for name, file in self.files.items():
            if name.replace("/", "\\").casefold() == wanted:
                return file
        return None


class Scenario(_Config):
    """A whole simulated tenant: identity, devices, library, timings and limits."""

    tenant_id: str = "00000000-0000-0000-0000-000000000001"
    client_id: str = "lrbot-sim"
    client_secret: str | None = "sim-secret"
    client_certificate_pem: str | None = None  # accept client assertions signed by its key
    token_lifetime_seconds: float = Field(3600, gt=0)
    # The application permissions granted (admin consented) to the app: the tokens' roles.
    token_roles: tuple[str, ...] = DEFAULT_ROLES
    # False: no admin has consented to the app's permissions; tokens are refused (AADSTS65001).
    admin_consent: bool = True
    machines: list[SimMachine] = Field(default_factory=list)
    library: list[SimLibraryFile] = Field(default_factory=list)
    scripts: dict[str, SimScript] = Field(default_factory=dict)
    command_seconds: float = Field(2.0, ge=0)
    pending_seconds: float = Field(1.0, ge=0)
    runs_per_minute: int = Field(10, ge=1)
    max_sessions: int = Field(25, ge=1)
    queue_seconds: float = Field(2 * 3600, gt=0)
    api_calls_per_minute: int = Field(100, ge=1)
    api_calls_per_hour: int = Field(1500, ge=1)
    page_size: int = Field(50, ge=1)
    link_seconds: float = Field(1800, gt=0)
    script_timeout_seconds: float = Field(600, gt=0)

    @model_validator(mode="after")
    def _unique(self) -> Scenario:
        ids = [m.id for m in self.machines]
        if len(ids) != len(set(ids)):
            raise ValueError("two machines share an id")
        names = [f.file_name.casefold() for f in self.library]
        if len(names) != len(set(names)):
            raise ValueError("two library files share a name")
        return self

    def script(self, name: str) -> SimScript:
        """How the script ``name`` behaves; a quick successful run when not configured."""
        for key, script in self.scripts.items():
            if key.casefold() == name.casefold():
                return script
        return SimScript(seconds=self.command_seconds, output=f"{name} completed.\n")
