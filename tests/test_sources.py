"""Sources against real loopback HTTP servers; guards with an injected clock."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr
from structlog.testing import capture_logs

from footyd.config import (
    Config,
    FakeSourceConfig,
    SearchConfig,
    SnscrapeConfig,
    SourcesConfig,
    XApiConfig,
)
from footyd.errors import Permanent, RateLimited, Retryable
from footyd.metrics import REGISTRY
from footyd.sim.clips import ClipHost
from footyd.sources import (
    GoalQuery,
    Source,
    SourceHealth,
    SourceUnavailable,
    build_query,
    build_sources,
)
from footyd.sources.fake import fake_source
from footyd.sources.guard import CircuitBreaker, CircuitState, RateLimiter, SourceGuard
from footyd.sources.search_service import SearchServiceSource
from footyd.sources.snscrape_source import SnscrapeSource
from footyd.sources.x_api import XApiSource, recency_priority
from tests.plugins.http import serve_app

TOKEN = "s3cr3t-bearer-token-value"
QUERY = build_query(
    goal_id="g1", fixture_id=7, team_name="Bayer Leverkusen", opponent_name="Bayern",
    scorer_name="Florian Wirtz", minute=44, aliases={"Bayer Leverkusen": ["B04"]},
)
ID_VIDEO = "1790000000000000001"
ID_PHOTO = "1790000000000000002"
ID_HLS_ONLY = "1790000000000000003"
ID_SHORT = "17900000000"  # truncated: must be skipped
CDN = "https://video.twimg.com/ext_tw_video/1/pu/vid"


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps (or the test says)."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.wall0 = time.time()
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.wall0 + (self.t - 1000.0)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


class SteppedClock(FakeClock):
    """A fake clock whose sleeps end only when the test advances it."""

    def __init__(self) -> None:
        super().__init__()
        self.sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self.changed = asyncio.Event()

    def live(self) -> int:
        return sum(1 for _, fut in self.sleepers if not fut.done())

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        entry = (self.t + seconds, asyncio.get_running_loop().create_future())
        self.sleepers.append(entry)
        self.changed.set()
        try:
            await entry[1]
        finally:
            self.sleepers.remove(entry)
            self.changed.set()

    async def until_sleeping(self, count: int) -> None:
        """Return once exactly `count` sleeps are pending."""
        while self.live() != count:
            self.changed.clear()
            await self.changed.wait()

    def advance(self, seconds: float) -> None:
        self.t += seconds
        for due, fut in self.sleepers:
            if due <= self.t and not fut.done():
                fut.set_result(None)


@dataclass
class Server:
    """A loopback HTTP server answering from a queue of canned responses."""

    url: str = ""
    requests: list[web.Request] = field(default_factory=list)
    replies: list[web.Response] = field(default_factory=list)
    default: Any = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        if self.replies:
            return self.replies.pop(0)
        return web.json_response(self.default)


@asynccontextmanager
async def serve(route: str, default: Any = None) -> AsyncIterator[Server]:
    server = Server(default=default)
    app = web.Application()
    app.router.add_get(route, server.handle)
    async with serve_app(app) as url:
        server.url = url
        yield server


def x_body() -> dict[str, Any]:
    variants = [
        {"content_type": "application/x-mpegURL", "url": f"{CDN}/pl/a.m3u8"},
        {"bit_rate": 256000, "content_type": "video/mp4", "url": f"{CDN}/480x270/a.mp4"},
        {"bit_rate": 2176000, "content_type": "video/mp4", "url": f"{CDN}/1280x720/a.mp4"},
        {"bit_rate": 832000, "content_type": "video/mp4", "url": f"{CDN}/640x360/a.mp4"},
    ]
    return {
        "data": [
            {"id": ID_VIDEO, "text": "WIRTZ! 1-0", "created_at": "2024-05-01T18:30:05.000Z",
             "attachments": {"media_keys": ["7_1"]}, "author_id": "1"},
            {"id": ID_PHOTO, "text": "photo", "attachments": {"media_keys": ["3_2"]}},
            {"id": ID_HLS_ONLY, "text": "hls", "attachments": {"media_keys": ["7_4"]}},
            {"id": ID_SHORT, "text": "truncated", "attachments": {"media_keys": ["7_3"]}},
            {"id": "1790000000000000009", "text": "no media"},
        ],
        "includes": {"media": [
            {"media_key": "7_1", "type": "video", "duration_ms": 21000, "width": 1280,
             "height": 720, "variants": variants, "preview_image_url": "https://p/x.jpg"},
            {"media_key": "3_2", "type": "photo", "url": "https://pbs.twimg.com/media/x.jpg"},
            {"media_key": "7_3", "type": "video", "duration_ms": 9000, "variants": variants},
            {"media_key": "7_4", "type": "video", "duration_ms": 5000,
             "variants": variants[:1]},
        ]},
        "meta": {"result_count": 5},
    }


def x_source(url: str, token: str | None = TOKEN, **kw: Any) -> XApiSource:
    cfg = XApiConfig(base_url=url + "/2", bearer_token=SecretStr(token) if token else None,
                     max_results=25)
    return XApiSource(cfg, **kw)


def since_ago(minutes: float = 10) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=minutes)


# ---------------------------------------------------------------- guard


def test_breaker_opens_after_threshold_and_backs_off_exponentially_to_cap() -> None:
    clock = FakeClock()
    b = CircuitBreaker(failure_threshold=2, base_backoff_s=10, max_backoff_s=25, clock=clock)
    b.check()
    b.record_failure()
    assert b.state is CircuitState.CLOSED
    b.record_failure()
    assert b.state is CircuitState.OPEN
    with pytest.raises(SourceUnavailable) as info:
        b.check()
    assert info.value.retry_after_s == 10
    clock.t += 10
    assert b.state is CircuitState.HALF_OPEN
    b.check()  # the single probe
    with pytest.raises(SourceUnavailable):
        b.check()  # a second caller while the probe is out
    b.record_failure()  # failed probe: reopen, doubled
    assert b.retry_after_s == 20
    clock.t += 20
    b.check()
    b.record_failure()
    assert b.retry_after_s == 25  # capped
    clock.t += 25
    b.check()
    b.record_success()
    assert b.state is CircuitState.CLOSED
    b.record_failure()
    b.record_failure()
    assert b.retry_after_s == 10  # success reset the backoff


async def test_rate_limiter_waits_for_a_slot_or_raises_beyond_max_wait() -> None:
    clock = FakeClock()
    rl = RateLimiter(2, 60, max_wait_s=30, clock=clock, sleep=clock.sleep)
    await rl.acquire()
    clock.t += 40
    await rl.acquire()
    assert clock.sleeps == []
    await rl.acquire()  # the first slot frees at t0+60, 20 s from now
    assert clock.sleeps == [20]
    with pytest.raises(RateLimited) as info:  # next slot is t0+100, 40 s away > 30
        await rl.acquire()
    assert info.value.retry_after_s == pytest.approx(40)
    assert clock.sleeps == [20]


async def test_rate_limiter_block_until_and_cancel_releases_reservation() -> None:
    clock = FakeClock()
    gate = asyncio.Event()

    async def stuck_sleep(seconds: float) -> None:
        await gate.wait()

    rl = RateLimiter(1, 60, max_wait_s=100, clock=clock, sleep=stuck_sleep)
    rl.block_until(clock.t + 50)
    waiter = asyncio.create_task(rl.acquire())
    await asyncio.sleep(0)
    assert rl.next_slot() == clock.t + 50 + 60  # our reservation holds the window
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert rl.next_slot() == clock.t + 50  # released


async def test_rate_limiter_gives_the_next_slot_to_the_highest_priority() -> None:
    clock = SteppedClock()
    rl = RateLimiter(1, 60, max_wait_s=1000, clock=clock, sleep=clock.sleep)
    await rl.acquire()  # the window's only request
    served: list[str] = []

    async def want(name: str, priority: float) -> None:
        await rl.acquire(priority)
        served.append(name)

    arrivals = {name: asyncio.create_task(want(name, prio))
                for name, prio in (("old", 1.0), ("newest", 3.0), ("middle", 2.0))}
    await clock.until_sleeping(3)
    assert rl.next_slot(priority=2.5) == 1000 + 120  # behind "newest" only
    for name in ("newest", "middle", "old"):
        clock.advance(60)
        await arrivals[name]
    assert served == ["newest", "middle", "old"]  # arrival order would be old, newest, middle
    assert clock.t == 1180 and rl.next_slot() == 1240


async def test_rate_limiter_raises_for_a_waiter_pushed_past_max_wait() -> None:
    clock = SteppedClock()
    rl = RateLimiter(1, 60, max_wait_s=90, clock=clock, sleep=clock.sleep)
    await rl.acquire()
    low = asyncio.create_task(rl.acquire(1.0))  # slot at +60, within 90 s
    await clock.until_sleeping(1)
    high = asyncio.create_task(rl.acquire(2.0))
    with pytest.raises(RateLimited) as info:
        await low  # now at +120: told at once, not after its wait
    assert info.value.retry_after_s == pytest.approx(120)
    assert clock.t == 1000
    await clock.until_sleeping(1)
    clock.advance(60)
    await high


async def test_guard_passes_priority_to_its_limiter() -> None:
    clock = SteppedClock()
    limiter = RateLimiter(1, 60, max_wait_s=1000, clock=clock, sleep=clock.sleep)
    guard = SourceGuard("s", breaker=CircuitBreaker(clock=clock), limiter=limiter,
                        wall_clock=clock.wall)
    sent: list[str] = []

    async def send(name: str) -> str:
        sent.append(name)
        return name

    assert await guard.call(lambda: send("first")) == "first"
    low = asyncio.create_task(guard.call(lambda: send("low"), priority=1.0))
    await clock.until_sleeping(1)
    high = asyncio.create_task(guard.call(lambda: send("high"), priority=2.0))
    await clock.until_sleeping(2)
    clock.advance(60)
    assert await high == "high"
    assert sent == ["first", "high"]
    clock.advance(60)
    assert await low == "low"
    assert guard.health.state is SourceHealth.OK


async def test_guard_health_transitions() -> None:
    clock = FakeClock()
    guard = SourceGuard("s", breaker=CircuitBreaker(failure_threshold=2, base_backoff_s=5,
                                                    max_backoff_s=50, clock=clock),
                        wall_clock=clock.wall)

    async def ok() -> int:
        return 1

    async def fail() -> int:
        raise Retryable("boom 500")

    async def limited() -> int:
        raise RateLimited("slow down", retry_after_s=3)

    async def denied() -> int:
        raise Permanent("bad token")

    assert await guard.call(ok) == 1
    assert guard.health.state is SourceHealth.OK
    with pytest.raises(RateLimited):
        await guard.call(limited)
    assert guard.health.state is SourceHealth.DEGRADED
    with pytest.raises(Retryable):
        await guard.call(fail)
    assert guard.health.state is SourceHealth.DEGRADED
    with pytest.raises(Retryable):
        await guard.call(fail)
    health = guard.health
    assert health.state is SourceHealth.OPEN_CIRCUIT and health.last_error == "boom 500"
    assert health.next_try_at is not None
    with pytest.raises(SourceUnavailable):
        await guard.call(ok)
    clock.t += 5
    assert await guard.call(ok) == 1
    assert guard.health.state is SourceHealth.OK
    with pytest.raises(Permanent):
        await guard.call(denied)
    assert guard.health.state is SourceHealth.BLOCKED
    assert guard.breaker.retry_after_s == 50  # permanent errors wait the longest backoff


# ---------------------------------------------------------------- x_api


async def test_x_api_parses_documented_shape_and_picks_best_mp4() -> None:
    since = since_ago()
    async with serve("/2/tweets/search/recent", x_body()) as srv:
        src = x_source(srv.url)
        try:
            found = await src.search(QUERY, since)
        finally:
            await src.aclose()
    assert [c.post_url for c in found] == [
        f"https://x.com/i/status/{ID_VIDEO}", f"https://x.com/i/status/{ID_HLS_ONLY}"
    ]
    best, hls = found
    assert best.media_url == f"{CDN}/1280x720/a.mp4" and best.bitrate == 2176000
    assert (best.duration_s, best.width, best.height) == (21.0, 1280, 720)
    assert best.posted_at == datetime(2024, 5, 1, 18, 30, 5, tzinfo=UTC)
    assert best.source == "x_api" and best.text == "WIRTZ! 1-0"
    assert hls.media_url is None  # yt-dlp will fetch the post instead
    (req,) = srv.requests
    assert req.headers["Authorization"] == f"Bearer {TOKEN}"
    assert req.query["query"] == '(Wirtz OR Florian) ("Bayer Leverkusen" OR B04) has:videos -is:retweet'
    assert req.query["start_time"] == since.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert req.query["max_results"] == "25"
    assert req.query["expansions"] == "attachments.media_keys,author_id"
    assert set(req.query["media.fields"].split(",")) >= {"type", "duration_ms", "variants"}
    assert src.health.state is SourceHealth.OK


async def test_x_api_429_raises_rate_limited_and_holds_further_requests() -> None:
    reset = int(time.time()) + 120
    async with serve("/2/tweets/search/recent", x_body()) as srv:
        srv.replies.append(web.json_response(
            {"title": "Too Many Requests"}, status=429,
            headers={"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)},
        ))
        src = x_source(srv.url)
        try:
            with pytest.raises(RateLimited) as info:
                await src.search(QUERY, since_ago())
            assert info.value.retry_after_s is not None and 100 < info.value.retry_after_s <= 121
            with pytest.raises(RateLimited):
                await src.search(QUERY, since_ago())
        finally:
            await src.aclose()
    assert len(srv.requests) == 1  # the second call never reached the server
    assert src.health.state is SourceHealth.DEGRADED


async def test_x_api_401_is_permanent_opens_circuit_and_hides_token() -> None:
    async with serve("/2/tweets/search/recent", x_body()) as srv:
        srv.replies.append(web.json_response({"title": "Unauthorized"}, status=401))
        src = x_source(srv.url)
        try:
            with capture_logs() as logs:
                with pytest.raises(Permanent) as info:
                    await src.search(QUERY, since_ago())
                with pytest.raises(SourceUnavailable):
                    await src.search(QUERY, since_ago())
        finally:
            await src.aclose()
    assert len(srv.requests) == 1
    health = src.health
    assert health.state is SourceHealth.BLOCKED and health.next_try_at is not None
    assert TOKEN not in str(info.value) and TOKEN not in repr(logs)
    assert TOKEN not in (health.last_error or "")


async def test_x_api_spent_window_header_makes_next_call_raise_without_request() -> None:
    headers = {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(int(time.time()) + 300)}
    async with serve("/2/tweets/search/recent", x_body()) as srv:
        srv.replies.append(web.json_response(x_body(), headers=headers))
        src = x_source(srv.url, max_wait_s=10)
        try:
            assert len(await src.search(QUERY, since_ago())) == 2
            with pytest.raises(RateLimited):
                await src.search(QUERY, since_ago())
        finally:
            await src.aclose()
    assert len(srv.requests) == 1


async def test_x_api_spent_window_within_max_wait_waits_then_sends() -> None:
    clock = FakeClock()
    async with serve("/2/tweets/search/recent", x_body()) as srv:
        reset = int(clock.wall()) + 6
        srv.replies.append(web.json_response(
            x_body(), headers={"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)}
        ))
        src = x_source(srv.url, max_wait_s=10, clock=clock, wall_clock=clock.wall,
                       sleep=clock.sleep)
        try:
            await src.search(QUERY, since_ago())
            assert len(srv.requests) == 1
            await src.search(QUERY, since_ago())
        finally:
            await src.aclose()
    assert len(srv.requests) == 2
    assert len(clock.sleeps) == 1 and 5 <= clock.sleeps[0] <= 6


def goal_query(goal_id: str, scorer: str, goal_at: datetime | None) -> GoalQuery:
    return build_query(goal_id=goal_id, fixture_id=7, team_name="Bayer Leverkusen",
                       opponent_name="Bayern", scorer_name=scorer, minute=44, aliases={},
                       goal_at=goal_at)


def test_recency_priority_orders_goals_by_time() -> None:
    at = datetime(2024, 5, 1, 18, 20, tzinfo=UTC)
    newer = recency_priority(goal_query("g2", "Jamal Musiala", at))
    older = recency_priority(goal_query("g1", "Harry Kane", at - timedelta(minutes=20)))
    naive = recency_priority(goal_query("g3", "Harry Kane", at.replace(tzinfo=None)))
    assert newer > older > recency_priority(goal_query("g0", "Harry Kane", None)) == 0.0
    assert naive == newer  # naive times are UTC


async def test_x_api_gives_the_only_slot_to_the_newer_goal() -> None:
    clock = SteppedClock()
    at = datetime(2024, 5, 1, 18, 20, tzinfo=UTC)
    old_goal = goal_query("g_old", "Harry Kane", at - timedelta(minutes=20))
    new_goal = goal_query("g_new", "Jamal Musiala", at)
    async with serve("/2/tweets/search/recent", x_body()) as srv:
        cfg = XApiConfig(base_url=srv.url + "/2", bearer_token=SecretStr(TOKEN),
                         requests_per_15min=1)
        src = XApiSource(cfg, max_wait_s=1000, clock=clock, wall_clock=clock.wall,
                         sleep=clock.sleep)
        try:
            await src.search(QUERY, since_ago())  # spends the window
            old = asyncio.create_task(src.search(old_goal, since_ago()))
            await clock.until_sleeping(1)  # queued for +900 s
            new = asyncio.create_task(src.search(new_goal, since_ago()))
            with pytest.raises(RateLimited) as info:
                await old  # pushed to +1800 s, beyond its 1000 s wait
            assert info.value.retry_after_s == pytest.approx(1800)
            await clock.until_sleeping(1)
            clock.advance(900)
            assert len(await new) == 2
        finally:
            await src.aclose()
    assert [r.query["query"].split()[0] for r in srv.requests] == ["(Wirtz", "(Musiala"]


async def test_x_api_without_token_is_blocked_and_sends_nothing() -> None:
    async with serve("/2/tweets/search/recent", x_body()) as srv:
        src = x_source(srv.url, token=None)
        try:
            with pytest.raises(Permanent, match="no bearer token"):
                await src.search(QUERY, since_ago())
        finally:
            await src.aclose()
    assert srv.requests == []
    assert src.health.state is SourceHealth.BLOCKED


async def test_x_api_server_errors_open_the_circuit() -> None:
    async with serve("/2/tweets/search/recent", x_body()) as srv:
        srv.replies += [web.Response(status=503) for _ in range(3)]
        src = x_source(srv.url)
        try:
            for _ in range(3):
                with pytest.raises(Retryable):
                    await src.search(QUERY, since_ago())
            with pytest.raises(SourceUnavailable):
                await src.search(QUERY, since_ago())
        finally:
            await src.aclose()
    assert len(srv.requests) == 3
    assert src.health.state is SourceHealth.OPEN_CIRCUIT


# ---------------------------------------------------------------- search_service / fake


SERVICE_ITEMS: list[Any] = [
    {"post_url": f"https://x.com/fan/status/{ID_VIDEO}", "media_url": "https://cdn.example/a.mp4",
     "posted_at": "2024-05-01T18:30:05Z", "text": "goal", "duration_s": 21.5, "width": 1280,
     "height": 720},
    {"post_url": "https://clips.example/p/2", "posted_at": "2024-05-01T18:31:00"},
    {"post_url": "https://clips.example/p/2", "text": "duplicate"},
    {"post_url": "ftp://clips.example/p/3"},
    {"post_url": "https://clips.example/p/4", "media_url": "javascript:alert(1)"},
    {"media_url": "https://cdn.example/no-post.mp4"},
    {"post_url": "https://clips.example/p/5", "width": "wide"},
    {"post_url": "https://twitter.com/fan/status/12345678"},
    42,
]


async def test_search_service_parses_items_and_skips_bad_ones() -> None:
    since = since_ago()
    async with serve("/search", SERVICE_ITEMS) as srv:
        src = SearchServiceSource(srv.url, token=SecretStr(TOKEN), limit=20)
        try:
            with capture_logs() as logs:
                found = await src.search(QUERY, since)
        finally:
            await src.aclose()
    assert [c.post_url for c in found] == [
        f"https://x.com/fan/status/{ID_VIDEO}", "https://clips.example/p/2"
    ]
    first, second = found
    assert first.media_url == "https://cdn.example/a.mp4" and first.duration_s == 21.5
    assert (first.width, first.height, first.source) == (1280, 720, "search_service")
    assert second.media_url is None
    assert second.posted_at == datetime(2024, 5, 1, 18, 31, tzinfo=UTC)  # naive read as UTC
    skipped = [e for e in logs if e["event"] == "source_item_skipped"]
    assert len(skipped) == 6
    (req,) = srv.requests
    assert req.headers["Authorization"] == f"Bearer {TOKEN}"
    assert req.query["q"] == '(Wirtz OR Florian) ("Bayer Leverkusen" OR B04)'
    assert datetime.fromisoformat(req.query["since"]) == since
    assert req.query["limit"] == "20"


async def test_search_service_rejects_non_list_and_honours_429() -> None:
    async with serve("/search", {"results": []}) as srv:
        srv.replies.append(web.Response(status=429, headers={"Retry-After": "7"}))
        src = SearchServiceSource(srv.url)
        try:
            with pytest.raises(RateLimited) as info:
                await src.search(QUERY, since_ago())
            assert info.value.retry_after_s == 7
        finally:
            await src.aclose()
    async with serve("/search", {"results": []}) as srv:
        src = SearchServiceSource(srv.url)
        try:
            with pytest.raises(Retryable, match="not a JSON list"):
                await src.search(QUERY, since_ago())
        finally:
            await src.aclose()
    assert "Authorization" not in srv.requests[0].headers


async def test_fake_source_reuses_the_search_service_contract() -> None:
    async with serve("/search", SERVICE_ITEMS[:2]) as srv:
        src = fake_source(FakeSourceConfig(base_url=srv.url))
        try:
            found = await src.search(QUERY, since_ago())
        finally:
            await src.aclose()
    assert src.name == "fake" and [c.source for c in found] == ["fake", "fake"]
    assert srv.requests[0].query["fixture_id"] == "7"


# ---------------------------------------------------------------- snscrape


async def test_snscrape_not_installed_is_blocked_and_fails_fast() -> None:
    assert "snscrape" not in sys.modules
    clock = FakeClock()
    src = SnscrapeSource(SnscrapeConfig(timeout_s=20, backoff_max_s=200), clock=clock,
                         wall_clock=clock.wall)
    with pytest.raises(SourceUnavailable, match="snscrape not installed"):
        await src.search(QUERY, since_ago())
    health = src.health
    assert health.state is SourceHealth.BLOCKED
    assert health.last_error == "snscrape not installed" and health.next_try_at is not None
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match="circuit open"):
        await src.search(QUERY, since_ago())
    assert time.monotonic() - started < 1.0  # refused without waiting its 20 s timeout
    # after the backoff one retry is let through; its failure doubles the backoff, up to the cap
    backoffs = []
    for _ in range(4):
        clock.t += src.guard.breaker.retry_after_s
        with pytest.raises(SourceUnavailable, match="not installed"):
            await src.search(QUERY, since_ago())
        backoffs.append(src.guard.breaker.retry_after_s)
    assert backoffs == [120, 200, 200, 200]
    await src.aclose()


def _write_module(tmp_path: Path, name: str, body: str) -> None:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))


async def test_snscrape_hang_times_out_and_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_module(tmp_path, "footyd_test_hung_scraper", """
        import threading
        RELEASE = threading.Event()
        class TwitterSearchScraper:
            def __init__(self, query):
                self.query = query
            def get_items(self):
                RELEASE.wait(30)
                return iter(())
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    src = SnscrapeSource(SnscrapeConfig(timeout_s=0.3), module_name="footyd_test_hung_scraper")
    try:
        with pytest.raises(SourceUnavailable, match=r"no answer within 0\.3 s"):
            await src.search(QUERY, since_ago())
    finally:
        sys.modules["footyd_test_hung_scraper"].RELEASE.set()
    assert src.health.state is SourceHealth.BLOCKED
    with pytest.raises(SourceUnavailable, match="circuit open"):
        await src.search(QUERY, since_ago())


async def test_snscrape_runs_in_its_own_daemon_thread_and_never_stacks_hung_scrapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_module(tmp_path, "footyd_test_stuck_scraper", """
        import threading
        RELEASE = threading.Event()
        THREADS = []
        class TwitterSearchScraper:
            def __init__(self, query):
                pass
            def get_items(self):
                me = threading.current_thread()
                THREADS.append((me.name, me.daemon))
                RELEASE.wait(60)
                return iter(())
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    clock = FakeClock()
    src = SnscrapeSource(SnscrapeConfig(timeout_s=0.3), module_name="footyd_test_stuck_scraper",
                         clock=clock, wall_clock=clock.wall)
    try:
        with pytest.raises(SourceUnavailable, match="no answer"):
            await src.search(QUERY, since_ago())
        clock.t += src.guard.breaker.retry_after_s  # the circuit lets one retry through
        with pytest.raises(SourceUnavailable, match="previous scrape is still running"):
            await src.search(QUERY, since_ago())
        module = sys.modules["footyd_test_stuck_scraper"]
        # one stuck thread, not a worker of the loop's default executor, and not one per retry
        assert module.THREADS == [("footyd-snscrape", True)]
        assert await asyncio.to_thread(lambda: 42) == 42
    finally:
        sys.modules["footyd_test_stuck_scraper"].RELEASE.set()
        await src.aclose()


async def test_snscrape_items_become_candidates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_module(tmp_path, "footyd_test_ok_scraper", f"""
        import datetime
        from types import SimpleNamespace as NS
        QUERIES = []
        def video(url):
            return NS(duration=12.5, variants=[
                NS(contentType="video/mp4", url=url + "/lo.mp4", bitrate=256000),
                NS(contentType="video/mp4", url=url + "/hi.mp4", bitrate=2176000),
                NS(contentType="application/x-mpegURL", url=url + "/pl.m3u8", bitrate=None),
            ])
        class TwitterSearchScraper:
            def __init__(self, query):
                QUERIES.append(query)
            def get_items(self):
                when = datetime.datetime(2024, 5, 1, 18, 30, tzinfo=datetime.timezone.utc)
                yield NS(url="https://twitter.com/a/status/{ID_VIDEO}", date=when,
                         rawContent="goal", media=[video("https://v.example/1")])
                yield NS(url="https://twitter.com/a/status/123", date=when,
                         rawContent="truncated", media=[video("https://v.example/2")])
                yield NS(url="https://twitter.com/a/status/{ID_PHOTO}", date=when,
                         rawContent="photo", media=[NS(fullUrl="https://p.example/x.jpg")])
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    src = SnscrapeSource(SnscrapeConfig(), module_name="footyd_test_ok_scraper")
    (found,) = await src.search(QUERY, since_ago())
    assert found.post_url == f"https://twitter.com/a/status/{ID_VIDEO}"
    assert found.media_url == "https://v.example/1/hi.mp4" and found.duration_s == 12.5
    assert src.health.state is SourceHealth.OK
    (query,) = sys.modules["footyd_test_ok_scraper"].QUERIES
    assert "filter:native_video" in query and "since_time:" in query


# ---------------------------------------------------------------- registry


async def test_registry_builds_in_order_and_exports_metrics() -> None:
    async with serve("/search", SERVICE_ITEMS[:2]) as srv:
        cfg = Config(
            search=SearchConfig(sources=["snscrape", "fake", "x_api", "fake"]),
            sources=SourcesConfig(fake=FakeSourceConfig(base_url=srv.url)),
        )
        sources = build_sources(cfg)
        try:
            assert [s.name for s in sources] == ["snscrape", "fake", "x_api"]
            assert all(isinstance(s, Source) for s in sources)
            snscrape, fake, _x = sources

            def sample(name: str, **labels: str) -> float:
                return REGISTRY.get_sample_value(name, labels) or 0.0

            before_unavail = sample("footyd_source_requests_total", source="snscrape",
                                    outcome="unavailable")
            before_cands = sample("footyd_source_candidates_total", source="fake")
            with pytest.raises(SourceUnavailable):
                await snscrape.search(QUERY, since_ago())
            assert len(await fake.search(QUERY, since_ago())) == 2
            assert sample("footyd_source_requests_total", source="snscrape",
                          outcome="unavailable") == before_unavail + 1
            assert sample("footyd_source_health", source="snscrape", state="blocked") == 1
            assert sample("footyd_source_health", source="snscrape", state="ok") == 0
            assert sample("footyd_source_candidates_total", source="fake") == before_cands + 2
            assert sample("footyd_source_health", source="fake", state="ok") == 1
        finally:
            for s in sources:
                await s.aclose()


async def test_fake_source_against_the_simulated_clip_host(clip_host: ClipHost) -> None:
    clip_host.reveal_all()
    src = fake_source(FakeSourceConfig(base_url=clip_host.base_url))
    other_goal = build_query(goal_id="g2", fixture_id=7, team_name="Nowhere FC",
                             opponent_name="Bayern", scorer_name="Nobody", minute=3, aliases={})
    since = clip_host.clock() - timedelta(hours=1)
    try:
        found = await src.search(QUERY, since)
        assert await src.search(other_goal, since) == []
    finally:
        await src.aclose()
    assert found and all(c.source == "fake" for c in found)
    assert all(c.post_url.startswith(clip_host.base_url) for c in found)
    assert any(c.media_url is not None for c in found)
    assert any(c.media_url is None for c in found)  # post-only candidates, for yt-dlp
    assert clip_host.searches[0] == '(Wirtz OR Florian) ("Bayer Leverkusen" OR B04)'


def test_every_source_name_has_a_section_a_builder_and_a_check() -> None:
    from typing import get_args

    from footyd.config.models import SourceName, SourcesConfig
    from footyd.sources.registry import SOURCES

    names = set(get_args(SourceName))
    assert names == set(SOURCES) == set(SourcesConfig.model_fields)
    # each check takes its own section, as build does; credentials missing by default
    verdicts = {name: kind.check(getattr(Config().sources, name)) for name, kind in SOURCES.items()}
    assert {n for n, v in verdicts.items() if v.errors} == {"x_api", "reddit"}
    assert not verdicts["x_api"].can_search and verdicts["search_service"].can_search
