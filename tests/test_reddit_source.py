"""The reddit source against a fake Reddit on loopback (OAuth token endpoint + listing)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

from footyd.config import Config, RedditConfig
from footyd.config.check import judge
from footyd.errors import MalformedPayload, Permanent, RateLimited, Retryable
from footyd.sim.reddit import FakeReddit
from footyd.sources import SourceHealth, build_query
from footyd.sources.base import GoalQuery
from footyd.sources.reddit import RedditSource, parse_listing
from tests.plugins.http import serve_app

MEDIA = "https://streamable.com/e/abc123"


class Clock:
    """Monotonic and wall clocks the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.wall0 = time.time()

    def __call__(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.wall0 + (self.t - 1000.0)

    async def sleep(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
async def reddit() -> AsyncIterator[FakeReddit]:
    fake = FakeReddit("cid-123", "very-secret-value")
    await fake.start()
    yield fake
    await fake.stop()


def source(fake: FakeReddit, clock: Clock, **over: Any) -> RedditSource:
    cfg = RedditConfig.model_validate({**fake.source_config(), **over})
    return RedditSource(cfg, clock=clock, wall_clock=clock.wall, sleep=clock.sleep, max_wait_s=5)


def goal(team: str = "Arsenal", opponent: str = "Chelsea", minute: int = 67,
         scorer: str | None = "Bukayo Saka", score: tuple[int, int] | None = (2, 1),
         goal_id: str = "g1") -> GoalQuery:
    return build_query(goal_id=goal_id, fixture_id=1, team_name=team, opponent_name=opponent,
                       scorer_name=scorer, minute=minute, aliases={"Atletico Madrid": ["Atleti"]},
                       score=score)


SINCE = datetime.now(UTC) - timedelta(minutes=10)


async def test_listing_posts_are_filtered_and_matched(reddit: FakeReddit) -> None:
    clock = Clock()
    saka = reddit.add_post("Arsenal [2] - 1 Chelsea - Bukayo Saka 67'", MEDIA, age_s=60)
    reddit.add_post("Arsenal [2] - 1 Chelsea - Bukayo Saka 67'", "https://dubz.link/v/x1",
                    flair=None, age_s=50)  # no flair: not a Media post
    reddit.add_post("Arsenal [2] - 1 Chelsea - Bukayo Saka 67'", "https://streamin.one/v/rm",
                    removed=True, age_s=40)
    reddit.add_post("Arsenal [2] - 1 Chelsea - Bukayo Saka 67'", "", crosspost_of=saka, age_s=30,
                    subreddit="soccer")  # a crosspost of the same clip: listed once
    reddit.add_post("Arsenal 2 - [2] Chelsea - Cole Palmer 67'", "https://v.redd.it/palmer1",
                    age_s=20)  # the other side's goal, same minute
    reddit.add_post("Real Madrid 0 - [1] Atlético de Madrid - Antoine Griezmann 90+2'",
                    "https://v.redd.it/grizi", age_s=10)
    reddit.add_self_post("Match Thread: Arsenal vs Chelsea")
    reddit.add_post("Arsenal [2] - 1 Chelsea - Bukayo Saka 67'", MEDIA + "old", age_s=3600)
    src = source(reddit, clock)
    try:
        saka_found = await src.search(goal(), SINCE)
        palmer = await src.search(goal("Chelsea", "Arsenal", 67, "Cole Palmer", (2, 2), "g2"),
                                  SINCE)
        atleti = await src.search(goal("Atletico Madrid", "Real Madrid", 92, "A. Griezmann",
                                       (0, 1), "g3"), SINCE)
    finally:
        await src.aclose()
    assert [(c.post_url, c.media_url, c.source) for c in saka_found] == [(MEDIA, None, "reddit")]
    assert saka_found[0].permalink == (
        f"https://www.reddit.com/r/soccer/comments/{saka}/arsenal_2_1_chelsea_bukayo_saka_67/")
    assert saka_found[0].text == "Arsenal [2] - 1 Chelsea - Bukayo Saka 67'"
    assert [c.post_url for c in palmer] == ["https://v.redd.it/palmer1"]
    assert [c.post_url for c in atleti] == ["https://v.redd.it/grizi"]
    assert reddit.token_requests == 1 and reddit.listing_requests == 1
    assert reddit.user_agents == ["linux:footyd-sim:1.0 (by /u/footyd)"]


async def test_one_listing_poll_serves_every_goal(reddit: FakeReddit) -> None:
    clock = Clock()
    src = source(reddit, clock, poll_s=30)
    queries = [goal(minute=m, goal_id=f"g{m}") for m in range(1, 21)]
    try:
        await asyncio.gather(*(src.search(q, SINCE) for q in queries))
        assert reddit.listing_requests == 1  # twenty goals at once: one request
        clock.t += 29
        await src.search(queries[0], SINCE)
        assert reddit.listing_requests == 1
        reddit.add_post("Arsenal [2] - 1 Chelsea - Bukayo Saka 67'", MEDIA)
        clock.t += 2
        found = await asyncio.gather(*(src.search(q, SINCE) for q in queries))
    finally:
        await src.aclose()
    assert reddit.listing_requests == 2
    assert [len(f) for f in found] == [1 if q.minute in range(65, 70) else 0 for q in queries]


async def test_several_subreddits_and_any_flair(reddit: FakeReddit) -> None:
    clock = Clock()
    title = "Arsenal [2] - 1 Chelsea - Bukayo Saka 67'"
    reddit.add_post(title, MEDIA)
    reddit.add_post(title, "https://streamff.com/v/b2", subreddit="footballhighlights",
                    flair=None)
    reddit.add_post(title, "https://streamff.com/v/c3", subreddit="elsewhere")
    strict = source(reddit, clock, subreddits=["soccer", "footballhighlights"])
    anyflair = source(reddit, clock, subreddits=["soccer", "footballhighlights"], flairs=[])
    try:
        assert [c.post_url for c in await strict.search(goal(), SINCE)] == [MEDIA]
        assert reddit.listing_requests == 2  # one per subreddit per poll
        found = await anyflair.search(goal(), SINCE)
    finally:
        await strict.aclose()
        await anyflair.aclose()
    assert sorted(c.post_url for c in found) == sorted([MEDIA, "https://streamff.com/v/b2"])


async def test_token_refreshed_before_expiry_and_after_revocation(reddit: FakeReddit) -> None:
    clock = Clock()
    reddit.token_ttl_s = 600
    reddit.add_post("Arsenal [2] - 1 Chelsea - Bukayo Saka 67'", MEDIA)
    src = source(reddit, clock, poll_s=30)
    try:
        assert await src.search(goal(), SINCE)
        clock.t += 500  # 100 s left: still good
        assert await src.search(goal(), SINCE)
        assert reddit.token_requests == 1
        clock.t += 60  # inside the refresh margin: a new token before the listing
        assert await src.search(goal(), SINCE)
        assert reddit.token_requests == 2
        reddit.revoke_tokens()  # expired early mid-run: 401, one fresh token, one retry
        clock.t += 31
        assert await src.search(goal(), SINCE)
        assert reddit.token_requests == 3
        assert src.health.state is SourceHealth.OK
    finally:
        await src.aclose()
    assert reddit.listing_requests == 5


async def test_429_with_reset_headers_holds_requests_until_reset(reddit: FakeReddit) -> None:
    clock = Clock()
    reddit.add_post("Arsenal [2] - 1 Chelsea - Bukayo Saka 67'", MEDIA)
    src = source(reddit, clock, poll_s=30)
    reddit.rate_limited_for_s = 120
    try:
        with pytest.raises(RateLimited) as first:
            await src.search(goal(), SINCE)
        assert first.value.retry_after_s == pytest.approx(120)
        sent = reddit.listing_requests
        with pytest.raises(RateLimited):  # refused locally: the window is spent
            await src.search(goal(), SINCE)
        assert reddit.listing_requests == sent
        assert src.health.state is SourceHealth.DEGRADED  # rate limits never open the circuit
        clock.t += 121
        assert [c.post_url for c in await src.search(goal(), SINCE)] == [MEDIA]
    finally:
        await src.aclose()


async def test_spent_ratelimit_remaining_header_holds_the_next_poll(reddit: FakeReddit) -> None:
    clock = Clock()
    reddit.remaining = 0.0  # X-Ratelimit-Remaining: 0.0, X-Ratelimit-Reset: 300 (a 200 answer)
    src = source(reddit, clock, poll_s=30)
    try:
        await src.search(goal(), SINCE)
        clock.t += 31  # the window is stale, but Reddit said no more until the reset
        with pytest.raises(RateLimited) as held:
            await src.search(goal(), SINCE)
        assert reddit.listing_requests == 1
        assert held.value.retry_after_s == pytest.approx(269, abs=1)
        clock.t += 270
        await src.search(goal(), SINCE)
        assert reddit.listing_requests == 2
    finally:
        await src.aclose()


async def test_bad_credentials_block_the_source_without_leaking_them(reddit: FakeReddit) -> None:
    clock = Clock()
    src = source(reddit, clock, client_secret="wrong-secret-zz")
    try:
        with pytest.raises(Permanent) as err:
            await src.search(goal(), SINCE)
    finally:
        await src.aclose()
    assert src.health.state is SourceHealth.BLOCKED
    assert "wrong-secret-zz" not in str(err.value) and "cid-123" not in str(err.value)
    assert reddit.listing_requests == 0


async def test_unreachable_listing_and_server_errors_open_the_circuit(
        reddit: FakeReddit) -> None:
    clock = Clock()
    reddit.fail_status = 503
    src = source(reddit, clock)
    try:
        for _ in range(3):
            with pytest.raises(Retryable):
                await src.search(goal(), SINCE)
        assert src.health.state is SourceHealth.OPEN_CIRCUIT
        sent = reddit.listing_requests
        with pytest.raises(Retryable):
            await src.search(goal(), SINCE)
        assert reddit.listing_requests == sent
    finally:
        await src.aclose()
    await reddit.stop()
    down = source(reddit, clock, auth_url="http://127.0.0.1:9/api/v1/access_token",
                  api_base_url="http://127.0.0.1:9", timeout_s=2)
    try:
        with pytest.raises(Retryable):
            await down.search(goal(), SINCE)
    finally:
        await down.aclose()


async def test_oversized_listing_is_refused_unread() -> None:
    async def token(_: web.Request) -> web.Response:
        return web.json_response({"access_token": "t", "expires_in": 3600})

    async def listing(_: web.Request) -> web.Response:
        return web.json_response({"kind": "Listing", "data": {"children": [], "pad": "x" * 200_000}})

    app = web.Application()
    app.router.add_post("/token", token)
    app.router.add_get("/r/soccer/new", listing)
    async with serve_app(app) as base:
        cfg = RedditConfig(client_id="a", client_secret="b", auth_url=base + "/token",  # type: ignore[arg-type]
                           api_base_url=base, max_response_mb=0.1)
        src = RedditSource(cfg)
        try:
            with pytest.raises(MalformedPayload, match="over"):
                await src.search(goal(), SINCE)
        finally:
            await src.aclose()


@pytest.mark.parametrize("child", [
    None, 5, {"kind": "t1", "data": {}}, {"kind": "t3"}, {"kind": "t3", "data": []},
    {"kind": "t3", "data": {"id": 1, "title": "x"}},
    {"kind": "t3", "data": {"id": "a", "title": "T 1-0 U - X 1'", "created_utc": "soon",
                            "link_flair_text": "Media", "url": MEDIA, "permalink": "/r/s/c/a/"}},
    {"kind": "t3", "data": {"id": "a", "title": "T 1-0 U - X 1'", "created_utc": 1e300,
                            "link_flair_text": "Media", "url": MEDIA, "permalink": "/r/s/c/a/"}},
    {"kind": "t3", "data": {"id": "a", "title": "T 1-0 U - X 1'", "created_utc": 1.7e9,
                            "link_flair_text": "Media", "url": "javascript:alert(1)",
                            "permalink": "/r/s/c/a/"}},
    {"kind": "t3", "data": {"id": "a", "title": "T 1-0 U - X 1'", "created_utc": 1.7e9,
                            "link_flair_text": "Media", "url": "https://u:p@evil.example/v",
                            "permalink": "/r/s/c/a/"}},
    {"kind": "t3", "data": {"id": "a", "title": "T 1-0 U - X 1'", "created_utc": 1.7e9,
                            "link_flair_text": "Media", "url": "https://x.example/" + "a" * 3000,
                            "permalink": "/r/s/c/a/"}},
])
def test_hostile_listing_items_are_skipped_alone(child: Any) -> None:
    good = {"kind": "t3", "data": {"id": "ok", "title": "T 1-0 U - X 1'", "created_utc": 1.7e9,
                                   "link_flair_text": "Media", "url": MEDIA,
                                   "permalink": "/r/soccer/comments/ok/t/"}}
    posts = parse_listing({"data": {"children": [child, good]}}, flairs=["media"])
    assert [p.post_id for p in posts] == ["ok"]


@pytest.mark.parametrize("flair", ["Match Thread", "Post Match Thread", "post-match thread"])
def test_thread_flaired_posts_are_never_clips_even_when_any_flair_is_wanted(flair: str) -> None:
    def post(pid: str, flair: str) -> dict[str, Any]:
        return {"kind": "t3", "data": {"id": pid, "title": "T [1] - 0 U - X 1'",
                                       "created_utc": 1.7e9, "link_flair_text": flair,
                                       "url": MEDIA, "permalink": f"/r/soccer/comments/{pid}/t/"}}

    for wanted in ([], [flair, "Media"]):
        posts = parse_listing({"data": {"children": [post("th", flair), post("ok", "Media")]}},
                              flairs=wanted)
        assert [p.post_id for p in posts] == ["ok"]


def test_listing_without_children_is_an_error() -> None:
    for body in (None, [], {"data": None}, {"data": {"children": "x"}}):
        with pytest.raises(Retryable):
            parse_listing(body, flairs=[])


def test_check_config_rejects_reddit_enabled_without_credentials() -> None:
    cfg = Config.model_validate({"search": {"sources": ["reddit"]}})
    verdict = judge(cfg, env={})
    keys = [(f.key, f.problem, f.fix) for f in verdict.errors]  # like x_api without a token
    assert any(k == "sources.reddit.client_id" and "no client_id" in p
               and "FOOTYD_SOURCES__REDDIT__CLIENT_SECRET" in fix for k, p, fix in keys)
    assert not any(f.key.startswith("sources.reddit") for f in verdict.warnings)
    placeholder = Config.model_validate({"search": {"sources": ["reddit"]}, "sources": {
        "reddit": {"client_id": "abc", "client_secret": "def"}}})
    assert [f.key for f in judge(placeholder, env={}).warnings
            if f.key.startswith("sources.reddit")] == ["sources.reddit.user_agent"]
    ok = Config.model_validate({"search": {"sources": ["reddit"]}, "sources": {"reddit": {
        "client_id": "abc", "client_secret": "def", "user_agent": "linux:footyd:1.0 (by /u/al)"}}})
    assert not any(f.key.startswith("sources.reddit") for f in judge(ok, env={}).warnings)
    assert judge(ok, env={}).errors == []


def test_check_config_points_at_free_reddit_and_warns_about_the_simulator_source() -> None:
    (none,) = [f for f in judge(Config(), env={}).warnings if f.key == "search.sources"]
    assert "reddit" in none.fix and "free" in none.fix and "x_api" in none.fix
    fake = judge(Config.model_validate({"search": {"sources": ["fake"]}}), env={})
    assert any(f.key == "search.sources" and "simulator" in f.problem for f in fake.warnings)


def test_config_rejects_bad_subreddit_names() -> None:
    with pytest.raises(ValueError, match="subreddit"):
        RedditConfig(subreddits=["soccer/../../api"])
