"""yt-dlp downloads as a real subprocess against a loopback clip host."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from footyd.clients.netguard import AddressPolicy
from footyd.clients.ytdlp import build_command, child_env, classify, fetch_post
from footyd.errors import DownloadFailed, Retryable
from footyd.sim.clipgen import write_clip, write_garbage
from tests.plugins.clips import ClipHostFactory
from tests.plugins.http import serve_app

# its module-scoped clips are built once: one worker runs the file
pytestmark = pytest.mark.xdist_group("test_ytdlp")

MB = 1024 * 1024
T = TypeVar("T")
LOOPBACK_OK = AddressPolicy(allow_private=True)  # the test servers are on loopback


@dataclass
class ClipHost:
    url: str
    clip: bytes
    garbage: bytes
    release: asyncio.Event = field(default_factory=asyncio.Event)
    stalled: asyncio.Event = field(default_factory=asyncio.Event)
    cookies_seen: list[str] = field(default_factory=list)


def _app(host: ClipHost) -> web.Application:
    async def clip(request: web.Request) -> web.Response:
        return web.Response(body=host.clip, content_type="video/mp4")

    async def garbage(request: web.Request) -> web.Response:
        return web.Response(body=host.garbage, content_type="video/mp4")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"\0" * (2 * MB), content_type="video/mp4")

    async def big_unannounced(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(b"\0" * (2 * MB))
        return resp

    async def cookie_clip(request: web.Request) -> web.Response:
        host.cookies_seen.append(request.headers.get("Cookie", ""))
        resp = web.Response(body=host.clip, content_type="video/mp4")
        resp.set_cookie("tracker", "set-by-some-site", max_age=86400)  # yt-dlp saves jars on exit
        return resp

    async def missing(request: web.Request) -> web.Response:
        return web.Response(status=404, text="gone")

    async def stall(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "video/mp4",
                                           "Content-Length": str(10 * MB)})
        await resp.prepare(request)
        await resp.write(b"\0" * 1024)
        host.stalled.set()
        await host.release.wait()
        return resp

    app = web.Application()
    for path, handler in [("/clip.mp4", clip), ("/garbage.mp4", garbage), ("/big.mp4", big),
                          ("/big-unannounced.mp4", big_unannounced),
                          ("/missing.mp4", missing), ("/stall.mp4", stall),
                          ("/cookie.mp4", cookie_clip)]:
        app.router.add_get(path, handler)
    return app


@pytest.fixture(scope="module")
async def clip_host(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ClipHost]:
    base = tmp_path_factory.mktemp("ytdlp")
    clip = write_clip(base / "c.mp4", seed=1, seconds=2.0).read_bytes()
    garbage = write_garbage(base / "g.mp4", 200_000, seed=3).read_bytes()
    host = ClipHost(url="", clip=clip, garbage=garbage)
    async with serve_app(_app(host)) as url:
        host.url = url
        try:
            yield host
        finally:
            host.release.set()


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _get(url: str, dest: Path, *, timeout_s: float = 60, socket_timeout_s: float = 10,
               max_size_mb: float = 5, python: str = sys.executable,
               cookies_file: Path | None = None) -> Path:
    return await fetch_post(url, dest, timeout_s=timeout_s, socket_timeout_s=socket_timeout_s,
                            max_size_mb=max_size_mb, python=python, policy=LOOPBACK_OK,
                            cookies_file=cookies_file)


async def _fails(url: str, dest: Path, *, timeout_s: float = 60, socket_timeout_s: float = 10,
                 max_size_mb: float = 5) -> DownloadFailed:
    with pytest.raises(DownloadFailed) as info:
        await _get(url, dest, timeout_s=timeout_s, socket_timeout_s=socket_timeout_s,
                   max_size_mb=max_size_mb)
    assert _files(dest) == []
    return info.value


async def test_downloads_a_served_mp4(clip_host: ClipHost, tmp_path: Path) -> None:
    dest = tmp_path / "100%(title)s"  # a `%` in the directory must not become a template field
    dest.mkdir()
    path = await _get(clip_host.url + "/clip.mp4", dest)
    assert path.parent == dest and path.name == "clip.mp4"
    assert path.read_bytes() == clip_host.clip
    assert _files(dest) == ["clip.mp4"]


async def test_404_is_not_found(clip_host: ClipHost, tmp_path: Path) -> None:
    failure = await _fails(clip_host.url + "/missing.mp4", tmp_path)
    assert failure.kind == "not_found" and "404" in failure.reason
    assert not failure.retryable


async def test_garbage_served_as_mp4_is_returned_for_the_caller_to_validate(
    clip_host: ClipHost, tmp_path: Path
) -> None:
    path = await _get(clip_host.url + "/garbage.mp4", tmp_path)
    assert path.read_bytes() == clip_host.garbage


async def test_announced_oversize_is_skipped(clip_host: ClipHost, tmp_path: Path) -> None:
    failure = await _fails(clip_host.url + "/big.mp4", tmp_path, max_size_mb=1)
    assert failure.kind in {"skipped", "too_large"}
    path = await _get(clip_host.url + "/big.mp4", tmp_path, max_size_mb=3)
    assert path.stat().st_size == 2 * MB


async def test_unannounced_oversize_is_too_large(clip_host: ClipHost, tmp_path: Path) -> None:
    failure = await _fails(clip_host.url + "/big-unannounced.mp4", tmp_path, max_size_mb=1)
    assert failure.kind == "too_large"


async def test_stalled_body_hits_outer_timeout_and_process_is_reaped(
    clip_host: ClipHost, tmp_path: Path
) -> None:
    with capture_logs() as logs:
        failure = await _fails(clip_host.url + "/stall.mp4", tmp_path, timeout_s=3,
                               socket_timeout_s=60, max_size_mb=20)
    assert failure.kind == "timeout" and failure.retryable
    (pid,) = [e["pid"] for e in logs if e["event"] == "ytdlp_started"]
    assert not _alive(pid)


async def _cancel_while_stalled(clip_host: ClipHost, dest: Path,
                                inspect: Callable[[int], T]) -> tuple[int, T]:
    """Start a download that stalls, run inspect(pid) on the live yt-dlp, then cancel it."""
    clip_host.stalled.clear()
    with capture_logs() as logs:
        task = asyncio.create_task(_get(clip_host.url + "/stall.mp4", dest, timeout_s=60,
                                        socket_timeout_s=60, max_size_mb=20))
        await asyncio.wait_for(clip_host.stalled.wait(), 30)
        (pid,) = [e["pid"] for e in logs if e["event"] == "ytdlp_started"]
        seen = inspect(pid)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    return pid, seen


async def test_cancel_kills_and_reaps_the_process(clip_host: ClipHost, tmp_path: Path) -> None:
    pid, was_alive = await _cancel_while_stalled(clip_host, tmp_path, _alive)
    assert was_alive
    assert not _alive(pid)
    assert _files(tmp_path) == []


async def test_non_http_url_is_refused_before_spawning(tmp_path: Path) -> None:
    # A missing interpreter would raise FileNotFoundError if anything were spawned.
    for url in ("file:///etc/passwd", "ftp://127.0.0.1/x.mp4", "-o/tmp/pwned",
                "--exec=touch /tmp/pwned"):
        with pytest.raises(DownloadFailed) as info:
            await _get(url, tmp_path, python="/nonexistent/python")
        assert info.value.kind == "unsupported_url"


def test_url_goes_after_double_dash_and_is_never_an_option(tmp_path: Path) -> None:
    cmd = build_command("http://127.0.0.1/x.mp4", tmp_path, socket_timeout_s=5, max_size_mb=1,
                        cookies_file=Path("/c/cookies.txt"), ffmpeg_location=Path("/opt/ff"))
    assert cmd[-2:] == ["--", "http://127.0.0.1/x.mp4"]
    assert cmd.count("--") == 1 and "--ignore-config" in cmd
    assert cmd[cmd.index("--cookies") + 1] == "/c/cookies.txt"
    assert cmd[cmd.index("--ffmpeg-location") + 1] == "/opt/ff"
    assert cmd[cmd.index("--max-filesize") + 1] == str(MB)
    # yt-dlp itself must take an option-looking word after `--` as a URL, not as --version.
    probe = build_command("--version", tmp_path, socket_timeout_s=1, max_size_mb=1)
    done = subprocess.run(probe, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0 and "--version" in done.stderr
    assert _files(tmp_path) == []


@pytest.mark.parametrize(("stderr", "kind"), [
    ("ERROR: [generic] Unable to download webpage: HTTP Error 404: Not Found", "not_found"),
    ("ERROR: unable to download video data: HTTP Error 403: Forbidden", "forbidden"),
    ("ERROR: [twitter] 1790: HTTP Error 429: Too Many Requests", "rate_limited"),
    ("ERROR: unable to download video data: HTTP Error 503: Service Unavailable", "server_error"),
    ("ERROR: unable to download video data: The read operation timed out", "timeout"),
    ("ERROR: Unsupported URL: https://example.com/", "unsupported_url"),
    ("ERROR: [twitter] 1790: NSFW tweet requires authentication. Use --cookies", "forbidden"),
    ("ERROR: [twitter] 1790: No video could be found in this tweet", "not_found"),
    ("ERROR: unable to download webpage: <urlopen error [Errno 111] Connection refused>",
     "network"),
])
def test_classify_stderr(stderr: str, kind: str) -> None:
    failure = classify("[generic] Extracting URL\n" + stderr + "\n")
    assert failure.kind == kind and failure.reason == stderr


def _cookie_jar(path: Path, host: str) -> bytes:
    body = ("# Netscape HTTP Cookie File\n"
            f"{host}\tFALSE\t/\tFALSE\t2147483647\tsession\toperator-login\n").encode()
    path.write_bytes(body)
    path.chmod(0o444)  # as under ProtectSystem=strict
    return body


async def test_read_only_cookies_file_is_used_and_never_written(clip_host: ClipHost,
                                                                 tmp_path: Path) -> None:
    clip_host.cookies_seen.clear()
    original = tmp_path / "x-cookies.txt"
    body = _cookie_jar(original, "127.0.0.1")
    dest = tmp_path / "scratch"
    dest.mkdir()
    for _ in range(2):  # a second download sees the operator's file, not the first one's jar
        path = await _get(clip_host.url + "/cookie.mp4", dest, cookies_file=original)
        assert path.read_bytes() == clip_host.clip
        assert original.read_bytes() == body and original.stat().st_mode & 0o777 == 0o444
        assert _files(dest) == ["clip.mp4"]  # the per-download copy is gone
        path.unlink()
    seen = clip_host.cookies_seen
    assert seen and all(c.startswith("session=operator-login") for c in seen)
    # each run opens with the operator's jar alone: run 1's Set-Cookie did not leak into run 2
    assert seen.count("session=operator-login") == 2


async def test_unreadable_cookies_file_is_a_retry_not_a_rejection(clip_host: ClipHost,
                                                                   tmp_path: Path) -> None:
    with pytest.raises(Retryable, match="cookies file unreadable"):
        await _get(clip_host.url + "/cookie.mp4", tmp_path, cookies_file=tmp_path / "absent.txt",
                   python="/nonexistent/python")
    assert _files(tmp_path) == []


SECRETS = {
    "FOOTYD_API_FOOTBALL__API_KEY": "apikey-5f1e0c",
    "FOOTYD_SOURCES__X_API__BEARER_TOKEN": "xbearer-77aa31",
    "FOOTYD_MONGO__URI": "mongodb://footyd:mongopw-c0ffee@db.internal:27017",
    "HTTP_PROXY": "http://proxy.internal:3128", "https_proxy": "http://proxy.internal:3128",
    "ALL_PROXY": "socks5://proxy.internal:1080",
}


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


async def test_ytdlp_child_gets_a_minimal_environment(clip_host: ClipHost, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    assert set(child_env(tmp_path)) == {"PATH", "HOME", "LANG"}
    _, seen = await _cancel_while_stalled(clip_host, tmp_path, _environ)  # the real yt-dlp
    assert set(seen) == {"PATH", "HOME", "LANG"} and seen["HOME"] == str(tmp_path)
    flat = "\n".join(f"{k}={v}" for k, v in seen.items())
    for value in SECRETS.values():
        assert value not in flat


async def test_body_without_length_is_killed_at_the_cap(clip_host_factory: ClipHostFactory,
                                                        tmp_path: Path) -> None:
    host = await clip_host_factory(oversized_bytes=256 * MB)
    with capture_logs() as logs:
        failure = await _fails(host.media_url("oversized_nolength"), tmp_path, max_size_mb=1)
    assert failure.kind == "too_large" and not failure.retryable
    assert any(e["event"] == "ytdlp_failed" and e.get("kind") == "too_large" for e in logs)
    # killed near the cap, not after streaming the whole body (kernel buffers add a few MB)
    assert host.sent_bytes["oversized_nolength"] < 48 * MB
