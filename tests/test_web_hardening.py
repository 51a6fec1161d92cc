"""The page's API under hostile clients: bad resume ids, clients that stop reading, odd params, Host."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from structlog.testing import capture_logs

from footyd import config as config_mod
from footyd import logs
from footyd.clients.blobs import LocalBlobStore
from footyd.clients.store import Store
from footyd.errors import ConfigError
from footyd.web.server import WebServer
from tests.plugins.web import SeededDay, StartWeb, read_sse, seed_day

BIG_VIEW = {"id": "x", "pad": "p" * 65_536}  # one event of 64 KiB fills socket buffers fast


@pytest.fixture
async def seeded(store: Store, local_store: LocalBlobStore, h264_video: Path) -> SeededDay:
    return await seed_day(store, local_store, h264_video)


async def get(url: str, **kw: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(url, **kw) as resp:
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body


async def until(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait, bounded, for a state the server reaches on its own (it signals no event for it)."""
    async with asyncio.timeout(timeout_s):
        while not check():  # noqa: ASYNC110 - the subscriber count has no event to await
            await asyncio.sleep(0.02)


async def open_unread_stream(web: WebServer) -> socket.socket:
    """A raw client that asks for the stream, then never reads (tiny receive buffer)."""
    host, port = web.address.rsplit(":", 1) if web.address else ("", "0")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    await asyncio.get_running_loop().sock_sendall(
        sock, f"GET /api/stream HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    return sock


async def flood(web: WebServer, done: Callable[[], bool], limit: int = 2000) -> None:
    """Publish big events until `done()` (the server has given up on the client)."""
    assert web.feed is not None
    for n in range(limit):
        if done():
            return
        web.feed.publish("goals", f"g{n}", {**BIG_VIEW, "id": f"g{n}"})
        await asyncio.sleep(0.005)
    raise AssertionError("the server never gave up on a client that does not read")


@pytest.mark.parametrize("bad", ["abc-²", "0abc-¹²", "abc-٣", "ABC-1", "abc-" + "9" * 40, "garbage"])
async def test_malformed_last_event_id_is_400_and_leaks_no_stream_slot(
        seeded: SeededDay, local_store: LocalBlobStore, start_web: StartWeb, bad: str) -> None:
    web = await start_web(local_store, max_streams=2)
    assert web.feed is not None
    for _ in range(5):
        status, body = await get(f"{web.url}/api/stream", headers={"Last-Event-ID": bad})
        assert status == 400 and body["status"] == 400, body
        status, body = await get(f"{web.url}/api/stream", params={"last_event_id": bad})
        assert status == 400 and body["status"] == 400, body
    assert web.feed.subscribers == 0
    async with aiohttp.ClientSession() as http, http.get(f"{web.url}/api/stream") as resp:
        assert resp.status == 200
        assert (await read_sse(resp)).event == "hello"


async def test_client_that_stops_reading_is_cut_and_its_slot_freed(
        seeded: SeededDay, local_store: LocalBlobStore, start_web: StartWeb) -> None:
    web = await start_web(local_store, max_streams=1, write_timeout_s=0.3)
    assert web.feed is not None
    feed = web.feed
    sock = await open_unread_stream(web)
    try:
        await until(lambda: feed.subscribers == 1)
        with capture_logs() as logs:
            await flood(web, lambda: feed.subscribers == 0)
        assert any(e["event"] == "web_stream_client_too_slow" for e in logs)
        async with aiohttp.ClientSession() as http, http.get(f"{web.url}/api/stream") as resp:
            assert resp.status == 200  # the one slot is free again
    finally:
        sock.close()


async def test_slow_client_that_disconnects_logs_no_traceback(
        seeded: SeededDay, local_store: LocalBlobStore, start_web: StartWeb,
        caplog: pytest.LogCaptureFixture) -> None:
    web = await start_web(local_store, write_timeout_s=60)
    assert web.feed is not None
    feed = web.feed
    sock = await open_unread_stream(web)
    await until(lambda: feed.subscribers == 1)
    # fill the buffers until the server's write waits for the client, then hang up
    for n in range(200):
        feed.publish("goals", f"g{n}", {**BIG_VIEW, "id": f"g{n}"})
    await asyncio.sleep(0.3)  # let the pump reach its blocked write (nothing observable to await)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()
    with caplog.at_level(logging.DEBUG):
        await until(lambda: feed.subscribers == 0)
        await asyncio.sleep(0.1)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


@pytest.mark.parametrize("path", [
    "/api/fixtures/%C2%B2", "/api/fixtures/%D9%A3", "/api/fixtures/99999999999999999999999",
    "/api/fixtures?date=9999-12-31", "/api/fixtures?date=0001-01-01",
    "/api/fixtures?date=%D9%A2%D9%A0%D9%A2%D9%A6-01-01", "/api/goals/%00", "/api/goals/" + "a" * 300,
    "/api/clips/..%2F..%2Fetc/video", "/api/fixtures?date=2026-02-30",
])
async def test_bad_parameters_are_json_400_never_500(
        seeded: SeededDay, local_store: LocalBlobStore, start_web: StartWeb, path: str) -> None:
    web = await start_web(local_store)
    async with aiohttp.ClientSession() as http, http.get(web.url + path) as resp:
        assert resp.status in (400, 404), await resp.text()
        assert resp.content_type == "application/json"
        assert (await resp.json())["status"] == resp.status


async def raw_get(web: WebServer, host_header: str, path: str = "/api/fixtures") -> int:
    """Status of a GET sent with a chosen Host header (what a DNS-rebinding page sends)."""
    host, port = web.address.rsplit(":", 1) if web.address else ("", "0")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return int(status_line.split()[1])


async def test_foreign_host_names_are_refused(seeded: SeededDay, local_store: LocalBlobStore,
                                              start_web: StartWeb) -> None:
    web = await start_web(local_store)
    port = web.address.rsplit(":", 1)[1] if web.address else "0"
    for ok in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}"):
        assert await raw_get(web, ok) == 200, ok
    for bad in (f"attacker.example:{port}", "attacker.example", f"127.0.0.1.nip.io:{port}", ""):
        assert await raw_get(web, bad) == 421, bad
        assert await raw_get(web, bad, "/") == 421, bad
    named = await start_web(local_store, allowed_hosts=["footyd.lan"])
    assert await raw_get(named, "footyd.lan:8464") == 200
    assert await raw_get(named, "attacker.example") == 421


def test_token_off_loopback_must_be_long() -> None:
    with pytest.raises(ConfigError) as err:
        config_mod.build({"web": {"enabled": True, "listen": "0.0.0.0:8464", "token": "t"}}, env={})
    assert "web.token" in str(err.value) and "16" in str(err.value)
    long = "k" * 16
    assert config_mod.build({"web": {"enabled": True, "listen": "0.0.0.0:8464", "token": long}},
                            env={}).web.token is not None
    # on loopback a token is an extra, any length
    assert config_mod.build({"web": {"enabled": True, "token": "t"}}, env={}).web.enabled


def test_short_secrets_are_redacted_where_they_stand_alone() -> None:
    out = io.StringIO()
    logs.setup(level="info", fmt="json", secrets=["ab7", "a-long-secret"], stream=out)
    try:
        structlog.get_logger("t").info("call", url="https://x/?token=ab7", body='{"t": "ab7"}',
                                       other="a-long-secret", words="cab77 lab7")
        logging.getLogger("aiohttp.server").warning("stdlib %s", "ab7")
    finally:
        logs.setup(level="info", fmt="json", stream=sys.stderr)
    text = out.getvalue()
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["url"] == "https://x/?token=[redacted]" and first["body"] == '{"t": "[redacted]"}'
    assert first["other"] == "[redacted]"
    assert first["words"] == "cab77 lab7"  # a short secret inside a word is not the secret
    assert second["event"] == "stdlib [redacted]"
