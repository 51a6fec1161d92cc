"""The health server: /healthz, /readyz, /metrics (aiohttp + prometheus-client)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from footyd.config import HealthConfig
from footyd.errors import DependencyUnavailable
from footyd.metrics import REGISTRY

log = structlog.get_logger(__name__)

Probe = Callable[[], Awaitable[bool]]
READY_PROBE_TIMEOUT_S = 3.0


class HealthServer:
    """Serves liveness, readiness and metrics on a loopback address."""

    def __init__(
        self,
        cfg: HealthConfig,
        *,
        last_tick: Callable[[], float | None],
        probes: Mapping[str, Probe],
    ) -> None:
        self._cfg = cfg
        self._last_tick = last_tick
        self._probes = dict(probes)
        self._runner: web.AppRunner | None = None
        self.address: str | None = None

    async def __aenter__(self) -> HealthServer:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._cfg.host, self._cfg.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise DependencyUnavailable(f"health server cannot listen on {self._cfg.listen}: {exc}") from None
        host, port = self._runner.addresses[0][:2]
        self.address = f"{host}:{port}"
        log.info("health_listening", address=self.address)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _healthz(self, _request: web.Request) -> web.Response:
        tick = self._last_tick()
        age = None if tick is None else round(time.time() - tick, 3)
        ok = age is not None and age < self._cfg.stale_tick_s
        body = {"status": "ok" if ok else "stale", "scheduler_tick_age_s": age}
        return web.json_response(body, status=200 if ok else 503)

    async def _readyz(self, _request: web.Request) -> web.Response:
        async def run(name: str, probe: Probe) -> tuple[str, bool]:
            try:
                return name, await asyncio.wait_for(probe(), READY_PROBE_TIMEOUT_S)
            except (TimeoutError, OSError):
                return name, False

        results = dict(await asyncio.gather(*(run(n, p) for n, p in self._probes.items())))
        ok = all(results.values())
        return web.json_response({"ready": ok, "checks": results}, status=200 if ok else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        resp = web.Response(body=generate_latest(REGISTRY))
        resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        resp.charset = "utf-8"
        return resp
