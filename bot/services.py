"""The parts listeners call, passed explicitly (no module-global state)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.intake import Intake
from bot.lifecycle import Lifecycle
from bot.settings import BotSettings

__all__ = ["Services"]


@dataclass(frozen=True)
class Services:
    settings: BotSettings
    intake: Intake
    lifecycle: Lifecycle
    wake_outbox: Callable[[], None]
