"""A loopback HTTP proxy in front of a real server that injects faults per request.

Faults: hold a request (never answer until released), answer with a status, reset the
connection, or answer with a malformed or oversized body. Everything else is forwarded.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from tests.plugins.http import serve_app

Match = Callable[[web.Request], bool]
HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


@dataclass
class Fault:
    """What to do with a matching request: hold, status (with body), reset or garbage."""

    match: Match
    action: str  # "hold" | "status" | "reset" | "body"
    status: int = 503
    body: bytes = b""
    times: int | None = None  # None: every matching request


@dataclass
class FaultProxy:
    upstream: str
    faults: list[Fault] = field(default_factory=list)
    seen: list[tuple[str, str]] = field(default_factory=list)
    held: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    def add(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def clear(self) -> None:
        self.faults.clear()
        self.release.set()

    def _fault_for(self, request: web.Request) -> Fault | None:
        for fault in self.faults:
            if fault.match(request) and fault.times != 0:
                if fault.times is not None:
                    fault.times -= 1
                return fault
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.method, request.path_qs))
        body = await request.read()
        fault = self._fault_for(request)
        if fault is not None:
            if fault.action == "hold":
                self.held.set()
                await self.release.wait()
            elif fault.action == "status":
                return web.Response(status=fault.status, body=fault.body)
            elif fault.action == "body":
                return web.Response(status=200, body=fault.body, content_type="application/json")
            elif fault.action == "reset":
                assert request.transport is not None
                request.transport.abort()
                return web.Response(status=500)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        headers["Host"] = request.host
        async with aiohttp.ClientSession(auto_decompress=False) as session, session.request(
            request.method, self.upstream + request.path_qs, headers=headers,
            # a file-like body: aiohttp warns that large raw bytes block the loop
            data=io.BytesIO(body) if body else None,
            allow_redirects=False,
        ) as resp:
            payload = await resp.read()
            out = {k: v for k, v in resp.headers.items() if k.lower() not in HOP_HEADERS}
            return web.Response(status=resp.status, body=payload, headers=out)


@asynccontextmanager
async def fault_proxy(upstream: str) -> AsyncIterator[FaultProxy]:
    """A FaultProxy on a free loopback port forwarding to `upstream` (scheme://host:port)."""
    proxy = FaultProxy(upstream.rstrip("/"))
    app = web.Application(client_max_size=1 << 30)
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    async with serve_app(app) as url:
        proxy.url = url
        try:
            yield proxy
        finally:
            proxy.release.set()
