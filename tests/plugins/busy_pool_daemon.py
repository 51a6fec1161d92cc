"""`footyd run` with one long job occupying a pool worker from READY on (shutdown tests).

Usage: python -m tests.plugins.busy_pool_daemon CONFIG. The job is an un-owned pool call, as a
job whose caller has no drain budget would be; everything else is the real daemon.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import structlog

import footyd.runtime.daemon
from footyd.cli.main import main

_jobs: list[asyncio.Task[Any]] = []
_wire = footyd.runtime.daemon.wire


async def _wire_with_busy_pool(*args: Any, **kwargs: Any) -> Any:
    runtime = await _wire(*args, **kwargs)
    _jobs.append(asyncio.create_task(runtime.pool.run(time.sleep, 600, timeout_s=900)))
    await asyncio.sleep(0)  # the job is on a worker before READY
    structlog.get_logger("busy_pool").info("busy_pool_job_started")
    return runtime


footyd.runtime.daemon.wire = _wire_with_busy_pool  # type: ignore[assignment]

if __name__ == "__main__":
    sys.exit(main(["run", "-c", sys.argv[1]]))
