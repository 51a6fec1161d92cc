"""The pipeline's conveyor belt: de-duplicated queueing, reruns, resizing, due scans, staged drain."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from footyd.metrics import REGISTRY
from footyd.pipeline import CANCEL_WAIT_S, Pipeline, StageSpec


class Gate:
    """A handler that records calls and blocks each call until released."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.running = 0
        self.peak = 0
        self.release = asyncio.Event()
        self.entered = asyncio.Event()
        self.three_running = asyncio.Event()

    async def __call__(self, item_id: str) -> None:
        self.calls.append(item_id)
        self.running += 1
        self.peak = max(self.peak, self.running)
        self.entered.set()
        if self.running >= 3:
            self.three_running.set()
        try:
            await self.release.wait()
        finally:
            self.running -= 1


async def test_same_id_is_never_queued_twice_and_rerun_after_in_flight() -> None:
    gate = Gate()
    async with Pipeline([StageSpec("download", gate, workers=1)]) as p:
        assert await p.put("download", "c1")
        await gate.entered.wait()
        assert not await p.put("download", "c1")  # in flight: remembered for one more run
        assert not await p.put("download", "c1")
        gate.release.set()
        await p.idle()
    assert gate.calls == ["c1", "c1"]


async def test_failing_handler_is_logged_and_the_worker_goes_on() -> None:
    seen: list[str] = []

    async def handler(item_id: str) -> None:
        seen.append(item_id)
        if item_id == "bad":
            raise RuntimeError("boom")

    before = REGISTRY.get_sample_value("footyd_stage_outcomes_total",
                                       {"stage": "dedup", "outcome": "error"}) or 0
    async with Pipeline([StageSpec("dedup", handler, workers=1)]) as p:
        await p.put("dedup", "bad")
        await p.put("dedup", "good")
        await p.idle()
    assert seen == ["bad", "good"]
    after = REGISTRY.get_sample_value("footyd_stage_outcomes_total",
                                      {"stage": "dedup", "outcome": "error"})
    assert after == before + 1


async def test_workers_grow_and_shrink_live() -> None:
    gate = Gate()
    async with Pipeline([StageSpec("download", gate, workers=1)]) as p:
        for i in range(4):
            await p.put("download", f"c{i}")
        await gate.entered.wait()
        assert gate.running == 1
        p.set_workers("download", 3)
        await gate.three_running.wait()  # the new workers picked up queued items
        assert gate.peak == 3
        p.set_workers("download", 1)
        gate.release.set()
        await p.idle()
    assert sorted(gate.calls) == ["c0", "c1", "c2", "c3"]


async def test_due_scan_resumes_work_from_the_store_of_record() -> None:
    handled: list[str] = []
    resumed = asyncio.Event()
    due_calls: list[datetime] = []
    now = datetime(2026, 3, 14, 12, tzinfo=UTC)

    async def due(at: datetime, limit: int) -> list[str]:
        due_calls.append(at)
        return ["g1", "g2"][:limit]

    async def handler(item_id: str) -> None:
        handled.append(item_id)
        if len(handled) == 2:
            resumed.set()

    async with Pipeline([StageSpec("search", handler, workers=2, due=due)],
                        scan_interval_s=3600, clock=lambda: now) as p:
        await resumed.wait()  # the first scan runs at start: that is the resume
        assert await p.scan_once() == {"search": 2}
        await p.idle()
    assert sorted(handled) == ["g1", "g1", "g2", "g2"] and due_calls[0] == now


async def test_drain_goes_in_stage_order_within_budgets() -> None:
    order: list[str] = []
    stuck = Gate()

    async def search(item_id: str) -> None:
        order.append(f"search:{item_id}")
        await p.put("download", item_id)  # hand-off while search drains: download still open

    async def download(item_id: str) -> None:
        order.append(f"download:{item_id}")
        await p.put("dedup", item_id)

    p = Pipeline([StageSpec("search", search, 1), StageSpec("download", download, 1),
                  StageSpec("dedup", stuck, 1)])
    async with p:
        await p.put("search", "g1")
        left = await p.drain({"search": 1.0, "download": 1.0, "dedup": 0.05})
        assert not await p.put("search", "g2")  # closed for good
    assert order == ["search:g1", "download:g1"]
    assert stuck.calls == ["g1"]
    assert left == {"search": 0, "download": 0, "dedup": 1}  # cut at its budget, left for next start


async def test_full_queue_refuses_without_blocking_the_caller() -> None:
    gate = Gate()
    async with Pipeline([StageSpec("search", gate, workers=1, queue_size=1)]) as p:
        assert await p.put("search", "g1")
        await gate.entered.wait()  # g1 in flight, the queue is empty again
        assert await p.put("search", "g2")  # fills the queue
        assert not await p.put("search", "g3")  # refused at once: it stays due in MongoDB
        gate.release.set()
        await p.idle()
    assert gate.calls == ["g1", "g2"]


class Holds:
    """A handler that blocks items named hold* until each is released; others return at once."""

    def __init__(self) -> None:
        self.running: set[str] = set()
        self.done: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.changed = asyncio.Event()

    def gate(self, item_id: str) -> asyncio.Event:
        return self.gates.setdefault(item_id, asyncio.Event())

    async def __call__(self, item_id: str) -> None:
        self.running.add(item_id)
        self.changed.set()
        try:
            if item_id.startswith("hold"):
                await self.gate(item_id).wait()
            else:
                await asyncio.sleep(0)  # yield once, as any real handler does
        finally:
            self.running.discard(item_id)
            self.done.append(item_id)
            self.changed.set()

    async def until(self, cond: Callable[[], bool]) -> None:
        while not cond():
            self.changed.clear()
            await self.changed.wait()


async def _settle() -> None:
    """Let every runnable task run until it blocks (loop turns, no wall-clock wait)."""
    for _ in range(50):
        await asyncio.sleep(0)


async def test_worker_count_follows_config_while_a_high_numbered_worker_is_busy() -> None:
    h = Holds()
    async with Pipeline([StageSpec("download", h, workers=3)]) as p:
        for i in range(3):
            await p.put("download", f"hold{i}")
        await h.until(lambda: len(h.running) == 3)
        h.gate("hold0").set()
        h.gate("hold1").set()
        await h.until(lambda: {"hold0", "hold1"} <= set(h.done))
        await _settle()  # workers 0 and 1 are idle again, waiting for items
        p.set_workers("download", 1)  # worker 2 is still busy with hold2
        await p.put("download", "quick0")
        await p.put("download", "quick1")
        await _settle()
        p.set_workers("download", 2)
        h.gate("hold2").set()
        await h.until(lambda: {"hold2", "quick0", "quick1"} <= set(h.done))
        for i in range(3, 7):
            await p.put("download", f"hold{i}")
        await _settle()
        assert len(h.running) == 2, f"configured 2 workers, {len(h.running)} running"
        for i in range(3, 7):
            h.gate(f"hold{i}").set()
        await p.idle()
    assert len(h.done) == 9



async def test_senders_refuse_until_started_and_the_drain_follows_the_order_stages_were_added(
) -> None:
    p = Pipeline()
    to_b, to_a = p.sender("b"), p.sender("a")
    assert not await to_b("x")  # not started: refused, the due scan finds it later
    handled: list[str] = []

    async def record(item_id: str) -> None:
        handled.append(item_id)

    p.add(StageSpec("b", record, 1))
    p.add(StageSpec("a", record, 1))
    async with p:
        assert await to_b("x") and await to_a("y")
        await p.idle()
        left = await p.drain({"a": 1.0, "b": 1.0})
    assert sorted(handled) == ["x", "y"]
    assert list(left) == ["b", "a"]  # no fixed stage list: the drain walks the added order
    with pytest.raises(RuntimeError):
        p.add(StageSpec("c", record, 1))  # a started (even a stopped) pipeline takes no stage


async def test_a_stop_lets_the_scan_under_way_finish_instead_of_cutting_it() -> None:
    # a task cancelled while the MongoDB driver opens a connection leaks that socket (PyMongo
    # PYTHON-5867; seen as a ResourceWarning in CI): the pass under way ends, then the scan stops
    entered = asyncio.Event()
    outcome: list[str] = []

    async def due(_now: object, _limit: int) -> list[str]:
        entered.set()
        try:
            await asyncio.sleep(0.3)  # a scan pass that takes a moment
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        outcome.append("finished")
        return []

    async def handle(_item: str) -> None:
        return None

    async with Pipeline([StageSpec("search", handle, 1, due=due)], scan_interval_s=3600):
        await asyncio.wait_for(entered.wait(), 5)
    assert outcome == ["finished"]  # and no second pass was started on the way out


async def test_a_drain_ends_when_a_cancelled_driver_call_never_finishes_cancelling() -> None:
    # pymongo 4.20 can sit forever in the cancellation of a call the server does not answer
    # (seen after a SIGSTOP and SIGCONT): the scan and the workers are left, the drain ends
    entered = asyncio.Event()

    async def stubborn() -> None:
        entered.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(3600)

    async def due(_now: object, _limit: int) -> list[str]:
        await stubborn()
        return []

    async def handle(_item: str) -> None:
        await stubborn()

    pipeline = Pipeline([StageSpec("search", handle, 1, due=due)], scan_interval_s=3600)
    async with pipeline:
        await asyncio.wait_for(entered.wait(), 5)
        entered.clear()
        assert await pipeline.put("search", "g1")
        await asyncio.wait_for(entered.wait(), 5)
        started = time.monotonic()
        left = await pipeline.drain({"search": 0.1})
        took_s = time.monotonic() - started
    assert left == {"search": 1}
    assert took_s < 3 * CANCEL_WAIT_S, took_s
