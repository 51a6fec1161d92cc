"""Stopping the background tasks a component owns."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

STOP_GRACE_S = 2.0


async def stop(task: asyncio.Task[Any] | None) -> None:
    """Cancel an owned task and wait until it has finished (its outcome is not wanted)."""
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class Ticker:
    """Runs `step` every `interval_s()` seconds in an owned task, from `start` until `stop`.

    Stopping lets a step under way finish (at most STOP_GRACE_S) before cancelling it: a task
    cancelled inside a PyMongo call can leak the connection's socket (PYTHON-5867).
    """

    def __init__(self, step: Callable[[], Awaitable[None]], interval_s: Callable[[], float],
                 name: str) -> None:
        self._step = step
        self._interval_s = interval_s
        self._name = name
        self._stopping = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._stopping.clear()
        self.task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        self._stopping.set()
        if self.task is not None:
            await asyncio.wait({self.task}, timeout=grace_s)
        await stop(self.task)
        self.task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), self._interval_s())
            except TimeoutError:
                await self._step()
