"""Bounded stage queues and their owned worker tasks; MongoDB stays the queue of record."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol

import structlog

from footyd.clock import Clock, utcnow
from footyd.metrics import IN_FLIGHT, QUEUE_DEPTH, STAGE_OUTCOMES

log = structlog.get_logger(__name__)

# pymongo 4.20 may never finish cancelling a call the server does not answer: a stop waits this
# long for cancelled tasks, then leaves them (the process is about to exit)
CANCEL_WAIT_S = 5.0
# a due scan under way gets this long to finish before it is cancelled: a task cancelled while
# the MongoDB driver opens a connection leaks that socket (PyMongo PYTHON-5867)
SCAN_STOP_GRACE_S = 2.0

Handler = Callable[[str], Awaitable[None]]
Handoff = Callable[[str], Awaitable[bool]]  # queue an item on a stage: False when refused
DueQuery = Callable[[datetime, int], Awaitable[list[str]]]


class ClaimGate(Protocol):
    """Who works an item now when several replicas share the queues of record (runtime/claims.py)."""

    async def take(self, stage: str, item_id: str) -> bool: ...
    async def release(self, stage: str, item_id: str) -> None: ...
    async def held_elsewhere(self, stage: str, item_ids: Iterable[str]) -> set[str]: ...


@dataclass(frozen=True)
class StageSpec:
    """One stage: its handler is idempotent and re-reads the item from MongoDB."""

    name: str
    handler: Handler
    workers: int
    due: DueQuery | None = None  # finds work in MongoDB: resume at start, retries, schedules
    queue_size: int = 1000


class _Stage:
    def __init__(self, spec: StageSpec) -> None:
        self.spec = spec
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=spec.queue_size)
        self.pending: set[str] = set()  # queued or in flight: the same id is never queued twice
        self.running: set[str] = set()
        self.rerun: set[str] = set()  # put again while in flight: queue once more afterwards
        self.workers: list[asyncio.Task[None]] = []
        self.target = spec.workers
        self.alive = 0  # workers not retired: reconciled against target by count, not by index
        self.spawned = 0  # for task names only
        self.in_flight = 0
        self.closed = False


class Pipeline:
    """Runs stage workers in spec order; `put` hands an item id to a stage after its state was written.

    The order the specs are given in is the flow's order: the due scan and the drain follow it.
    """

    def __init__(
        self,
        specs: Sequence[StageSpec] = (),
        *,
        scan_interval_s: float = 5.0,
        clock: Clock = utcnow,
        claims: ClaimGate | None = None,
    ) -> None:
        self._specs = list(specs)
        self._claims = claims  # None: the only replica, nothing to share
        self._stages: dict[str, _Stage] = {}
        self._scan_interval_s = scan_interval_s
        self._clock = clock
        self._scanner: asyncio.Task[None] | None = None
        self._scan_now = asyncio.Event()
        self._scan_stopping = False

    def add(self, spec: StageSpec) -> None:
        """Append a stage (before the pipeline starts); it drains after those added before it."""
        if self._stages:
            raise RuntimeError("stages are added before the pipeline starts")
        self._specs.append(spec)

    def sender(self, stage_name: str) -> Handoff:
        """The hand-off to one stage; before the pipeline starts it refuses (the due scan finds it)."""

        async def send(item_id: str) -> bool:
            return await self.put(stage_name, item_id)

        return send

    async def __aenter__(self) -> Pipeline:
        for spec in self._specs:
            stage = _Stage(spec)
            self._stages[spec.name] = stage
            QUEUE_DEPTH.labels(spec.name).set_function(stage.queue.qsize)
            for _ in range(spec.workers):
                self._spawn(stage)
        if any(spec.due for spec in self._specs):
            # the first scan is the resume of everything left unfinished by the last run
            self._scanner = asyncio.create_task(self._scan_loop(), name="pipeline-due-scan")
        log.info("pipeline_started", stages={n: s.target for n, s in self._stages.items()})
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stop_scanner()
        for stage in self._stages.values():
            await self._cancel_workers(stage)

    async def _stop_scanner(self) -> None:
        if self._scanner is not None:
            # ask first: the scan ends after the pass under way, cancelled only past the grace
            self._scan_stopping = True
            self._scan_now.set()
            await asyncio.wait({self._scanner}, timeout=SCAN_STOP_GRACE_S)
            await _cancel_within({self._scanner}, "due_scan")
            self._scanner = None

    def set_scan_interval(self, seconds: float) -> None:
        self._scan_interval_s = seconds

    async def scan_once(self) -> dict[str, int]:
        """Queue every item MongoDB says is due, in stage order; returns how many were queued."""
        queued: dict[str, int] = {}
        now = self._clock()
        for stage in self._stages.values():
            due = stage.spec.due
            room = stage.queue.maxsize - stage.queue.qsize()
            if due is None or stage.closed or room <= 0:
                continue
            ids = await due(now, room)
            if self._claims is not None and ids:  # being worked by another replica right now
                busy = await self._claims.held_elsewhere(stage.spec.name, ids)
                ids = [i for i in ids if i not in busy]
            queued[stage.spec.name] = sum([await self.put(stage.spec.name, i) for i in ids])
        return queued

    async def idle(self) -> None:
        """Wait until every stage has nothing queued or in flight (tests, demo, benchmarks)."""
        while any(stage.pending for stage in self._stages.values()):
            for stage in self._stages.values():
                await stage.queue.join()

    async def _scan_loop(self) -> None:
        first = True
        while not self._scan_stopping:
            try:
                queued = await self.scan_once()
                if first or any(queued.values()):
                    log.info("pipeline_resumed" if first else "pipeline_due_queued", queued=queued)
                first = False
            except asyncio.CancelledError:
                raise
            except Exception:
                # e.g. MongoDB unreachable for a while: items stay due, the next scan finds them
                log.error("pipeline_scan_failed", exc_info=True)
            if self._scan_stopping:
                return
            self._scan_now.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._scan_now.wait(), self._scan_interval_s)

    @property
    def stage_names(self) -> list[str]:
        return list(self._stages)

    def depth(self, stage: str) -> int:
        return self._stages[stage].queue.qsize()

    def _spawn(self, stage: _Stage) -> None:
        stage.spawned += 1
        stage.alive += 1
        task = asyncio.create_task(self._work(stage), name=f"{stage.spec.name}-{stage.spawned}")
        stage.workers.append(task)

    async def put(self, stage_name: str, item_id: str) -> bool:
        """Queue an item unless it is pending, the stage is draining or its queue is full."""
        stage = self._stages.get(stage_name)
        if stage is None or stage.closed:
            return False
        if item_id in stage.pending:
            if item_id in stage.running:
                stage.rerun.add(item_id)  # new work arrived for an item being handled
            return False
        try:
            stage.queue.put_nowait(item_id)
        except asyncio.QueueFull:
            # never block the caller (the monitor must keep polling): the due scan finds it later
            log.warning("stage_queue_full", stage=stage_name, item_id=item_id)
            return False
        stage.pending.add(item_id)
        return True

    async def _work(self, stage: _Stage) -> None:
        try:
            await self._work_items(stage)
        finally:
            stage.alive -= 1

    async def _work_items(self, stage: _Stage) -> None:
        name = stage.spec.name
        while True:
            item_id = await stage.queue.get()
            if stage.alive > stage.target:
                # more workers than configured (a decrease): whichever is free retires, so a
                # busy worker never counts as one about to leave
                stage.queue.put_nowait(item_id)
                stage.queue.task_done()
                return
            stage.in_flight += 1
            stage.running.add(item_id)
            IN_FLIGHT.labels(name).inc()
            try:
                await self._handle(name, item_id)
            finally:
                stage.in_flight -= 1
                IN_FLIGHT.labels(name).dec()
                stage.running.discard(item_id)
                stage.pending.discard(item_id)
                if item_id in stage.rerun and not stage.closed:
                    stage.rerun.discard(item_id)
                    try:
                        stage.queue.put_nowait(item_id)
                        stage.pending.add(item_id)
                    except asyncio.QueueFull:
                        pass  # the periodic due scan re-queues it from MongoDB
                stage.queue.task_done()

    async def _handle(self, name: str, item_id: str) -> None:
        """Run the handler under the item's claim; any failure leaves the item due in MongoDB."""
        claims = self._claims
        try:
            if claims is not None and not await claims.take(name, item_id):
                STAGE_OUTCOMES.labels(name, "claimed_elsewhere").inc()
                return
            await self._spec(name).handler(item_id)
            STAGE_OUTCOMES.labels(name, "ok").inc()
        except asyncio.CancelledError:
            raise  # a cut handler's claim is freed when the claims close, after the drain
        except Exception:
            # the item stays non-terminal in MongoDB; resume or a retry picks it up
            STAGE_OUTCOMES.labels(name, "error").inc()
            log.error("stage_handler_failed", stage=name, item_id=item_id, exc_info=True)
        if claims is not None:
            await claims.release(name, item_id)

    def _spec(self, name: str) -> StageSpec:
        return self._stages[name].spec

    def set_workers(self, stage_name: str, workers: int) -> None:
        """Grow or shrink a stage's worker count (hot reload of concurrency)."""
        stage = self._stages[stage_name]
        if workers == stage.target:
            return
        stage.workers = [t for t in stage.workers if not t.done()]
        stage.target = workers
        while stage.alive < workers:
            self._spawn(stage)
        log.info("stage_workers_changed", stage=stage_name, workers=workers)

    async def drain(self, budgets_s: Mapping[str, float]) -> dict[str, int]:
        """Close intake and finish each stage in order within its budget; return what is left."""
        await self._stop_scanner()
        left: dict[str, int] = {}
        for name, stage in self._stages.items():
            # upstream stages are drained already, so nothing new arrives once this one closes
            stage.closed = True
            budget = budgets_s.get(name, 0.0)
            started = time.monotonic()
            try:
                await asyncio.wait_for(stage.queue.join(), timeout=budget)
            except TimeoutError:
                pass
            remaining = stage.queue.qsize() + stage.in_flight
            left[name] = remaining
            await self._cancel_workers(stage)
            log.info(
                "stage_drained",
                stage=name,
                left=remaining,
                took_s=round(time.monotonic() - started, 3),
                budget_s=budget,
            )
        return left

    async def _cancel_workers(self, stage: _Stage) -> None:
        await _cancel_within(set(stage.workers), stage.spec.name)
        stage.workers.clear()


async def _cancel_within(tasks: set[asyncio.Task[None]], what: str) -> None:
    """Cancel tasks and wait for them, but at most CANCEL_WAIT_S: a drain must end."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    _done, stuck = await asyncio.wait(tasks, timeout=CANCEL_WAIT_S)
    if stuck:
        log.warning("tasks_left_cancelling", what=what, tasks=len(stuck), waited_s=CANCEL_WAIT_S)
