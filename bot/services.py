"""The parts listeners call, passed explicitly (no module-global state)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.batch_intake import BatchIntake
from bot.batch_lifecycle import BatchLifecycle
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
    # Batch requests (several devices or a tag in the device field), when wired.
    batch_intake: BatchIntake | None = None
    batches: BatchLifecycle | None = None
