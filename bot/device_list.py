"""The device field of a batch request: several devices, or ``tag:<name>`` (pure parsing).

``ws-1,ws-2 ws-3`` names three devices; ``tag:Finance`` names every device carrying that
Defender tag; both may be mixed. One plain device name is not a batch, so the ordinary
request path is unchanged for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["MAX_DEVICES", "DeviceList", "DeviceListError", "is_batch", "parse_devices"]

MAX_DEVICES = 20
MAX_ENTRY = 255  # no DNS name is longer
MAX_TAG = 200  # Defender's limit on a machine tag
_SEPARATORS = re.compile(r"[,;\s]+")
TAG_PREFIX = "tag:"


class DeviceListError(ValueError):
    """A device field that cannot name a batch, said so the analyst can fix it."""


@dataclass(frozen=True)
class DeviceList:
    """What the analyst named, in their order, duplicates removed (case-insensitively)."""

    devices: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


def _entries(text: str) -> list[str]:
    return [e for e in _SEPARATORS.split(text.strip()) if e]


def is_batch(text: str) -> bool:
    """Whether the field names more than one device, or a tag."""
    entries = _entries(text)
    return len(entries) > 1 or any(e.lower().startswith(TAG_PREFIX) for e in entries)


def parse_devices(text: str) -> DeviceList:
    """The devices and tags in ``text``; ``DeviceListError`` for what cannot be one."""
    devices: list[str] = []
    tags: list[str] = []
    seen: set[str] = set()
    for entry in _entries(text):
        key = entry.lower().rstrip(".")
        if key in seen:
            continue
        seen.add(key)
        if key.startswith(TAG_PREFIX):
            tag = entry[len(TAG_PREFIX) :]
            if not tag:
                raise DeviceListError("`tag:` needs a tag name after it, such as tag:Finance.")
            if len(tag) > MAX_TAG:
                raise DeviceListError(f"A device tag has at most {MAX_TAG} characters.")
            tags.append(tag)
            continue
        if len(entry) > MAX_ENTRY:
            raise DeviceListError(
                f"A device name has at most {MAX_ENTRY} characters: {entry[:40]}… is longer."
            )
        devices.append(entry)
    if not devices and not tags:
        raise DeviceListError("Give the devices: host names or machine ids, or tag:<name>.")
    if len(devices) > MAX_DEVICES:
        raise DeviceListError(
            f"A batch has at most {MAX_DEVICES} devices; this names {len(devices)}."
        )
    return DeviceList(tuple(devices), tuple(tags))
