"""SSRF guard: address rules, and every hop of a direct GET checked against real loopback servers."""

from __future__ import annotations

import asyncio
import ipaddress
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from footyd.clients.egress_proxy import GuardProxy
from footyd.clients.media_http import MAX_REDIRECTS, fetch_media
from footyd.clients.netguard import (
    AddressPolicy,
    BlockedAddressError,
    address_problem,
    check_url,
    guarded_session,
)
from footyd.clients.ytdlp import fetch_post
from footyd.config import Config
from footyd.errors import DownloadFailed
from footyd.sim.clipgen import write_clip
from tests.plugins.http import serve_app

# its module-scoped clips are built once: one worker runs the file
pytestmark = pytest.mark.xdist_group("test_netguard")

STRICT = AddressPolicy()
OPEN = AddressPolicy(allow_private=True)
FRONT_ONLY = AddressPolicy.build(False, ["127.0.0.1/32"])  # the "public" hop of these tests
METADATA = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"


@pytest.mark.parametrize(("address", "why"), [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"),
    ("fc00::1", "private"), ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("240.0.0.1", "reserved"),
    ("100.64.0.1", "not globally routable"), ("fec0::1", "site-local"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:169.254.169.254", "link-local"),
    ("::ffff:10.0.0.1", "private"), ("64:ff9b::7f00:1", "loopback"),
    ("2002:7f00:1::", "loopback"), ("::127.0.0.1", "reserved"),
])
def test_non_public_addresses_are_named(address: str, why: str) -> None:
    problem = address_problem(ipaddress.ip_address(address))
    assert problem is not None and problem.startswith(why)
    assert OPEN.problem(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700::1111",
                                     "::ffff:8.8.8.8", "64:ff9b::808:808"])
def test_public_addresses_pass(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(("url", "why"), [
    ("http://localhost:9/x.mp4", "loopback"),  # a name: resolved, then judged
    ("http://2130706433/x.mp4", "loopback"),  # 127.0.0.1 spelled as one decimal number
    ("http://0x7f.1/x.mp4", "loopback"),
    ("http://[::ffff:127.0.0.1]:80/x.mp4", "loopback"),
    (METADATA, "link-local"),
    ("https://10.0.0.8/x.mp4", "private"),
])
async def test_check_url_refuses_non_public_hosts(url: str, why: str) -> None:
    with pytest.raises(DownloadFailed) as info:
        await check_url(url, STRICT)
    assert info.value.kind == "blocked_address" and not info.value.retryable
    assert why in info.value.reason and "download.allow_private_addresses" in info.value.reason
    await check_url(url, OPEN)  # the operator's switch lets them all through


def test_config_default_is_strict_and_networks_are_validated() -> None:
    assert Config.model_validate({}).download.allow_private_addresses is False
    with pytest.raises(ValueError, match="allowed_networks"):
        Config.model_validate({"download": {"allowed_networks": ["not-a-net"]}})


@dataclass
class Hosts:
    front: str  # 127.0.0.1: allowed by FRONT_ONLY
    back: str  # 127.0.0.2: loopback, refused unless the flag is on
    clip: bytes
    back_hits: Counter[str] = field(default_factory=Counter)


@pytest.fixture(scope="module")
async def hosts(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Hosts]:
    clip = write_clip(tmp_path_factory.mktemp("guard") / "c.mp4", seed=2, seconds=1.0).read_bytes()
    state = Hosts("", "", clip)

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"/loop?n={int(request.query.get('n', '0')) + 1}")

    async def clip_route(request: web.Request) -> web.Response:
        state.back_hits[request.path] += 1
        return web.Response(body=state.clip, content_type="video/mp4")

    front = web.Application()
    front.router.add_get("/go", redirect)
    front.router.add_get("/loop", loop)
    back = web.Application()
    back.router.add_get("/clip.mp4", clip_route)
    async with serve_app(front) as front_url, serve_app(back, host="127.0.0.2") as back_url:
        state.front, state.back = front_url, back_url
        yield state


def _empty(directory: Path) -> bool:
    return not any(directory.iterdir())


async def _fetch(url: str, dest: Path, policy: AddressPolicy) -> Path:
    async with aiohttp.ClientSession() as session:
        return await fetch_media(session, url, dest, max_size_mb=5, timeout_s=10,
                                 socket_timeout_s=5, policy=policy)


async def test_redirect_to_loopback_is_refused_when_flag_is_off(hosts: Hosts,
                                                                 tmp_path: Path) -> None:
    before = hosts.back_hits["/clip.mp4"]
    with pytest.raises(DownloadFailed) as info:
        await _fetch(f"{hosts.front}/go?to={hosts.back}/clip.mp4", tmp_path, FRONT_ONLY)
    assert info.value.kind == "blocked_address"
    assert "127.0.0.2" in info.value.reason and "loopback" in info.value.reason
    assert hosts.back_hits["/clip.mp4"] == before  # never connected to the refused hop
    assert _empty(tmp_path)


async def test_redirect_to_cloud_metadata_is_refused(hosts: Hosts, tmp_path: Path) -> None:
    with pytest.raises(DownloadFailed) as info:
        await _fetch(f"{hosts.front}/go?to={METADATA}", tmp_path, FRONT_ONLY)
    assert info.value.kind == "blocked_address" and "169.254.169.254" in info.value.reason
    assert "link-local" in info.value.reason


async def test_redirect_is_followed_when_flag_is_on(hosts: Hosts, tmp_path: Path) -> None:
    path = await _fetch(f"{hosts.front}/go?to={hosts.back}/clip.mp4", tmp_path, OPEN)
    assert path.read_bytes() == hosts.clip


async def test_redirect_chain_is_bounded(hosts: Hosts, tmp_path: Path) -> None:
    with pytest.raises(DownloadFailed) as info:
        await _fetch(f"{hosts.front}/loop", tmp_path, OPEN)
    assert info.value.kind == "too_many_redirects" and str(MAX_REDIRECTS) in info.value.reason


async def test_guarded_session_refuses_at_connect_time(hosts: Hosts) -> None:
    # the resolver itself refuses: covers a name whose DNS answer changes after check_url
    url = f"http://localhost:{hosts.front.rsplit(':', 1)[1]}/loop"
    async with guarded_session(lambda: STRICT) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await session.get(url, allow_redirects=False)
    assert isinstance(info.value.os_error, BlockedAddressError)
    async with guarded_session(lambda: OPEN) as session, \
            session.get(url, allow_redirects=False) as resp:
        assert resp.status == 302  # the same name connects once the policy allows it


async def test_ytdlp_refuses_a_loopback_post_before_spawning(tmp_path: Path) -> None:
    for url in ("http://127.0.0.1:9/post/1", METADATA, "http://localhost/status/1"):
        with pytest.raises(DownloadFailed) as info:
            await fetch_post(url, tmp_path, timeout_s=5, socket_timeout_s=1, max_size_mb=1,
                             policy=STRICT, python="/nonexistent/python")
        assert info.value.kind == "blocked_address"
    assert _empty(tmp_path)


async def _ytdlp(url: str, dest: Path, policy: AddressPolicy) -> Path:
    return await fetch_post(url, dest, timeout_s=60, socket_timeout_s=5, max_size_mb=5,
                            policy=policy)


@pytest.mark.parametrize(("target", "why"), [("back", "loopback"), ("metadata", "link-local")])
async def test_ytdlp_redirect_to_a_private_address_is_refused(hosts: Hosts, tmp_path: Path,
                                                              target: str, why: str) -> None:
    before = hosts.back_hits["/clip.mp4"]
    to = f"{hosts.back}/clip.mp4" if target == "back" else METADATA
    with pytest.raises(DownloadFailed) as info:
        await _ytdlp(f"{hosts.front}/go?to={to}", tmp_path, FRONT_ONLY)
    assert info.value.kind == "blocked_address" and why in info.value.reason
    assert hosts.back_hits["/clip.mp4"] == before  # the guard proxy never connected
    assert _empty(tmp_path)


async def test_ytdlp_follows_the_redirect_when_flag_is_on(hosts: Hosts, tmp_path: Path) -> None:
    path = await _ytdlp(f"{hosts.front}/go?to={hosts.back}/clip.mp4", tmp_path, OPEN)
    assert path.read_bytes() == hosts.clip


async def _ask(proxy_url: str, head: bytes) -> bytes:
    host, port = proxy_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head)
    await writer.drain()
    answer = await reader.read(4096)
    writer.close()
    await writer.wait_closed()
    return answer


async def test_guard_proxy_answers_refusals_and_garbage_without_connecting(hosts: Hosts) -> None:
    back = hosts.back.removeprefix("http://")
    async with GuardProxy(FRONT_ONLY, connect_timeout_s=5) as proxy:
        assert (await _ask(proxy.url, f"CONNECT {back} HTTP/1.1\r\n\r\n".encode())
                ).startswith(b"HTTP/1.1 403")
        assert (await _ask(proxy.url, b"GET http://169.254.169.254/ HTTP/1.1\r\n\r\n")
                ).startswith(b"HTTP/1.1 403")
        for garbage in (b"\x00\xff nonsense\r\n\r\n", b"GET /relative HTTP/1.1\r\n\r\n",
                        b"GET ftp://x/ HTTP/1.1\r\n\r\n", b"X" * 70_000 + b"\r\n\r\n"):
            assert (await _ask(proxy.url, garbage)).startswith(b"HTTP/1.1 400")
        authority = hosts.front.removeprefix("http://")
        front = await _ask(proxy.url, f"GET {hosts.front}/go?to=/x HTTP/1.1\r\nHost: {authority}"
                                      "\r\nProxy-Connection: keep-alive\r\n\r\n".encode())
    assert front.startswith(b"HTTP/1.1 302") and b"Connection: close" in front
    assert len(proxy.refused) == 2 and "127.0.0.2" in proxy.refused[0]
