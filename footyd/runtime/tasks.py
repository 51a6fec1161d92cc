"""Stopping the background tasks a component owns."""

from __future__ import annotations

import asyncio
from typing import Any


async def stop(task: asyncio.Task[Any] | None) -> None:
    """Cancel an owned task and wait until it has finished (its outcome is not wanted)."""
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
