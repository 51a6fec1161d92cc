"""The process pool: a hung job costs only its own worker; shutdown never blocks the loop."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from footyd.errors import Retryable
from footyd.procpool import POOL_REBUILDS, ProcessPool


def slow_square(x: int, delay_s: float) -> tuple[int, int]:
    """Runs in a worker: sleep, then return x*x and the worker's pid."""
    time.sleep(delay_s)
    return x * x, os.getpid()


def die_now() -> None:
    os._exit(3)


def raise_value_error(text: str) -> None:
    raise ValueError(text)


async def test_a_hung_job_times_out_alone_and_innocent_jobs_in_flight_succeed() -> None:
    pool = ProcessPool(4)
    try:
        # start all four workers first so the timeout below measures the job, not a spawn
        warm = await asyncio.gather(*(pool.run(slow_square, i, 0.3, timeout_s=60) for i in range(4)))
        assert len({pid for _, pid in warm}) == 4
        replaced = POOL_REBUILDS._value.get()
        hung = asyncio.create_task(pool.run(time.sleep, 60, timeout_s=1.0))
        innocents = [asyncio.create_task(pool.run(slow_square, i, 3.0, timeout_s=60)) for i in range(3)]
        with pytest.raises(Retryable, match="timed out"):
            await hung
        results = await asyncio.gather(*innocents)  # none of them is charged for the hung one
        assert [sq for sq, _ in results] == [0, 1, 4]
        assert POOL_REBUILDS._value.get() == replaced + 1
        # the killed worker was replaced: four live workers again, one of them new
        pids = {pid for _, pid in await asyncio.gather(
            *(pool.run(slow_square, i, 0.3, timeout_s=60) for i in range(4)))}
        assert len(pids) == 4 and pids != {pid for _, pid in warm}
    finally:
        await pool.aclose(timeout_s=5)


async def test_job_errors_pass_through_and_a_dead_worker_is_retryable() -> None:
    pool = ProcessPool(1)
    try:
        with pytest.raises(ValueError, match="bad input"):
            await pool.run(raise_value_error, "bad input", timeout_s=60)
        with pytest.raises(Retryable, match="worker died"):
            await pool.run(die_now, timeout_s=60)
        assert (await pool.run(slow_square, 7, 0, timeout_s=60))[0] == 49
    finally:
        await pool.aclose(timeout_s=5)


async def test_shutdown_off_the_loop_terminates_a_running_job_at_its_budget() -> None:
    pool = ProcessPool(2)
    await pool.run(slow_square, 1, 0, timeout_s=60)
    job = asyncio.create_task(pool.run(time.sleep, 60, timeout_s=120))
    await asyncio.sleep(0)  # one loop turn: the task takes a worker and sends its job
    assert pool.busy == 1
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    started = time.monotonic()
    try:
        await pool.aclose(timeout_s=1.0)
        took = time.monotonic() - started
    finally:
        tick.cancel()
        await asyncio.gather(tick, return_exceptions=True)
    assert took < 10, f"close took {took:.1f}s for a 1 s budget"
    assert gaps and max(gaps) < 0.9, "the event loop was blocked during the pool shutdown"
    with pytest.raises(Retryable):
        await job
    assert pool.pids == []
    with pytest.raises(Retryable, match="shut down"):
        await pool.run(slow_square, 1, 0, timeout_s=60)


def allocate_mb(size_mb: int) -> int:
    """Runs in a worker: hold `size_mb` of memory at once (a decoder that never stops)."""
    block = bytearray(size_mb * 1024 * 1024)
    return len(block)


async def test_an_idle_worker_killed_from_outside_is_replaced_before_the_next_job() -> None:
    pool = ProcessPool(1)
    try:
        _, pid = await pool.run(slow_square, 2, 0, timeout_s=60)
        assert pool.pids == [pid] and pool.busy == 0
        replaced = POOL_REBUILDS._value.get()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(pid):  # the forkserver reaps it; no event to await from here
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        square, new_pid = await pool.run(slow_square, 3, 0, timeout_s=60)
        assert square == 9 and new_pid != pid
        assert POOL_REBUILDS._value.get() == replaced + 1
    finally:
        await pool.aclose(timeout_s=5)


async def test_a_job_allocating_past_the_memory_cap_fails_alone() -> None:
    pool = ProcessPool(1, max_memory_mb=1024)
    try:
        assert await pool.run(allocate_mb, 64, timeout_s=60) == 64 * 1024 * 1024
        with pytest.raises((MemoryError, Retryable)):
            await pool.run(allocate_mb, 2048, timeout_s=60)
        assert (await pool.run(slow_square, 5, 0, timeout_s=60))[0] == 25
    finally:
        await pool.aclose(timeout_s=5)
    uncapped = ProcessPool(1)  # the same job without the cap succeeds: the cap is what failed it
    try:
        assert await uncapped.run(allocate_mb, 2048, timeout_s=60) == 2048 * 1024 * 1024
    finally:
        await uncapped.aclose(timeout_s=5)


def _alive(pid: int) -> bool:
    """Until the forkserver has reaped it: a zombie's other threads may still hold its pipe."""
    return os.path.exists(f"/proc/{pid}")
