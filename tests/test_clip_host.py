"""The clip host over real HTTP: catalogue behaviours, fake search, reveal timing."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pydantic
import pytest

from footyd.errors import DownloadFailed
from footyd.media import probe
from footyd.sim.clipgen import CATALOGUE
from footyd.sim.clips import ClipHost, ClipScript, ManualClock, load_script
from tests.plugins.clips import CLIP_T0, ClipHostFactory

SCRIPT = ClipScript.model_validate({"goals": [
    {"key": "g1", "match": ["Müller", "Bayern"], "at_s": 0, "candidates": [
        {"clip": "a_low", "delay_s": 60},
        {"clip": "a_480p", "delay_s": 120, "via": "post", "text": "HD soon"},
        {"clip": "garbage", "delay_s": 180, "meta": False},
    ]},
    {"key": "g2", "match": ["Kane", "Bayern"], "candidates": [
        {"clip": "b_540p", "delay_s": 30, "id": "kane-1"},
    ]},
]})


async def _get(url: str, **params: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session, session.get(url, params=params) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def _search(host: ClipHost, q: str, **params: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as session, \
            session.get(f"{host.base_url}/search", params={"q": q, **params}) as resp:
        assert resp.status == 200
        result: list[dict[str, Any]] = await resp.json()
        return result


def _clock(host: ClipHost) -> ManualClock:
    assert isinstance(host.clock, ManualClock)
    return host.clock


@pytest.mark.parametrize("name", ["a_720p", "a_low", "a_trim1", "portrait"])
async def test_clips_are_served_as_valid_video(name: str, clip_host: ClipHost, clip_dir: Path,
                                              tmp_path: Path) -> None:
    status, headers, body = await _get(clip_host.media_url(name))
    assert status == 200 and headers["Content-Type"] == "video/mp4"
    assert body == (clip_dir / f"{name}.mp4").read_bytes()
    (tmp_path / "x.mp4").write_bytes(body)
    info = probe(str(tmp_path / "x.mp4"))
    spec = CATALOGUE[name]
    assert (info.width, info.height) == (spec.width, spec.height)
    assert info.duration_s == pytest.approx(spec.seconds, abs=0.05)
    assert clip_host.hits[name] == 1


async def test_range_requests_are_honoured(clip_host: ClipHost, clip_dir: Path) -> None:
    async with aiohttp.ClientSession() as session, \
            session.get(clip_host.media_url("a_low"), headers={"Range": "bytes=0-99"}) as resp:
        assert resp.status == 206
        assert await resp.read() == (clip_dir / "a_low.mp4").read_bytes()[:100]


async def test_garbage_is_served_as_mp4_but_is_not_video(clip_host: ClipHost,
                                                         tmp_path: Path) -> None:
    status, headers, body = await _get(clip_host.media_url("garbage"))
    assert status == 200 and headers["Content-Type"] == "video/mp4" and len(body) > 100_000
    (tmp_path / "g.mp4").write_bytes(body)
    with pytest.raises(DownloadFailed) as err:
        probe(str(tmp_path / "g.mp4"))
    assert err.value.kind == "invalid_media"


@pytest.mark.parametrize(("name", "status"), [("missing", 404), ("geo", 403), ("limited", 429),
                                              ("broken", 503), ("no_such_clip", 404)])
async def test_error_statuses(name: str, status: int, clip_host: ClipHost) -> None:
    got, headers, _ = await _get(clip_host.media_url(name))
    assert got == status
    assert ("Retry-After" in headers) == (status == 429)


async def test_oversized_declares_and_streams_more_than_the_cap(
        clip_host_factory: ClipHostFactory) -> None:
    host = await clip_host_factory(oversized_bytes=3 * 1024 * 1024)
    status, headers, body = await _get(host.media_url("oversized"))
    assert status == 200 and int(headers["Content-Length"]) == 3 * 1024 * 1024
    assert len(body) == 3 * 1024 * 1024
    status, headers, body = await _get(host.media_url("oversized_nolength"))
    assert "Content-Length" not in headers and headers.get("Transfer-Encoding") == "chunked"
    assert len(body) >= 3 * 1024 * 1024


async def test_slow_body_stalls_until_the_client_times_out(clip_host: ClipHost) -> None:
    timeout = aiohttp.ClientTimeout(sock_read=0.5)
    async with aiohttp.ClientSession(timeout=timeout) as session, \
            session.get(clip_host.media_url("slow")) as resp:
        assert resp.status == 200
        head = await resp.content.readexactly(clip_host.slow_head_bytes)
        assert len(head) == clip_host.slow_head_bytes
        with pytest.raises(asyncio.TimeoutError):
            await resp.read()
    await clip_host.stop()  # returns although a stalled response was pending


async def test_trickle_body_keeps_sending_small_chunks(
        clip_host_factory: ClipHostFactory) -> None:
    host = await clip_host_factory(trickle_interval_s=0.01)
    async with aiohttp.ClientSession() as session, \
            session.get(host.media_url("trickle")) as resp:
        await resp.content.readexactly(host.slow_head_bytes + 3 * 1024)
        assert int(resp.headers["Content-Length"]) > host.slow_head_bytes + 3 * 1024


async def test_search_reveals_candidates_after_their_delay(
        clip_host_factory: ClipHostFactory) -> None:
    host = await clip_host_factory(SCRIPT)
    clock = _clock(host)
    assert await _search(host, "Müller Bayern") == []
    clock.advance(59)
    assert await _search(host, "Müller Bayern") == []
    clock.advance(1)
    [first] = await _search(host, "Müller Bayern")
    assert first["posted_at"] == "2026-03-14T12:01:00Z"
    assert first["media_url"] == host.media_url("a_low")
    assert first["post_url"] == host.post_url("g1-0")
    assert (first["width"], first["height"], first["duration_s"]) == (640, 360, 6.0)
    clock.advance(600)
    results = await _search(host, "Müller Bayern")
    assert [r["posted_at"][11:19] for r in results] == ["12:03:00", "12:02:00", "12:01:00"]
    post, garbage = results[1], results[0]
    assert "media_url" not in post and post["post_url"].startswith(host.media_url("a_480p"))
    assert post["text"] == "HD soon"
    assert "width" not in garbage and garbage["media_url"] == host.media_url("garbage")


async def test_search_filters_by_since_terms_and_limit(
        clip_host_factory: ClipHostFactory) -> None:
    host = await clip_host_factory(SCRIPT)
    _clock(host).advance(3600)
    since = (CLIP_T0 + timedelta(seconds=120)).isoformat()
    assert len(await _search(host, "muller BAYERN", since=since)) == 2
    assert len(await _search(host, "(Müller OR Thomas) (Bayern OR FCB) has:videos")) == 3
    assert await _search(host, "Müller Dortmund") == []
    assert await _search(host, "Müllerbayern") == []
    assert len(await _search(host, "Müller Bayern", limit="1")) == 1
    # g2 has no time yet: nothing until goal_at() says when the goal happened
    assert await _search(host, "Kane Bayern") == []
    host.goal_at("g2", CLIP_T0 + timedelta(seconds=3000))
    [kane] = await _search(host, "Kane Bayern")
    assert kane["posted_at"] == "2026-03-14T12:50:30Z" and kane["post_url"].endswith("/kane-1")
    status, _, _ = await _get(f"{host.base_url}/search", q="x", since="yesterday")
    assert status == 400


async def test_http_controls_goal_at_and_reveal_all(clip_host_factory: ClipHostFactory) -> None:
    host = await clip_host_factory(SCRIPT)
    async with aiohttp.ClientSession() as session:
        at = (CLIP_T0 - timedelta(seconds=40)).isoformat()
        async with session.post(f"{host.base_url}/_clips/goal_at",
                                json={"key": "g2", "at": at}) as resp:
            assert resp.status == 200
        assert len(await _search(host, "Kane Bayern")) == 1
        async with session.post(f"{host.base_url}/_clips/goal_at",
                                json={"key": "nope", "at": at}) as resp:
            assert resp.status == 400
        assert await _search(host, "Müller Bayern") == []
        async with session.post(f"{host.base_url}/_clips/reveal_all") as resp:
            assert resp.status == 200
    assert len(await _search(host, "Müller Bayern")) == 3
    assert host.searches[-1] == "Müller Bayern"


async def test_post_page_wraps_the_clip(clip_host: ClipHost) -> None:
    status, _, body = await _get(clip_host.post_url("demo-1-0"))
    assert status == 200 and clip_host.media_url("a_low").encode() in body
    assert (await _get(clip_host.post_url("nope")))[0] == 404


async def test_yt_dlp_fetches_a_post_url(clip_host: ClipHost, clip_dir: Path,
                                         tmp_path: Path) -> None:
    clip_host.reveal_all()
    [post] = [r for r in await _search(clip_host, "Wirtz Leverkusen") if "media_url" not in r]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "yt_dlp", "--no-playlist", "--no-progress", "--no-warnings",
        "--socket-timeout", "5", "--retries", "1", "--no-mtime", "-o",
        str(tmp_path / "%(id)s.%(ext)s"), "--print", "after_move:filepath", "--", post["post_url"],
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    path = Path(out.decode().strip().splitlines()[-1])
    got = await asyncio.to_thread(path.read_bytes)
    assert got == (clip_dir / "a_480p.mp4").read_bytes()


def test_demo_script_has_the_realistic_mix() -> None:
    script = load_script("demo")
    kinds = {CATALOGUE[c.clip].kind for g in script.goals for c in g.candidates}
    clips = {c.clip for g in script.goals for c in g.candidates}
    assert {"clip", "garbage", "oversized", "slow", "status"} <= kinds
    assert {"a_720p", "a_low", "a_480p", "a_trim1", "a_logo", "b_540p", "portrait"} <= clips
    with pytest.raises(pydantic.ValidationError):
        ClipScript.model_validate({"goals": [{"key": "x", "match": ["a"],
                                              "candidates": [{"clip": "nope", "delay_s": 1}]}]})
