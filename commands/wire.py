"""What Defender sends back, read tolerantly.

Defender adds fields without notice and leaves documented ones null: every model keeps
unknown fields, every field but the identifiers is optional, and statuses stay plain
strings so an undocumented value is carried through instead of rejected.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ACTIVE_STATUSES",
    "FINAL_COMMAND_STATUSES",
    "FINAL_STATUSES",
    "ActionCommand",
    "LibraryFile",
    "Machine",
    "MachineAction",
    "RunScriptOutput",
]

# Action statuses: Pending and InProgress, then exactly one final value.
ACTIVE_STATUSES = frozenset({"Pending", "InProgress"})
FINAL_STATUSES = frozenset({"Succeeded", "Failed", "TimeOut", "Cancelled"})
# Command statuses: Created, then Completed or Failed; anything else is not final.
FINAL_COMMAND_STATUSES = frozenset({"Completed", "Failed"})


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)


class Machine(_Wire):
    """A device as ``GET /api/machines`` describes it."""

    id: str
    computer_dns_name: str | None = Field(None, alias="computerDnsName")
    os_platform: str | None = Field(None, alias="osPlatform")
    os_version: str | None = Field(None, alias="version")
    health_status: str | None = Field(None, alias="healthStatus")
    onboarding_status: str | None = Field(None, alias="onboardingStatus")
    last_seen: datetime | None = Field(None, alias="lastSeen")
    rbac_group_name: str | None = Field(None, alias="rbacGroupName")
    machine_tags: list[str] = Field(default_factory=list, alias="machineTags")

    @property
    def name(self) -> str:
        return self.computer_dns_name or self.id

    @property
    def is_active(self) -> bool:
        return self.health_status == "Active"


class ActionCommand(_Wire):
    """One command's state inside a live response action."""

    index: int
    command_status: str = Field("Created", alias="commandStatus")
    start_time: datetime | None = Field(None, alias="startTime")
    end_time: datetime | None = Field(None, alias="endTime")
    errors: list[Any] = Field(default_factory=list)
    command: dict[str, Any] = Field(default_factory=dict)

    @property
    def is_final(self) -> bool:
        return self.command_status in FINAL_COMMAND_STATUSES

    @property
    def type(self) -> str:
        return str(self.command.get("type", ""))

    def error_text(self) -> str:
        """The command's errors as one readable line; their shape is undocumented."""
        parts: list[str] = []
        for item in self.errors:
            if isinstance(item, str):
                parts.append(item)
            elif isinstance(item, dict):
                parts.append(
                    str(item.get("message") or item.get("Message") or item.get("code") or item)
                )
            else:
                parts.append(repr(item))
        return "; ".join(p for p in parts if p)


class MachineAction(_Wire):
    """A machine action (for us, always a live response action)."""

    id: str
    type: str | None = None
    status: str = "Pending"
    machine_id: str | None = Field(None, alias="machineId")
    computer_dns_name: str | None = Field(None, alias="computerDnsName")
    requestor: str | None = None
    requestor_comment: str | None = Field(None, alias="requestorComment")
    creation_time: datetime | None = Field(None, alias="creationDateTimeUtc")
    last_update_time: datetime | None = Field(None, alias="lastUpdateDateTimeUtc")
    cancellation_requestor: str | None = Field(None, alias="cancellationRequestor")
    cancellation_comment: str | None = Field(None, alias="cancellationComment")
    error_hresult: int | None = Field(None, alias="errorHResult")
    commands: list[ActionCommand] = Field(default_factory=list)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


class LibraryFile(_Wire):
    """A file in the live response library."""

    file_name: str = Field(alias="fileName")
    sha256: str | None = None
    description: str | None = None
    has_parameters: bool | None = Field(None, alias="hasParameters")
    parameters_description: str | None = Field(None, alias="parametersDescription")
    created_by: str | None = Field(None, alias="createdBy")
    creation_time: datetime | None = Field(None, alias="creationTime")
    last_updated_time: datetime | None = Field(None, alias="lastUpdatedTime")


class RunScriptOutput(_Wire):
    """A RunScript result document, NUL padding already removed."""

    script_name: str | None = None
    exit_code: int | None = None
    script_output: str = ""
    script_errors: str = ""
