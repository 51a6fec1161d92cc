"""APScheduler 3.x AsyncIOScheduler: heartbeat, interval and daily cron jobs."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC
from types import TracebackType

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from footyd.metrics import SCHEDULER_TICK

log = structlog.get_logger(__name__)

Job = Callable[[], Awaitable[None]]
HEARTBEAT_S = 5.0


class Scheduler:
    """Owns the AsyncIOScheduler; jobs never overlap themselves (max_instances=1)."""

    def __init__(self, *, heartbeat_s: float = HEARTBEAT_S) -> None:
        self._heartbeat_s = heartbeat_s
        self._sched: AsyncIOScheduler | None = None
        self.last_tick: float | None = None

    async def __aenter__(self) -> Scheduler:
        # Must be created and started inside the running loop.
        self._sched = AsyncIOScheduler(timezone=UTC)
        self._sched.start()
        self.add_interval("heartbeat", self._tick, self._heartbeat_s, run_now=True)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop firing jobs (idempotent); running jobs are not awaited here."""
        if self._sched is not None and self._sched.running:
            self._sched.shutdown(wait=False)
            log.info("scheduler_stopped")

    async def _tick(self) -> None:
        self.last_tick = time.time()
        SCHEDULER_TICK.set(self.last_tick)

    @property
    def sched(self) -> AsyncIOScheduler:
        if self._sched is None:
            raise RuntimeError("Scheduler is not started")
        return self._sched

    def add_interval(self, job_id: str, func: Job, seconds: float, *, run_now: bool = False) -> None:
        from datetime import datetime

        self.sched.add_job(
            func,
            IntervalTrigger(seconds=seconds),
            id=job_id,
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=datetime.now(UTC) if run_now else None,
        )

    def add_daily(self, job_id: str, func: Job, at: str) -> None:
        hour, minute = (int(p) for p in at.split(":"))
        self.sched.add_job(
            func,
            CronTrigger(hour=hour, minute=minute, timezone=UTC),
            id=job_id,
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=3600,
        )

    def reschedule_interval(self, job_id: str, seconds: float) -> None:
        """Change an interval job's period (hot reload, quota pacing)."""
        job = self.sched.get_job(job_id)
        if job is None:
            return
        trigger = job.trigger
        if isinstance(trigger, IntervalTrigger) and trigger.interval.total_seconds() == seconds:
            return
        self.sched.reschedule_job(job_id, trigger=IntervalTrigger(seconds=seconds))
        log.info("job_rescheduled", job_id=job_id, interval_s=seconds)

    def reschedule_daily(self, job_id: str, at: str) -> None:
        hour, minute = (int(p) for p in at.split(":"))
        if self.sched.get_job(job_id) is not None:
            self.sched.reschedule_job(
                job_id, trigger=CronTrigger(hour=hour, minute=minute, timezone=UTC)
            )

    def interval_of(self, job_id: str) -> float | None:
        job = self.sched.get_job(job_id)
        if job is None or not isinstance(job.trigger, IntervalTrigger):
            return None
        return float(job.trigger.interval.total_seconds())
