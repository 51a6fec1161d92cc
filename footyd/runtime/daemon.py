"""Daemon lifecycle: startup on one AsyncExitStack, signals, reload, staged drain."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import structlog

from footyd import config as config_mod
from footyd import logs
from footyd.build import git_commit, version
from footyd.clients.blobs import BlobStore, open_blob_store
from footyd.clients.store import Store
from footyd.config import Config
from footyd.config.reload import RESTART_REASON, ReloadRejected, plan_reload
from footyd.errors import ConfigError, ExitCode
from footyd.metrics import (
    BUILD_INFO,
    CONFIG_RELOAD_SUCCESS,
    CONFIG_RELOAD_TIMESTAMP,
    CONFIG_RELOADS,
)
from footyd.procpool import ProcessPool
from footyd.runtime import looplag, tasks
from footyd.runtime import scratch as scratch_mod
from footyd.runtime.claims import Claims
from footyd.runtime.health import HealthServer
from footyd.runtime.heartbeat import Heartbeat
from footyd.runtime.lease import Lease, Replica
from footyd.runtime.sdnotify import Notifier, watchdog_interval_s
from footyd.runtime.wiring import Runtime, wire
from footyd.web.server import WebServer

log = structlog.get_logger(__name__)


class Daemon:
    """Runs footyd until a stop signal (or an injected stop event) and drains on the way out."""

    def __init__(
        self,
        cfg: Config,
        config_path: Path | None,
        *,
        notifier: Notifier | None = None,
        stop_event: asyncio.Event | None = None,
        install_signals: bool = True,
    ) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.notifier = notifier or Notifier()
        self._stop = stop_event
        self._install_signals = install_signals
        self._reload: asyncio.Event | None = None
        self._force: asyncio.Event | None = None
        self._stop_signals = 0
        self._first_stop_signal: str | None = None
        self._signals_released = False
        self.runtime: Runtime | None = None
        self.health: HealthServer | None = None
        self.last_reload: dict[str, object] | None = None  # shown by `footyd status`
        self.heartbeat: Heartbeat | None = None
        self.lease: Lease | None = None
        self.claims: Claims | None = None
        self.web: WebServer | None = None
        self.ready = asyncio.Event()  # set once started (when READY=1 goes to systemd)

    # -- signals: handlers only set events --------------------------------------------------
    @property
    def stop_signal(self) -> str | None:
        """The first stop signal received (SIGTERM, SIGINT), if one stopped the daemon."""
        return self._first_stop_signal

    def _on_stop_signal(self, signame: str) -> None:
        assert self._stop is not None and self._force is not None
        self._stop_signals += 1
        self._first_stop_signal = self._first_stop_signal or signame
        log.info("signal_received", signal=signame, count=self._stop_signals)
        (self._stop if self._stop_signals == 1 else self._force).set()

    def _late_stop_signal(self, signum: int, _frame: object) -> None:
        self._stop_signals += 1
        log.info("signal_received", signal=signal.Signals(signum).name, count=self._stop_signals)
        log.warning("shutdown_forced", reason="second stop signal")
        flush_and_exit(ExitCode.FORCED)

    def _on_hup(self) -> None:
        assert self._reload is not None
        self._reload.set()

    def _signals(self, loop: asyncio.AbstractEventLoop, install: bool) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            if install:
                loop.add_signal_handler(sig, self._on_stop_signal, sig.name)
            else:
                loop.remove_signal_handler(sig)
        if install:
            loop.add_signal_handler(signal.SIGHUP, self._on_hup)
        else:
            loop.remove_signal_handler(signal.SIGHUP)

    # -- run ---------------------------------------------------------------------------------
    async def run(self) -> int:
        """Start everything, serve until stopped, drain; returns a process exit code."""
        loop = asyncio.get_running_loop()
        self._stop = self._stop or asyncio.Event()
        self._reload = asyncio.Event()
        self._force = asyncio.Event()
        started = time.monotonic()
        BUILD_INFO.info({"version": version(), "commit": git_commit()})
        CONFIG_RELOAD_SUCCESS.set(1)
        CONFIG_RELOAD_TIMESTAMP.set(time.time())
        if self._install_signals:
            self._signals(loop, install=True)
        log.info("daemon_starting", version=version(), pid=os.getpid())
        try:
            async with AsyncExitStack() as stack:
                force_task = asyncio.create_task(self._force_exit_on_second_signal())
                stack.push_async_callback(tasks.stop, force_task)
                await self._startup(stack)
                log.info(
                    "daemon_started",
                    version=version(),
                    commit=git_commit(),
                    config_hash=config_mod.config_hash(self.cfg),
                    features=self._features(),
                    startup_s=round(time.monotonic() - started, 3),
                    pid=os.getpid(),
                )
                self.notifier.ready()
                self.ready.set()
                watchdog = asyncio.create_task(self._watchdog())
                stack.push_async_callback(tasks.stop, watchdog)
                lag_probe = asyncio.create_task(looplag.probe(), name="loop-lag-probe")
                stack.push_async_callback(tasks.stop, lag_probe)
                await self._serve()
                await self._drain()
                # closing resources gets its own budget; past it, exit rather than hang
                close_timer = loop.call_later(self.cfg.shutdown.close_s, self._close_overrun)
            close_timer.cancel()
            self._release_signals(loop)
            log.info("daemon_stopped")
            return ExitCode.OK
        finally:
            self._release_signals(loop)

    def _release_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        """Give the signals back; when a stop signal stopped us, another one until the process
        is gone is the documented forced exit (75), never death by the default action."""
        if not self._install_signals or self._signals_released:
            return
        self._signals_released = True
        self._signals(loop, install=False)
        if self._stop_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._late_stop_signal)

    async def _startup(self, stack: AsyncExitStack) -> None:
        cfg = self.cfg
        store = await stack.enter_async_context(Store(cfg.mongo))
        blobs: BlobStore = await stack.enter_async_context(open_blob_store(cfg.storage))
        pool = ProcessPool(cfg.pool.workers, max_memory_mb=cfg.dedup.worker_max_memory_mb)
        # off the loop, bounded: a running job must not block the close timer or a second signal
        stack.push_async_callback(lambda: pool.aclose(self.cfg.shutdown.close_s / 2))
        me = Replica.here()
        self.lease = await stack.enter_async_context(Lease(
            store, cfg.replicas.lease_ttl_s, cfg.replicas.lease_renew_s, me))
        # opened before the pipeline, closed after its drain: cut work is freed for the others
        self.claims = await stack.enter_async_context(Claims(store, me, cfg.replicas.claim_ttl_s))
        self.runtime = await wire(stack, cfg, store=store, blobs=blobs, pool=pool, lease=self.lease,
                                  claims=self.claims)
        self.heartbeat = await stack.enter_async_context(Heartbeat(
            store, cfg.health.stale_tick_s / 4, cfg.health.stale_tick_s, self._heartbeat_fields))
        health = HealthServer(
            cfg.health,
            last_tick=lambda: self.runtime.scheduler.last_tick if self.runtime else None,
            probes={"mongo": store.ping, "blobs": blobs.ping,
                    "scratch": lambda: scratch_mod.writable(cfg.download.scratch_dir)},
        )
        if cfg.health.enabled:
            self.health = await stack.enter_async_context(health)
        if cfg.web.enabled:
            self.web = await stack.enter_async_context(
                WebServer(cfg.web, store=store, blobs=blobs, replica=me.id))

    def _heartbeat_fields(self) -> dict[str, object]:
        running = self.runtime.snapshot() if self.runtime is not None else {"quota": None, "sources": {}}
        lease = self.lease
        replica = {"replica": lease.me.id, "leader": lease.held} if lease is not None else {}
        if self.claims is not None:
            replica["claims"] = self.claims.held
        return {**running, **replica, "last_reload": self.last_reload,
                "config_hash": config_mod.config_hash(self.cfg)}

    def _features(self) -> dict[str, object]:
        cfg = self.cfg
        return {
            "storage": cfg.storage.kind,
            "sources": list(cfg.search.sources),
            "teams": len(cfg.scope.teams),
            "leagues": len(cfg.scope.leagues),
            "api_mode": cfg.api_football.mode,
            "health": cfg.health.listen if cfg.health.enabled else None,
            "web": cfg.web.listen if cfg.web.enabled else None,
        }

    async def _serve(self) -> None:
        assert self._stop is not None and self._reload is not None
        while not self._stop.is_set():
            stop = asyncio.create_task(self._stop.wait())
            reload = asyncio.create_task(self._reload.wait())
            await asyncio.wait({stop, reload}, return_when=asyncio.FIRST_COMPLETED)
            for t in (stop, reload):
                t.cancel()
            await asyncio.gather(stop, reload, return_exceptions=True)
            if self._reload.is_set() and not self._stop.is_set():
                self._reload.clear()
                await self.reload()

    async def reload(self) -> bool:
        """Re-read the config file off the loop; apply hot keys or keep the old config."""
        self.notifier.reloading()
        try:
            try:
                new = await asyncio.to_thread(config_mod.load, self.config_path)
            except ConfigError as exc:
                await self._reload_failed(errors=exc.errors)
                return False
            try:
                plan = plan_reload(self.cfg, new)
            except ReloadRejected as exc:
                await self._reload_failed(errors=exc.errors, keys=exc.keys,
                                          restart_only=exc.restart_only, reason=RESTART_REASON)
                return False
            self.cfg = plan.config
            logs.set_level(self.cfg.log.level, self.cfg.log.libraries)
            logs.set_secrets(config_mod.secret_values(self.cfg))
            if self.runtime is not None:
                self.runtime.apply_config(self.cfg)
            CONFIG_RELOAD_SUCCESS.set(1)
            CONFIG_RELOAD_TIMESTAMP.set(time.time())
            CONFIG_RELOADS.labels("ok").inc()
            await self._record_reload(ok=True, changed=plan.hot, needs_restart=plan.cold)
            log.info("config_reloaded", changed=plan.hot, config_hash=config_mod.config_hash(self.cfg))
            if plan.cold:
                log.warning("config_change_needs_restart", keys=plan.cold)
            return True
        finally:
            self.notifier.ready("running")

    async def _reload_failed(self, **fields: object) -> None:
        """Keep the running config: count, record and log why the new file was refused."""
        CONFIG_RELOAD_SUCCESS.set(0)
        CONFIG_RELOADS.labels("failed").inc()
        await self._record_reload(ok=False, **fields)
        log.error("config_reload_failed", path=str(self.config_path), **fields)

    async def _record_reload(self, **fields: object) -> None:
        """Remember the reload's result and publish it in the heartbeat before it is logged."""
        self.last_reload = {"at": datetime.now(UTC), **fields}
        if self.heartbeat is not None:
            await self.heartbeat.beat()

    async def _drain(self) -> None:
        cfg = self.cfg.shutdown
        self.notifier.stopping()
        started = time.monotonic()
        log.info("shutdown_started", budget_s=cfg.total_s)
        if self.runtime is not None:
            left = await self.runtime.drain(cfg)
            log.info("shutdown_drained", left=left, took_s=round(time.monotonic() - started, 3))

    def _close_overrun(self) -> None:
        log.error("shutdown_close_overrun", budget_s=self.cfg.shutdown.close_s)
        flush_and_exit(ExitCode.FORCED)

    async def _force_exit_on_second_signal(self) -> None:
        assert self._force is not None
        await self._force.wait()
        log.warning("shutdown_forced", reason="second stop signal")
        flush_and_exit(ExitCode.FORCED)

    async def _watchdog(self) -> None:
        interval = watchdog_interval_s()
        if interval is None or not self.notifier.enabled:
            return
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)


def flush_and_exit(code: int) -> None:
    """Exit at once (no cleanup): the state that matters is already in MongoDB."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    os._exit(code)



