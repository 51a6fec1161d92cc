"""Assembles the running components (pipeline, scheduler, stages) on the daemon's exit stack."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import structlog

from footyd.clients.blobs import BlobStore
from footyd.clients.store import Store
from footyd.config import Config, ShutdownConfig
from footyd.pipeline import Pipeline, StageSpec
from footyd.schedule import Scheduler

log = structlog.get_logger(__name__)


@dataclass
class Runtime:
    """Everything the daemon started, in startup order."""

    cfg: Config
    store: Store
    blobs: BlobStore
    pool: ProcessPoolExecutor
    pipeline: Pipeline
    scheduler: Scheduler
    intake_tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def apply_config(self, cfg: Config) -> None:
        """Apply hot-reloadable settings to the running components."""
        self.cfg = cfg

    async def drain(self, budgets: ShutdownConfig) -> dict[str, int]:
        """Stop intake (scheduler), then drain stages in order within their budgets."""
        started = time.monotonic()
        self.scheduler.stop()
        if self.intake_tasks:
            _done, pending = await asyncio.wait(self.intake_tasks, timeout=budgets.intake_s)
            for task in pending:
                task.cancel()
        log.info("intake_stopped", took_s=round(time.monotonic() - started, 3))
        return await self.pipeline.drain(
            {"search": budgets.search_s, "download": budgets.download_s, "dedup": budgets.dedup_s}
        )


def stage_specs(cfg: Config) -> list[StageSpec]:
    """The pipeline's stages (filled by the video pipeline)."""
    return []


async def wire(
    stack: AsyncExitStack,
    cfg: Config,
    *,
    store: Store,
    blobs: BlobStore,
    pool: ProcessPoolExecutor,
) -> Runtime:
    """Open the pipeline and the scheduler on the stack and register the jobs."""
    pipeline = await stack.enter_async_context(Pipeline(stage_specs(cfg)))
    scheduler = await stack.enter_async_context(Scheduler())
    return Runtime(cfg=cfg, store=store, blobs=blobs, pool=pool, pipeline=pipeline,
                   scheduler=scheduler)
