"""The fault matrix: every external system x every failure mode that matters, one table.

Each row runs the real footyd component against a loopback fault server (or a closed port) and
checks the documented behaviour: a typed, retryable or terminal outcome with a reason (retry,
pause, or a visible failed state), within a bounded time: never an untyped crash or a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from footyd.clients.blobs import S3BlobStore
from footyd.clients.football import FootballClient
from footyd.clients.media_http import fetch_media
from footyd.clients.netguard import AddressPolicy
from footyd.clients.store import Store
from footyd.clients.ytdlp import fetch_post
from footyd.config import ApiFootballConfig, MongoConfig, StorageConfig, XApiConfig
from footyd.errors import DownloadFailed, FootydError
from footyd.sim.net import free_port
from footyd.sources.base import GoalQuery
from footyd.sources.search_service import SearchServiceSource
from footyd.sources.x_api import XApiSource
from tests.plugins.faults import Fault, fault_proxy
from tests.plugins.http import serve_app
from tests.plugins.servers import S3Server

# Client libraries (pymongo's async monitor, aiobotocore's pool) drop sockets of a faulty peer
# without closing them; the leftovers are collected after every row (see _collect) so their
# ResourceWarnings land here, not on an unrelated test.
pytestmark = [pytest.mark.slow,  # `pytest -m "not slow"` skips it
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]
BOUND_S = 45.0  # no row may take longer: a hang is a failure, not a slow pass
OVERSIZED_BYTES = 20 * 1024 * 1024
LOOPBACK_OK = AddressPolicy(allow_private=True)
QUERY = GoalQuery(goal_id="g1", fixture_id=1, team_name="Arsenal", opponent_name="Chelsea",
                  scorer_name="Saka", minute=23, team_terms=("Arsenal",), scorer_terms=("Saka",),
                  goal_at=datetime.now(UTC))


@pytest.fixture(autouse=True)
async def _collect() -> AsyncIterator[None]:
    yield
    for _ in range(20):
        await asyncio.sleep(0)
    gc.collect()


@dataclass
class Faulty:
    """A loopback HTTP server answering every request with one failure mode."""

    mode: str
    release: asyncio.Event

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        if self.mode == "timeout":
            await self.release.wait()
            return web.Response(status=200)
        if self.mode == "4xx":
            return web.json_response({"error": "forbidden", "errors": {"token": "bad"}}, status=403)
        if self.mode == "5xx":
            return web.json_response({"error": "down"}, status=503)
        if self.mode == "429":
            return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": "7"})
        if self.mode == "malformed":
            return web.Response(status=200, body=b'{"response": [{"fixture": ',
                                content_type="application/json")
        if self.mode == "drip":  # a live connection that never finishes: only a deadline ends it
            resp = web.StreamResponse(status=200, headers={"Content-Type": "video/mp4",
                                                           "Content-Length": "900000"})
            await resp.prepare(request)
            while not self.release.is_set():
                await resp.write(b"\0")
                await asyncio.sleep(0.5)  # the fault itself: a slow trickle, not a test wait
            return resp
        if self.mode == "oversized":
            resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            await resp.prepare(request)
            await resp.write(b'{"response": [' + b'{"a": 1},' * 10)
            chunk = b" " * (1 << 20)
            for _ in range(OVERSIZED_BYTES // len(chunk)):
                await resp.write(chunk)
            await resp.write(b"]}")
            return resp
        raise AssertionError(self.mode)


@asynccontextmanager
async def faulty(mode: str) -> AsyncIterator[str]:
    """Base URL of a server failing with `mode` (`refused`: a port nobody listens on)."""
    if mode == "refused":
        yield f"http://127.0.0.1:{free_port()}"
        return
    server = Faulty(mode, asyncio.Event())
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    async with serve_app(app) as url:
        try:
            yield url
        finally:
            server.release.set()


def outcome(exc: BaseException | None) -> str:
    """The behaviour a row ended in: `ok`, a typed footyd error, or `crash:<type>`."""
    if exc is None:
        return "ok"
    if isinstance(exc, DownloadFailed):
        return f"DownloadFailed:{exc.kind}:{'retry' if exc.retryable else 'terminal'}"
    if isinstance(exc, FootydError):
        return type(exc).__name__
    return f"crash:{type(exc).__name__}"


Runner = Callable[[str, Path], Awaitable[Any]]


async def api_football(url: str, _tmp: Path) -> Any:
    cfg = ApiFootballConfig(base_url=url, api_key=SecretStr("k"), timeout_s=2.0, max_retries=1,
                            backoff_base_s=0.05)
    async with FootballClient(cfg) as client:
        return await client.fixtures_by_ids([1, 2])


async def x_api(url: str, _tmp: Path) -> Any:
    source = XApiSource(XApiConfig(base_url=url, bearer_token=SecretStr("t"), timeout_s=2.0),
                        max_wait_s=0.1)
    try:
        return await source.search(QUERY, datetime.now(UTC) - timedelta(minutes=5))
    finally:
        await source.aclose()


async def search_service(url: str, _tmp: Path) -> Any:
    source = SearchServiceSource(url, requests_per_min=None, timeout_s=2.0, max_response_mb=1.0)
    try:
        return await source.search(QUERY, datetime.now(UTC) - timedelta(minutes=5))
    finally:
        await source.aclose()


async def clip_host(url: str, tmp: Path) -> Any:
    async with aiohttp.ClientSession() as session:
        return await fetch_media(session, url + "/media/clip.mp4", tmp, max_size_mb=1.0,
                                 timeout_s=3.0, socket_timeout_s=2.0, policy=LOOPBACK_OK)


async def ytdlp(url: str, tmp: Path) -> Any:
    return await fetch_post(url + "/post/1.mp4", tmp, timeout_s=8.0, socket_timeout_s=2.0,
                            max_size_mb=1.0, policy=LOOPBACK_OK)


RUNNERS: dict[str, Runner] = {"api_football": api_football, "x_api": x_api,
                              "search_service": search_service, "clip_host": clip_host,
                              "ytdlp": ytdlp}

# (system, mode) -> the documented outcome
HTTP_ROWS: dict[tuple[str, str], str | tuple[str, ...]] = {
    ("api_football", "refused"): "Retryable",
    ("api_football", "timeout"): "Retryable",
    ("api_football", "4xx"): "ApiError",
    ("api_football", "5xx"): "Retryable",
    ("api_football", "429"): "RateLimited",
    ("api_football", "malformed"): "Retryable",
    ("api_football", "oversized"): "MalformedPayload",
    ("x_api", "refused"): "Retryable",
    ("x_api", "timeout"): "Retryable",
    ("x_api", "4xx"): "Permanent",
    ("x_api", "5xx"): "Retryable",
    ("x_api", "429"): "RateLimited",
    ("x_api", "malformed"): "Retryable",
    ("x_api", "oversized"): "MalformedPayload",
    ("search_service", "refused"): "Retryable",
    ("search_service", "timeout"): "Retryable",
    ("search_service", "4xx"): "Permanent",
    ("search_service", "5xx"): "Retryable",
    ("search_service", "429"): "RateLimited",
    ("search_service", "malformed"): "Retryable",
    ("search_service", "oversized"): "MalformedPayload",
    ("clip_host", "refused"): "DownloadFailed:network:retry",
    ("clip_host", "timeout"): "DownloadFailed:timeout:retry",
    ("clip_host", "4xx"): "DownloadFailed:forbidden:terminal",
    ("clip_host", "5xx"): "DownloadFailed:server_error:retry",
    ("clip_host", "429"): "DownloadFailed:rate_limited:retry",
    ("clip_host", "oversized"): "DownloadFailed:too_large:terminal",
    ("clip_host", "drip"): "DownloadFailed:timeout:retry",
    # yt-dlp connects through footyd's address-checking proxy, which answers 502 for a dead origin
    ("ytdlp", "refused"): "DownloadFailed:server_error:retry",
    ("ytdlp", "timeout"): ("DownloadFailed:server_error:retry", "DownloadFailed:timeout:retry"),
    ("ytdlp", "drip"): "DownloadFailed:timeout:retry",  # the hung process is killed at timeout_s
    ("ytdlp", "4xx"): "DownloadFailed:forbidden:terminal",
    ("ytdlp", "5xx"): "DownloadFailed:server_error:retry",
    ("ytdlp", "oversized"): "DownloadFailed:too_large:terminal",
}


@pytest.mark.parametrize(("system", "mode"), list(HTTP_ROWS), ids=[f"{s}-{m}" for s, m in HTTP_ROWS])
async def test_http_fault(system: str, mode: str, tmp_path: Path) -> None:
    started = time.monotonic()
    error: BaseException | None = None
    async with faulty(mode) as url:
        try:
            await asyncio.wait_for(RUNNERS[system](url, tmp_path), BOUND_S)
        except TimeoutError:
            pytest.fail(f"{system} hung on {mode} for {BOUND_S}s")
        except Exception as exc:
            error = exc
    took = time.monotonic() - started
    expected = HTTP_ROWS[system, mode]
    assert outcome(error) in ((expected,) if isinstance(expected, str) else expected), \
        f"{error!r} after {took:.1f}s"
    assert str(error), "the failure must carry a reason"
    if system in ("clip_host", "ytdlp"):
        left = await asyncio.to_thread(lambda: [p for p in tmp_path.rglob("*") if p.is_file()])
        assert left == [], "partial files left behind"


@asynccontextmanager
async def tcp_fault(mode: str) -> AsyncIterator[str]:
    """host:port of a TCP server that accepts and then says nothing, or answers garbage."""

    writers: list[asyncio.StreamWriter] = []

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        if mode == "malformed":
            writer.write(b"\xff" * 64 + b"HTTP/1.1 200 OK\r\n\r\n")
            await writer.drain()
        with contextlib.suppress(ConnectionError):
            await reader.read()  # hold the connection until the client gives up

    server = await asyncio.start_server(client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.close()
        for writer in writers:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        await server.wait_closed()


MONGO_ROWS = {"refused": "DependencyUnavailable", "timeout": "DependencyUnavailable",
              "malformed": "DependencyUnavailable"}


@pytest.mark.parametrize("mode", list(MONGO_ROWS))
async def test_mongodb_fault_at_start(mode: str) -> None:
    async with AsyncExitStack() as stack:
        if mode == "refused":
            address = f"127.0.0.1:{free_port()}"
        else:
            address = await stack.enter_async_context(tcp_fault(mode))
        cfg = MongoConfig(uri=SecretStr(f"mongodb://{address}/"), database="f",
                          server_selection_timeout_s=1.0)
        error: BaseException | None = None
        try:
            async with asyncio.timeout(BOUND_S), Store(cfg):
                pass
        except Exception as exc:
            error = exc
    assert outcome(error) == MONGO_ROWS[mode], repr(error)


def _s3_put(method: str) -> Callable[[web.Request], bool]:
    return lambda r: r.method == method and "uploads" not in r.query and "partNumber" not in r.query


S3_ROWS: dict[str, tuple[Fault | None, str]] = {
    "5xx": (Fault(_s3_put("PUT"), "status", 500, b"<Error><Code>InternalError</Code></Error>"),
            "Retryable"),
    "429": (Fault(_s3_put("PUT"), "status", 503, b"<Error><Code>SlowDown</Code></Error>"),
            "Retryable"),
    "4xx": (Fault(_s3_put("PUT"), "status", 403, b"<Error><Code>AccessDenied</Code></Error>"),
            "Retryable"),  # the download stage spends attempts, then marks the clip failed
    "malformed": (Fault(_s3_put("HEAD"), "status", 200, b"not xml"), "ok-or-typed"),
    "reset": (Fault(_s3_put("PUT"), "reset"), "Retryable"),
    "timeout": (Fault(_s3_put("PUT"), "hold"), "Retryable"),
}


@pytest.mark.parametrize("mode", list(S3_ROWS))
async def test_s3_fault_on_upload(mode: str, s3_server: S3Server, s3_cfg: StorageConfig,
                                  tmp_path: Path) -> None:
    src = tmp_path / "clip.mp4"
    src.write_bytes(b"\0" * 1000)
    fault, expected = S3_ROWS[mode]
    error: BaseException | None = None
    async with fault_proxy(s3_server.endpoint_url) as proxy:
        # storage.timeout_s bounds a hung S3 (botocore alone: 60 s reads x 5 attempts)
        via = s3_cfg.model_copy(update={"endpoint_url": proxy.url, "timeout_s": 3.0})
        async with S3BlobStore(via) as blobs:
            if fault is not None:
                proxy.add(fault)
            try:
                async with asyncio.timeout(BOUND_S):
                    if mode == "malformed":
                        await blobs.exists("clips/x.mp4")
                    else:
                        await blobs.put_file("clips/x.mp4", src, content_type="video/mp4",
                                             metadata={})
            except TimeoutError:
                pytest.fail(f"S3 {mode}: no outcome within {BOUND_S}s")
            except Exception as exc:
                error = exc
            proxy.clear()
    if expected == "ok-or-typed":
        assert not outcome(error).startswith("crash:"), repr(error)
    else:
        assert outcome(error) == expected, repr(error)


async def test_s3_refused_at_start_is_dependency_unavailable(s3_cfg: StorageConfig) -> None:
    cfg = s3_cfg.model_copy(update={"endpoint_url": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(FootydError) as info:
        async with asyncio.timeout(BOUND_S), S3BlobStore(cfg):
            pass
    assert outcome(info.value) == "DependencyUnavailable"
