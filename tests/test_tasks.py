"""Owned periodic tasks: a stop lets the step under way finish, within a grace, then cancels."""

from __future__ import annotations

import asyncio
import itertools

from footyd.runtime.tasks import Ticker


async def test_a_stop_waits_for_the_step_under_way_instead_of_cutting_it() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[int] = []

    async def step() -> None:
        started.set()
        await release.wait()  # a MongoDB call in flight
        finished.append(1)

    ticker = Ticker(step, lambda: 0.0, "t")
    ticker.start()
    await started.wait()
    stopping = asyncio.create_task(ticker.stop(grace_s=30.0))
    await asyncio.sleep(0)  # the stop is asked while the step is still waiting
    assert not stopping.done()
    release.set()
    await stopping
    assert finished == [1] and ticker.task is None


async def test_a_step_past_the_grace_is_cancelled_and_no_step_follows_a_stop() -> None:
    steps = 0
    started = asyncio.Event()

    async def stuck() -> None:
        nonlocal steps
        steps += 1
        started.set()
        await asyncio.Event().wait()  # never returns

    ticker = Ticker(stuck, lambda: 0.0, "t")
    ticker.start()
    await started.wait()
    await asyncio.wait_for(ticker.stop(grace_s=0.05), 5.0)
    assert ticker.task is None and steps == 1


async def test_steps_repeat_at_the_interval_until_stopped() -> None:
    ticks: list[float] = []
    three = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def step() -> None:
        ticks.append(loop.time())
        if len(ticks) == 3:
            three.set()

    ticker = Ticker(step, lambda: 0.05, "t")
    ticker.start()
    await asyncio.wait_for(three.wait(), 5.0)
    await ticker.stop()
    count = len(ticks)
    await asyncio.sleep(0.15)  # three intervals: a stopped ticker steps no more
    assert len(ticks) == count >= 3
    assert all(b - a >= 0.04 for a, b in itertools.pairwise(ticks))
