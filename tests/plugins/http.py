"""Serve an aiohttp app on a free loopback port for the length of a test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web


@asynccontextmanager
async def serve_app(app: web.Application, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Yield the app's base URL (http://HOST:PORT, a loopback host); the server stops on exit."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, 0).start()
        bound, port = runner.addresses[0][:2]
        yield f"http://{bound}:{port}"
    finally:
        await runner.cleanup()
