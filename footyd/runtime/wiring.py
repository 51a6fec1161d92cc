"""Assembles the running components (client, stages, pipeline, scheduler) on the daemon's stack."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog

from footyd.clients.blobs import BlobStore
from footyd.clients.football import FootballClient
from footyd.clients.store import Store, StoreError
from footyd.clients.webhooks import WebhookClient
from footyd.clock import Clock, utcnow
from footyd.config import Config, ShutdownConfig
from footyd.errors import ConfigError, FootydError
from footyd.fence import UNFENCED, Fence, Fenced
from footyd.pipeline import Pipeline, StageSpec
from footyd.procpool import ProcessPool
from footyd.runtime import scratch
from footyd.runtime.claims import Claims
from footyd.runtime.lease import Lease
from footyd.runtime.orphans import release_leftover_uploads
from footyd.runtime.schedule import Scheduler
from footyd.sources import Source, build_sources
from footyd.stages.base import Stage
from footyd.stages.dedup import DedupStage
from footyd.stages.download import DownloadStage
from footyd.stages.ingest import Ingest, Scope, ingest_days
from footyd.stages.monitor import Monitor
from footyd.stages.notify import NotifyStage
from footyd.stages.retention import Retention
from footyd.stages.search import SearchStage

log = structlog.get_logger(__name__)

MONITOR_JOB = "monitor_poll"
STAGING_JOB = "monitor_staging"
INGEST_JOB = "daily_ingest"
STALE_SWEEP_TIMEOUT_S = 30.0
RETENTION_JOB = "daily_retention"
FEED_JOB = "feed_push"
ERROR_MAX_CHARS = 300  # a source's last error in the heartbeat



def scope_of(cfg: Config) -> Scope:
    return Scope(teams=tuple(cfg.scope.teams), leagues=tuple(cfg.scope.leagues),
                 season=cfg.scope.season)


@dataclass
class Runtime:
    """Everything the daemon started, in startup order; owns the intake tasks it spawns."""

    cfg: Config
    store: Store
    blobs: BlobStore
    pool: ProcessPool
    pipeline: Pipeline
    scheduler: Scheduler
    stages: VideoStages
    client: FootballClient | None = None
    ingest: Ingest | None = None
    monitor: Monitor | None = None
    intake_tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    lease: Lease | None = None  # None: a replica of its own, always leading

    @property
    def fence(self) -> Fence:
        """What the writes made while leading are checked against (footyd/fence.py)."""
        return self.lease if self.lease is not None else UNFENCED

    @property
    def leads(self) -> bool:
        """Whether this replica does the work that must happen once (see runtime/lease.py)."""
        return self.lease is None or self.lease.held

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run an intake task owned by the runtime (awaited or cancelled on drain)."""
        task = asyncio.create_task(coro, name=name)
        self.intake_tasks.add(task)
        task.add_done_callback(self.intake_tasks.discard)

    async def _intake(self, name: str, coro: Coroutine[Any, Any, Any]) -> None:
        """Run one scheduled job as an owned intake task; its failure is logged, never raised."""
        task = asyncio.current_task()
        if task is not None:
            self.intake_tasks.add(task)
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Fenced as exc:  # lost the lease mid-job (paused past the TTL): the new leader goes on
            log.warning("lease_write_fenced", job=name, reason=str(exc))
        except Exception:
            # e.g. MongoDB unreachable for a while: the next run tries again
            log.error("job_failed", job=name, exc_info=True)
        finally:
            if task is not None:
                self.intake_tasks.discard(task)

    def took_over(self) -> None:
        """A standby just became the leader: poll now rather than at the next tick (the old
        leader may have died a poll interval ago), and ingest as a fresh start does."""
        self.spawn(self.run_monitor(), "poll-on-elected")
        if self.cfg.ingest.on_startup:
            self.spawn(self.run_ingest(), "ingest-on-elected")

    async def run_ingest(self) -> None:
        if self.ingest is not None and self.leads:
            days = ingest_days(utcnow(), self.cfg.ingest.days_ahead)
            await self._intake(INGEST_JOB, self.ingest.run(scope_of(self.cfg), days))

    async def run_monitor(self) -> None:
        if self.monitor is not None and self.leads:
            await self._intake(MONITOR_JOB, self.monitor.poll_active())

    async def run_staging_check(self) -> None:
        if self.monitor is not None and self.leads:
            await self._intake(STAGING_JOB, self.monitor.check_staging())

    async def run_feeds(self) -> None:
        if not self.leads:
            return
        await self._intake(FEED_JOB, self.stages.search.push_feeds())

    async def run_retention(self) -> None:
        if self.cfg.retention.days is not None and self.leads:
            job = Retention(self.cfg, self.store, self.blobs, clock=utcnow, fence=self.fence).run()
            await self._intake(RETENTION_JOB, job)

    def apply_config(self, cfg: Config) -> None:
        """Apply hot-reloadable settings to the running components."""
        old, self.cfg = self.cfg, cfg
        if self.client is not None:
            self.client.update_config(cfg.api_football)
        if self.monitor is not None:
            self.monitor.apply_config(cfg)
            self.scheduler.reschedule_interval(STAGING_JOB, cfg.monitor.staging_check_interval_s)
        for stage in self.stages.in_order:
            stage.apply_config(cfg)
            self.pipeline.set_workers(stage.name, stage.workers())
        self.pipeline.set_scan_interval(cfg.search.due_scan_s)
        if scope_of(old) != scope_of(cfg) or old.ingest.days_ahead != cfg.ingest.days_ahead:
            log.info("scope_changed", teams=cfg.scope.teams, leagues=cfg.scope.leagues)
            self.spawn(self.run_ingest(), "ingest-on-reload")
        self.scheduler.reschedule_daily(INGEST_JOB, cfg.ingest.at)
        self.scheduler.reschedule_daily(RETENTION_JOB, cfg.retention.at)

    async def drain(self, budgets: ShutdownConfig) -> dict[str, int]:
        """Stop intake (scheduler, ingest, polls), then drain stages in order within budgets."""
        started = time.monotonic()
        self.scheduler.stop()
        if self.intake_tasks:
            _done, pending = await asyncio.wait(set(self.intake_tasks), timeout=budgets.intake_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        log.info("intake_stopped", took_s=round(time.monotonic() - started, 3))
        return await self.pipeline.drain(budgets.stage_budgets_s())

    def snapshot(self) -> dict[str, Any]:
        """API quota and each source's health, as the running components see them now."""
        sources = {
            source.name: {
                "state": str(source.health.state),
                "last_error": (source.health.last_error or "")[:ERROR_MAX_CHARS] or None,
                "next_try_at": source.health.next_try_at,
            }
            for source in self.stages.search.sources
        }
        return {"quota": asdict(self.client.quota) if self.client is not None else None,
                "sources": sources}


async def _abort_stale_uploads(blobs: BlobStore, older_than_s: float) -> None:
    """Abort uploads a killed run left incomplete (billed, invisible to list and delete)."""
    try:
        aborted = await asyncio.wait_for(blobs.abort_stale_uploads(older_than_s), STALE_SWEEP_TIMEOUT_S)
    except (FootydError, TimeoutError) as exc:
        # not fatal: the retention job sweeps again daily
        log.warning("stale_uploads_sweep_failed", error=f"{type(exc).__name__}: {exc}")
        return
    if aborted:
        log.info("stale_uploads_aborted", uploads=aborted, older_than_s=older_than_s)


async def _release_leftovers(store: Store, blobs: BlobStore, claims: Claims | None) -> None:
    try:
        deleted = await release_leftover_uploads(store, blobs, claims)
    except (FootydError, StoreError) as exc:  # not fatal: the next start sweeps again
        log.warning("orphan_sweep_failed", error=f"{type(exc).__name__}: {exc}")
        return
    if deleted:
        log.info("orphan_blobs_released", objects=deleted)


async def _close_sources(sources: list[Source]) -> None:
    for source in sources:
        await source.aclose()


@dataclass(frozen=True)
class VideoStages:
    """The stages after the monitor, in the order work flows through them."""

    search: SearchStage
    download: DownloadStage
    dedup: DedupStage
    notify: NotifyStage  # idle without webhooks; drained last (a cut delivery stays due)

    @property
    def in_order(self) -> list[Stage]:
        return [self.search, self.download, self.dedup, self.notify]


async def open_video_pipeline(
    stack: AsyncExitStack,
    cfg: Config,
    *,
    store: Store,
    blobs: BlobStore,
    pool: ProcessPool,
    clock: Clock = utcnow,
    scan_interval_s: float | None = None,
    claims: Claims | None = None,
) -> tuple[Pipeline, VideoStages]:
    """Sources and the search, download, dedup and notify stages on a started pipeline (on `stack`)."""
    sources = build_sources(cfg)
    stack.push_async_callback(_close_sources, sources)
    scan_s = cfg.search.due_scan_s if scan_interval_s is None else scan_interval_s
    pipeline = Pipeline(scan_interval_s=scan_s, clock=clock, claims=claims)
    search = SearchStage(cfg, store, blobs, sources, to_download=pipeline.sender(DownloadStage.name),
                         clock=clock)
    download = await stack.enter_async_context(
        DownloadStage(cfg, store, blobs, pool, to_dedup=pipeline.sender(DedupStage.name), clock=clock))
    dedup = DedupStage(cfg, store, blobs, pool, clock=clock)
    webhooks = await stack.enter_async_context(WebhookClient())
    stages = VideoStages(search, download, dedup, NotifyStage(cfg, store, blobs, webhooks, clock=clock))
    for stage in stages.in_order:
        pipeline.add(StageSpec(stage.name, stage.handle, stage.workers(), due=stage.due))
    await stack.enter_async_context(pipeline)
    return pipeline, stages


API_STATUS_BUDGET_S = 120.0  # /status is informational: never worth more than this


async def _log_api_status(client: FootballClient) -> None:
    """Log the plan and today's usage; runs as an owned task, off the startup path."""
    try:
        async with asyncio.timeout(API_STATUS_BUDGET_S):
            st = await client.status()
    except TimeoutError:
        log.warning("api_status_failed", error=f"no answer within {API_STATUS_BUDGET_S} s")
        return
    except FootydError as exc:
        log.warning("api_status_failed", error=str(exc))
        return
    log.info("api_status", plan=st.plan, requests_current=st.requests_current,
             limit_day=st.limit_day)


async def wire(
    stack: AsyncExitStack,
    cfg: Config,
    *,
    store: Store,
    blobs: BlobStore,
    pool: ProcessPool,
    lease: Lease | None = None,
    claims: Claims | None = None,
) -> Runtime:
    """Open the client, pipeline and scheduler on the stack and register the jobs."""
    client: FootballClient | None = None
    if cfg.api_football.api_key is not None and cfg.api_football.api_key.get_secret_value():
        client = await stack.enter_async_context(FootballClient(cfg.api_football))
    else:
        log.warning("api_football_disabled", reason="api_football.api_key is not set")
    unsafe = scratch.problems(cfg)
    if unsafe:
        raise ConfigError(unsafe)
    stack.enter_context(scratch.locked(cfg.download.scratch_dir))
    removed = await asyncio.to_thread(scratch.prepare, cfg.download.scratch_dir)
    if removed:
        log.info("scratch_cleared", entries=removed, scratch_dir=str(cfg.download.scratch_dir))
    await _abort_stale_uploads(blobs, cfg.retention.stale_upload_s)
    await _release_leftovers(store, blobs, claims)
    pipeline, stages = await open_video_pipeline(stack, cfg, store=store, blobs=blobs, pool=pool,
                                                 claims=claims)
    scheduler = await stack.enter_async_context(Scheduler())
    rt = Runtime(cfg=cfg, store=store, blobs=blobs, pool=pool, pipeline=pipeline,
                 scheduler=scheduler, stages=stages, client=client, lease=lease)
    feed_interval_s = stages.search.feed_interval_s
    if feed_interval_s is not None:  # feeds push: their posts reach goals as they are read
        scheduler.add_interval(FEED_JOB, rt.run_feeds, feed_interval_s)
    scheduler.add_daily(RETENTION_JOB, rt.run_retention, cfg.retention.at)  # off: days unset
    if client is not None:
        rt.spawn(_log_api_status(client), "api-status")  # retries must not delay READY
        rt.ingest = Ingest(store, client, clock=utcnow, fence=rt.fence)
        rt.monitor = Monitor(
            cfg, store, client,
            on_confirmed=pipeline.sender(SearchStage.name),
            on_cancelled=pipeline.sender(SearchStage.name),
            set_interval=lambda s: scheduler.reschedule_interval(MONITOR_JOB, s),
            fence=rt.fence,
        )
        scheduler.add_daily(INGEST_JOB, rt.run_ingest, cfg.ingest.at)
        if cfg.ingest.on_startup:
            rt.spawn(rt.run_ingest(), "ingest-on-start")
        if lease is not None:
            lease.on_elected = rt.took_over
        scheduler.add_interval(MONITOR_JOB, rt.run_monitor, cfg.monitor.poll_interval_s, run_now=True)
        scheduler.add_interval(STAGING_JOB, rt.run_staging_check, cfg.monitor.staging_check_interval_s)
    return rt
