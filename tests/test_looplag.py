"""The loop-lag probe measures how long the event loop was kept from its timers."""

from __future__ import annotations

import asyncio
import time

from footyd.runtime import looplag


def _count() -> float:
    samples = looplag.LOOP_LAG.collect()[0].samples
    return next(s.value for s in samples if s.name == "footyd_loop_lag_seconds_count")


async def test_a_blocked_loop_shows_as_lag() -> None:
    task = asyncio.create_task(looplag.probe(interval_s=0.01))
    try:
        before = _count()
        # the probe's samples have no event to await: yielding to the loop lets it take them
        while _count() < before + 3:  # noqa: ASYNC110 - idle: timers fire about on time
            await asyncio.sleep(0.01)
        time.sleep(0.3)  # noqa: ASYNC251 - blocking the loop, as a CPU-bound job run in place would
        while _count() < before + 5:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        worst = looplag.LOOP_LAG_MAX.collect()[0].samples[0].value
        assert worst >= 0.25
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
