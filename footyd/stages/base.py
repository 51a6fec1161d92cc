"""The contract every pipeline stage implements (stages meet only through MongoDB and queues)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from footyd.config import Config


class Stage(Protocol):
    """An idempotent handler of item ids plus the MongoDB query that finds due work."""

    name: str

    async def handle(self, item_id: str) -> None:
        """Re-read the item and act only if its state still asks for it."""

    async def due(self, now: datetime, limit: int) -> list[str]:
        """Ids whose state says this stage has work for them now (resume and retries)."""

    def apply_config(self, cfg: Config) -> None:
        """Take hot-reloaded settings."""

    def workers(self) -> int:
        """How many workers the pipeline runs for this stage now (after apply_config)."""
