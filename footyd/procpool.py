"""The process pool for CPU-bound media work: single-job worker processes we own and can kill."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import resource
import select
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

import structlog
from prometheus_client import Counter

from footyd.errors import Retryable
from footyd.metrics import REGISTRY

log = structlog.get_logger(__name__)

T = TypeVar("T")

POOL_REBUILDS = Counter("footyd_process_pool_rebuilds",
                        "Pool workers killed and replaced (a job timed out or its worker died).",
                        registry=REGISTRY)


class _RemoteError(Exception):
    """Stands in for a job's exception (or result) that could not be pickled back."""


def _exit_when_daemon_gone(fd: int) -> None:
    """Worker thread: exit as soon as the daemon's end of the pipe closes (it died or stopped us),
    even mid-job; the forkserver outlives its clients, so nothing else would end this process."""
    poller = select.poll()
    poller.register(fd, getattr(select, "POLLRDHUP", 0) | select.POLLHUP)
    hangup = getattr(select, "POLLRDHUP", 0) | select.POLLHUP | select.POLLERR | select.POLLNVAL
    while True:
        for _fd, events in poller.poll():
            if events & hangup:
                os._exit(0)


def _serve(conn: Connection, max_memory_bytes: int = 0) -> None:
    """Worker main loop: one job at a time from the pipe, its outcome sent back."""
    if max_memory_bytes > 0:
        # a hostile file that makes a decoder allocate without end fails that job (MemoryError
        # or the worker's death), never the host: the address space of this worker is capped
        resource.setrlimit(resource.RLIMIT_AS, (max_memory_bytes, max_memory_bytes))
    threading.Thread(target=_exit_when_daemon_gone, args=(conn.fileno(),), daemon=True).start()
    # Ctrl-C reaches the whole process group: the daemon decides when workers stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        fn, args, kwargs = job
        try:
            outcome: tuple[str, Any] = ("ok", fn(*args, **kwargs))
        except BaseException as exc:  # the caller gets the job's own exception
            outcome = ("err", exc)
        try:
            conn.send(outcome)
        except Exception as exc:  # pickling failed before anything was written
            conn.send(("err", _RemoteError(f"{type(exc).__name__}: {exc}")))


class _Worker:
    """One worker process and our end of its pipe."""

    def __init__(self, ctx: Any, max_memory_bytes: int = 0) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_serve, args=(child, max_memory_bytes),
                                name="footyd-pool-worker", daemon=True)
        self.proc.start()
        child.close()

    @property
    def pid(self) -> int:
        return int(self.proc.pid or 0)

    @property
    def alive(self) -> bool:
        """False once the process has exited (killed from outside while idle, say). An idle
        worker never writes, so a readable pipe means its end closed: the kernel closes a dead
        process's descriptors at once, before the forkserver reaps it and exitcode is known."""
        try:
            return self.proc.exitcode is None and not self.conn.poll()
        except (OSError, EOFError):
            return False

    def kill(self) -> None:
        """SIGKILL the process; the pipe stays open for a reader that may still watch it."""
        if self.proc.exitcode is None:
            self.proc.kill()

    def discard(self) -> None:
        self.kill()
        self.conn.close()

    def stop(self) -> None:
        """Ask an idle worker to exit."""
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.conn.close()


class ProcessPool:
    """Runs top-level functions in worker processes; a hung or dead job costs only its worker."""

    def __init__(self, workers: int, *, max_memory_mb: int = 0) -> None:
        self.workers = workers
        self._max_memory_bytes = max_memory_mb * 1024 * 1024
        # forkserver: the daemon has threads, and fork() with threads is unsafe
        self._ctx = multiprocessing.get_context("forkserver")
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._exiting: list[_Worker] = []
        self._slots: asyncio.Semaphore | None = None
        self._closed = False

    @property
    def pids(self) -> list[int]:
        """Pids of the live workers (idle and busy)."""
        return sorted(w.pid for w in [*self._idle, *self._busy])

    @property
    def busy(self) -> int:
        return len(self._busy)

    async def run(self, fn: Callable[..., T], *args: Any, timeout_s: float, **kwargs: Any) -> T:
        """Run fn(*args, **kwargs) in a worker; Retryable on timeout or a dead worker."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.workers)
        async with self._slots:
            if self._closed:
                raise Retryable("process pool is shut down")
            worker = self._take(fn)
            self._busy.add(worker)
            reusable = False
            try:
                try:
                    worker.conn.send((fn, args, kwargs))
                except (OSError, EOFError):
                    # it died between the check and the send: the job never ran, give it
                    # one fresh worker before calling the pool broken
                    self._busy.discard(worker)
                    worker.discard()
                    self._exiting.append(worker)
                    self._replaced("idle_worker_died", fn)
                    worker = _Worker(self._ctx, self._max_memory_bytes)
                    self._busy.add(worker)
                    try:
                        worker.conn.send((fn, args, kwargs))
                    except (OSError, EOFError):
                        raise Retryable("process pool broke (a worker died)") from None
                except Exception:
                    reusable = True  # the job could not be pickled; the worker never saw it
                    raise
                try:
                    status, value = await asyncio.wait_for(_receive(worker.conn), timeout_s)
                except TimeoutError:
                    self._replaced("timeout", fn)
                    raise Retryable(f"{_name(fn)} timed out after {timeout_s}s") from None
                except (EOFError, OSError):
                    self._replaced("worker_died", fn)
                    raise Retryable("process pool broke (a worker died)") from None
                reusable = True
            finally:
                # cancelled or failed mid-job: nobody will read that job's result, so the worker goes
                self._busy.discard(worker)
                if reusable and not self._closed:
                    self._idle.append(worker)
                else:
                    worker.discard()
                    self._exiting.append(worker)
                self._reap()
        if status == "err":
            raise value
        return value

    def _take(self, fn: Callable[..., Any]) -> _Worker:
        """An idle worker that is still alive (dead ones are replaced), or a new one."""
        while self._idle:
            worker = self._idle.pop()
            if worker.alive:
                return worker
            worker.discard()
            self._replaced("idle_worker_died", fn)
        return _Worker(self._ctx, self._max_memory_bytes)

    def _replaced(self, reason: str, fn: Callable[..., Any]) -> None:
        POOL_REBUILDS.inc()
        log.warning("process_pool_worker_replaced", reason=reason, job=_name(fn))

    def _reap(self) -> None:
        self._exiting = [w for w in self._exiting if w.proc.exitcode is None]

    async def aclose(self, timeout_s: float) -> None:
        """Stop every worker without blocking the loop; kill whatever still runs at the budget."""
        self._closed = True
        for worker in self._idle:
            worker.stop()
            self._exiting.append(worker)
        self._idle.clear()
        procs = [w.proc for w in [*self._exiting, *self._busy]]
        left = await asyncio.to_thread(_join_all, procs, timeout_s)
        for worker in [*self._exiting, *self._busy]:
            if worker.proc.exitcode is None:
                worker.kill()
        if left:
            log.warning("process_pool_killed_at_close", workers=left, budget_s=timeout_s)
        self._reap()

    def shutdown(self) -> None:
        """Kill every worker at once (synchronous callers: tests, the benchmark harness)."""
        self._closed = True
        for worker in self._idle:
            worker.discard()
            self._exiting.append(worker)
        for worker in self._busy:
            worker.kill()  # its run() sees EOF, raises Retryable and closes the pipe
        self._idle.clear()


async def _receive(conn: Connection) -> tuple[str, Any]:
    """Wait (on the loop, no thread) until the worker writes, then read its message."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    fd = conn.fileno()

    def readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await ready
    finally:
        loop.remove_reader(fd)
    message: tuple[str, Any] = conn.recv()  # EOFError when the worker died
    return message


def _join_all(procs: list[Any], timeout_s: float) -> int:
    """Wait for processes to exit within one shared budget; return how many still run."""
    deadline = time.monotonic() + timeout_s
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
    return sum(1 for p in procs if p.exitcode is None)


def _name(fn: Callable[..., Any]) -> str:
    return str(getattr(fn, "__name__", fn))
