"""Direct media downloads against a real loopback HTTP server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from footyd.clients.media_http import fetch_media
from footyd.clients.netguard import AddressPolicy
from footyd.errors import DownloadFailed
from footyd.sim.clipgen import write_clip
from tests.plugins.http import serve_app

# its module-scoped clips are built once: one worker runs the file
pytestmark = pytest.mark.xdist_group("test_media_http")

MB = 1024 * 1024
LOOPBACK_OK = AddressPolicy(allow_private=True)  # the test servers are on loopback


@dataclass
class ClipHost:
    url: str
    clip: bytes
    release: asyncio.Event = field(default_factory=asyncio.Event)


def _app(host: ClipHost) -> web.Application:
    async def clip(request: web.Request) -> web.Response:
        return web.Response(body=host.clip, content_type="video/mp4")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"\0" * (2 * MB), content_type="video/mp4")

    async def chunked_big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            for _ in range(64):  # 4 MB in 64 KiB chunks, no Content-Length
                await resp.write(b"\1" * (64 * 1024))
        except ConnectionResetError:
            pass  # the client hung up at its cap
        return resp

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="no")

    async def stall(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "video/mp4",
                                           "Content-Length": str(10 * MB)})
        await resp.prepare(request)
        await resp.write(b"\0" * 1024)
        await host.release.wait()
        return resp

    async def trickle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        await resp.prepare(request)
        while not host.release.is_set():  # a byte every 50 ms: never idle, never finished
            await resp.write(b"\0")
            try:
                await asyncio.wait_for(host.release.wait(), 0.05)
            except TimeoutError:
                pass
        return resp

    app = web.Application()
    app.router.add_get("/clip.mp4", clip)
    app.router.add_get("/big.mp4", big)
    app.router.add_get("/chunked-big", chunked_big)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/stall.mp4", stall)
    app.router.add_get("/trickle", trickle)
    return app


@pytest.fixture(scope="module")
async def clip_host(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ClipHost]:
    path = write_clip(tmp_path_factory.mktemp("media") / "c.mp4", seed=1, seconds=2.0)
    host = ClipHost(url="", clip=path.read_bytes())
    async with serve_app(_app(host)) as url:
        host.url = url
        try:
            yield host
        finally:
            host.release.set()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def _fetch(session: aiohttp.ClientSession, url: str, dest: Path, *, max_size_mb: float = 5,
                 timeout_s: float = 10, socket_timeout_s: float = 5) -> Path:
    return await fetch_media(session, url, dest, max_size_mb=max_size_mb, timeout_s=timeout_s,
                             socket_timeout_s=socket_timeout_s, policy=LOOPBACK_OK)


async def _fails(session: aiohttp.ClientSession, url: str, dest: Path, **kw: float) -> str:
    with pytest.raises(DownloadFailed) as info:
        await _fetch(session, url, dest, **kw)
    assert _files(dest) == []  # nothing left behind
    return info.value.kind


async def test_downloads_a_clip(clip_host: ClipHost, session: aiohttp.ClientSession,
                                tmp_path: Path) -> None:
    path = await _fetch(session, clip_host.url + "/clip.mp4", tmp_path)
    assert path.parent == tmp_path and path.suffix == ".mp4"
    assert path.read_bytes() == clip_host.clip
    assert _files(tmp_path) == [path.name]


async def test_content_length_above_cap_is_refused(clip_host: ClipHost,
                                                   session: aiohttp.ClientSession,
                                                   tmp_path: Path) -> None:
    assert await _fails(session, clip_host.url + "/big.mp4", tmp_path, max_size_mb=1) == "too_large"
    # the same file under a larger cap downloads: the cap is what refused it
    path = await _fetch(session, clip_host.url + "/big.mp4", tmp_path, max_size_mb=3)
    assert path.stat().st_size == 2 * MB


async def test_stream_without_length_is_aborted_past_cap(clip_host: ClipHost,
                                                         session: aiohttp.ClientSession,
                                                         tmp_path: Path) -> None:
    kind = await _fails(session, clip_host.url + "/chunked-big", tmp_path, max_size_mb=1)
    assert kind == "too_large"


@pytest.mark.parametrize(("code", "kind"), [
    (404, "not_found"), (410, "not_found"), (403, "forbidden"), (451, "forbidden"),
    (429, "rate_limited"), (500, "server_error"), (503, "server_error"),
])
async def test_status_codes_map_to_kinds(clip_host: ClipHost, session: aiohttp.ClientSession,
                                         tmp_path: Path, code: int, kind: str) -> None:
    assert await _fails(session, f"{clip_host.url}/status/{code}", tmp_path) == kind
    assert DownloadFailed(kind, "").retryable is (kind in {"rate_limited", "server_error"})


async def test_stalled_body_hits_read_timeout(clip_host: ClipHost,
                                              session: aiohttp.ClientSession,
                                              tmp_path: Path) -> None:
    kind = await _fails(session, clip_host.url + "/stall.mp4", tmp_path, timeout_s=30,
                        socket_timeout_s=0.3, max_size_mb=20)
    assert kind == "timeout"


async def test_slow_body_hits_total_timeout(clip_host: ClipHost, session: aiohttp.ClientSession,
                                            tmp_path: Path) -> None:
    kind = await _fails(session, clip_host.url + "/trickle", tmp_path, timeout_s=0.5,
                        socket_timeout_s=5)
    assert kind == "timeout"


async def test_connection_refused_is_network(session: aiohttp.ClientSession,
                                             tmp_path: Path) -> None:
    async with serve_app(web.Application()) as url:
        pass  # the port is closed again after this block
    assert await _fails(session, f"{url}/x.mp4", tmp_path) == "network"


@pytest.mark.parametrize("url", [
    "ftp://127.0.0.1/x.mp4", "file:///etc/passwd", "-o/tmp/x", "javascript:alert(1)", "http://",
])
async def test_non_http_urls_are_refused(session: aiohttp.ClientSession, tmp_path: Path,
                                         url: str) -> None:
    assert await _fails(session, url, tmp_path) == "unsupported_url"


async def test_timeout_reason_names_the_timeout_that_fired(
    clip_host: ClipHost, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Issue 10 item 4: a stalled body records socket_timeout_s, a slow one timeout_s."""
    with pytest.raises(DownloadFailed) as stalled:
        await _fetch(session, clip_host.url + "/stall.mp4", tmp_path, timeout_s=30,
                     socket_timeout_s=0.3, max_size_mb=20)
    assert "0.3 s" in stalled.value.reason and "socket_timeout_s" in stalled.value.reason
    assert "30 s" not in stalled.value.reason
    with pytest.raises(DownloadFailed) as slow:
        await _fetch(session, clip_host.url + "/trickle", tmp_path, timeout_s=0.5,
                     socket_timeout_s=5)
    assert "0.5 s" in slow.value.reason and "download.timeout_s" in slow.value.reason
