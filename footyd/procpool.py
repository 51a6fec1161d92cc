"""The process pool for CPU-bound media work: forkserver context, timeouts, rebuilt when broken."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import structlog
from prometheus_client import Counter

from footyd.errors import Retryable
from footyd.metrics import REGISTRY

log = structlog.get_logger(__name__)

T = TypeVar("T")

POOL_REBUILDS = Counter("footyd_process_pool_rebuilds", "Times the process pool was rebuilt.",
                        registry=REGISTRY)


class ProcessPool:
    """Runs top-level functions in worker processes; a broken pool is replaced, not fatal."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None

    def _make(self) -> ProcessPoolExecutor:
        # forkserver: the daemon has threads, and fork() with threads is unsafe
        return ProcessPoolExecutor(max_workers=self.workers,
                                   mp_context=multiprocessing.get_context("forkserver"))

    @property
    def executor(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = self._make()
        return self._executor

    async def run(self, fn: Callable[..., T], *args: Any, timeout_s: float, **kwargs: Any) -> T:
        """Run fn(*args, **kwargs) in a worker; Retryable on timeout or a broken pool."""
        loop = asyncio.get_running_loop()
        call = _Call(fn, args, kwargs)
        executor = self.executor
        try:
            future = loop.run_in_executor(executor, call)
        except BrokenProcessPool:
            self.rebuild(executor)
            executor = self.executor
            future = loop.run_in_executor(executor, call)
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            # a hung worker cannot be cancelled: replace the pool so it cannot block the next job
            self.rebuild(executor)
            raise Retryable(f"{getattr(fn, '__name__', fn)} timed out after {timeout_s}s") from None
        except BrokenProcessPool:
            self.rebuild(executor)
            raise Retryable("process pool broke (a worker died)") from None

    def rebuild(self, failed: ProcessPoolExecutor | None = None) -> None:
        """Replace the executor that failed (a newer one, made by another job, is left alone)."""
        if failed is not None and failed is not self._executor:
            return
        old, self._executor = self._executor, None
        POOL_REBUILDS.inc()
        log.warning("process_pool_rebuilt", workers=self.workers)
        if old is not None:
            for proc in list(getattr(old, "_processes", {}).values()):
                proc.terminate()
            old.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


class _Call:
    """A picklable fn(*args, **kwargs) (functools.partial of a top-level function also works)."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs

    def __call__(self) -> Any:
        return self.fn(*self.args, **self.kwargs)
