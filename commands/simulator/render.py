"""Wire JSON for machines, actions and library files, as Defender writes them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from commands.simulator.clock import iso
from commands.simulator.scenario import SimLibraryFile, SimMachine
from commands.simulator.timeline import ActionRecord, ActionView, CommandView

__all__ = [
    "ACTION_FIELDS",
    "MACHINE_FIELDS",
    "action_fields",
    "action_json",
    "library_json",
    "machine_fields",
    "machine_json",
]

# Filterable properties and their types, for ``odata.compile_filter``.
ACTION_FIELDS: dict[str, type] = {
    "id": str,
    "type": str,
    "status": str,
    "machineId": str,
    "computerDnsName": str,
    "requestor": str,
    "creationDateTimeUtc": datetime,
    "lastUpdateDateTimeUtc": datetime,
}
MACHINE_FIELDS: dict[str, type] = {
    "id": str,
    "computerDnsName": str,
    "osPlatform": str,
    "healthStatus": str,
    "onboardingStatus": str,
    "rbacGroupName": str,
    "lastIpAddress": str,
    "lastSeen": datetime,
}


def _dt(timestamp: float) -> datetime:
    return datetime.fromisoformat(iso(timestamp)[:26] + "+00:00")


def machine_json(machine: SimMachine, health: str, last_seen: float) -> dict[str, Any]:
    """A machine entity, with some of the extra fields real tenants add."""
    return {
        "id": machine.id,
        "computerDnsName": machine.computer_dns_name,
        "firstSeen": iso(last_seen - 400 * 86400),
        "lastSeen": iso(last_seen),
        "osPlatform": machine.os_platform,
        "version": machine.version,
        "osProcessor": "x64",
        "osArchitecture": "64-bit",
        "osBuild": 22631 if machine.is_windows else None,
        "lastIpAddress": machine.last_ip_address,
        "lastExternalIpAddress": "203.0.113.7",
        "agentVersion": "10.8760.22621.1000" if machine.is_windows else "101.24082.0004",
        "healthStatus": health,
        "onboardingStatus": machine.onboarding_status,
        "deviceValue": "Normal",
        "rbacGroupId": sum(machine.rbac_group_name.encode()) % 1000,
        "rbacGroupName": machine.rbac_group_name,
        "riskScore": "Low",
        "exposureLevel": "Medium",
        "isAadJoined": machine.is_windows,
        "aadDeviceId": None,
        "managedBy": "MicrosoftDefenderForEndpoint",
        "machineTags": list(machine.machine_tags),
        "ipAddresses": [{"ipAddress": machine.last_ip_address, "type": "Ethernet"}],
    }


def machine_fields(wire: dict[str, Any]) -> dict[str, Any]:
    """The filterable properties of a machine's wire JSON."""
    fields = {name: wire.get(name) for name in MACHINE_FIELDS}
    fields["lastSeen"] = datetime.fromisoformat(wire["lastSeen"][:26] + "+00:00")
    return fields


def _command_json(command: CommandView, record: ActionRecord) -> dict[str, Any]:
    plan = record.plans[command.index]
    return {
        "index": command.index,
        "startTime": None if command.start is None else iso(command.start),
        "endTime": None if command.end is None else iso(command.end),
        "commandStatus": command.status,
        "errors": list(command.errors),
        "command": {
            "type": plan.type,
            "params": [{"key": key, "value": value} for key, value in plan.params],
        },
    }


def action_json(
    record: ActionRecord, view: ActionView, *, with_commands: bool = True
) -> dict[str, Any]:
    """A MachineAction; ``with_commands=False`` gives the empty array of the POST answer."""
    return {
        "id": record.id,
        "type": "LiveResponse",
        "title": None,
        "requestor": record.requestor,
        "requestorComment": record.comment,
        "status": view.status,
        "machineId": record.machine_id,
        "computerDnsName": record.computer_dns_name,
        "creationDateTimeUtc": iso(record.created),
        "lastUpdateDateTimeUtc": iso(view.last_update),
        "cancellationRequestor": record.cancellation_requestor,
        "cancellationComment": record.cancellation_comment,
        "cancellationDateTimeUtc": None
        if record.cancelled_at is None
        else iso(record.cancelled_at),
        "errorHResult": view.error_hresult,
        "scope": None,
        "externalID": None,
        "requestSource": "PublicApi",
        "relatedFileInfo": None,
        "commands": [_command_json(c, record) for c in view.commands] if with_commands else [],
        "troubleshootInfo": None,
    }


def action_fields(record: ActionRecord, view: ActionView) -> dict[str, Any]:
    """The filterable properties of an action."""
    return {
        "id": record.id,
        "type": "LiveResponse",
        "status": view.status,
        "machineId": record.machine_id,
        "computerDnsName": record.computer_dns_name,
        "requestor": record.requestor,
        "creationDateTimeUtc": _dt(record.created),
        "lastUpdateDateTimeUtc": _dt(view.last_update),
    }


def library_json(file: SimLibraryFile, created: float, updated: float) -> dict[str, Any]:
    """A library file entry."""
    return {
        "fileName": file.file_name,
        "sha256": file.sha256,
        "description": file.description,
        "creationTime": iso(created),
        "lastUpdatedTime": iso(updated),
        "createdBy": file.created_by,
        "hasParameters": file.has_parameters,
        "parametersDescription": file.parameters_description,
    }
