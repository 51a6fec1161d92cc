"""Hostile search answers: oversized and deeply nested bodies on loopback, fuzzed parsers."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from footyd.config import XApiConfig
from footyd.errors import MalformedPayload, Retryable
from footyd.sources import Source, build_query
from footyd.sources.base import Candidate, is_http_url
from footyd.sources.search_service import SearchServiceSource, parse_items
from footyd.sources.x_api import XApiSource, parse_search_response
from tests.plugins.http import serve_app

MB = 1024 * 1024
QUERY = build_query(goal_id="g1", fixture_id=7, team_name="Bayer Leverkusen",
                    opponent_name="Bayern", scorer_name="Florian Wirtz", minute=44, aliases={})
ITEM = {"post_url": "https://clips.example/p/1", "media_url": "https://cdn.example/1.mp4"}
TWEET_ID = "1790000000000000001"


def _x_body(n: int) -> dict[str, Any]:
    video = {"media_key": "7_1", "type": "video",
             "variants": [{"content_type": "video/mp4", "url": "https://v.example/1.mp4"}]}
    tweet = {"id": TWEET_ID, "text": "x" * 200, "attachments": {"media_keys": ["7_1"]}}
    return {"data": [tweet] * n, "includes": {"media": [video]}}


class Hostile:
    """Serves one body per route shape: chunked (no length), announced, or deeply nested."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.sent = 0

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            for start in range(0, len(self.body), 64 * 1024):
                await resp.write(self.body[start:start + 64 * 1024])
                self.sent += min(64 * 1024, len(self.body) - start)
        except ConnectionError:
            pass  # the client hung up at its cap
        return resp

    async def announced(self, request: web.Request) -> web.Response:
        return web.Response(body=self.body, content_type="application/json")


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    servers: list[Any] = []

    async def start(body: bytes, *, chunked: bool) -> str:
        hostile = Hostile(body)
        handler = hostile.chunked if chunked else hostile.announced
        app = web.Application()
        app.router.add_get("/search", handler)
        app.router.add_get("/tweets/search/recent", handler)
        ctx = serve_app(app)
        url = await ctx.__aenter__()
        servers.append(ctx)
        return url

    yield start
    for ctx in servers:
        await ctx.__aexit__(None, None, None)


def _source(kind: str, url: str) -> Source:
    if kind == "search_service":
        return SearchServiceSource(url, requests_per_min=None, max_response_mb=1)
    return XApiSource(XApiConfig(base_url=url, bearer_token=SecretStr("t"), max_response_mb=1))


def _big_body(kind: str) -> bytes:
    """A valid answer of ~3 MB: the cap, not the content, must refuse it."""
    if kind == "search_service":
        return json.dumps([{**ITEM, "text": "y" * 300}] * 10_000).encode()
    return json.dumps(_x_body(12_000)).encode()


@pytest.mark.parametrize("kind", ["search_service", "x_api"])
@pytest.mark.parametrize("chunked", [True, False])
async def test_body_over_the_cap_is_refused_as_malformed(serve: Any, kind: str,
                                                         chunked: bool) -> None:
    body = _big_body(kind)
    assert len(body) > 2 * MB
    src = _source(kind, await serve(body, chunked=chunked))
    try:
        with pytest.raises(MalformedPayload) as info:
            await src.search(QUERY, datetime.now(UTC) - timedelta(minutes=10))
    finally:
        await src.aclose()
    assert info.value.kind == "too_large" and str(MB) in str(info.value)


@pytest.mark.parametrize("kind", ["search_service", "x_api"])
async def test_deeply_nested_json_is_malformed_not_a_crash(serve: Any, kind: str) -> None:
    depth = 200_000
    src = _source(kind, await serve(b"[" * depth + b"]" * depth, chunked=False))
    try:
        with pytest.raises(MalformedPayload) as info:
            await src.search(QUERY, datetime.now(UTC) - timedelta(minutes=10))
    finally:
        await src.aclose()
    assert info.value.kind == "too_deep"


# ------------------------------------------------------------------------------ fuzzing

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=30,
)
HUGE = st.sampled_from([2**70, -(2**70), 10**400, float("inf"), float("nan"), -1, 0])
URLS = st.sampled_from(["https://x.com/a/status/" + TWEET_ID, "https://cdn.example/v.mp4?s=1",
                        "ftp://x/y", "javascript:alert(1)", "http://", "", "x" * 3000,
                        "https://h/" + "p" * 5000])


def _sane(candidates: list[Candidate]) -> None:
    """What every parsed candidate must satisfy before it reaches MongoDB and the downloader."""
    for c in candidates:
        assert is_http_url(c.post_url) and len(c.post_url) <= 2048
        assert c.media_url is None or (is_http_url(c.media_url) and len(c.media_url) <= 2048)
        assert len(c.text) <= 2000
        for value in (c.width, c.height, c.bitrate):
            assert value is None or 0 < value < 2**63
        assert c.duration_s is None or (math.isfinite(c.duration_s) and 0 <= c.duration_s <= 86_400)


def _item() -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries({}, optional={
        "post_url": URLS | JSON, "media_url": URLS | JSON,
        "posted_at": st.sampled_from(["2026-03-14T12:00:00Z", "9999-99-99", "x"]) | JSON,
        "text": st.text(max_size=50) | st.just("t" * 5000) | JSON,
        "duration_s": HUGE | JSON, "width": HUGE | JSON, "height": HUGE | JSON,
        "bitrate": HUGE | JSON,
    })


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=JSON | st.lists(_item() | JSON, max_size=6))
def test_search_service_parser_fuzz(body: Any) -> None:
    try:
        found = parse_items(body, "search_service", 50)
    except Retryable:
        return  # documented: the answer as a whole is not a list
    _sane(found)


def _tweet() -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries({}, optional={
        "id": st.sampled_from([TWEET_ID, "12", "abc", ""]) | JSON,
        "text": st.text(max_size=20) | st.just("t" * 5000) | JSON,
        "created_at": st.sampled_from(["2026-03-14T12:00:00Z", "garbage"]) | JSON,
        "attachments": st.fixed_dictionaries({}, optional={
            "media_keys": st.lists(st.sampled_from(["7_1", "7_2"]) | JSON, max_size=3) | JSON,
        }) | JSON,
    })


def _media() -> st.SearchStrategy[Any]:
    variant = st.fixed_dictionaries({}, optional={
        "content_type": st.sampled_from(["video/mp4", "application/x-mpegURL"]) | JSON,
        "url": URLS | JSON, "bit_rate": HUGE | JSON,
    })
    return st.fixed_dictionaries({}, optional={
        "media_key": st.sampled_from(["7_1", "7_2"]) | JSON,
        "type": st.sampled_from(["video", "photo"]) | JSON,
        "duration_ms": HUGE | JSON, "width": HUGE | JSON, "height": HUGE | JSON,
        "variants": st.lists(variant | JSON, max_size=3) | JSON,
    })


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=JSON | st.fixed_dictionaries({}, optional={
    "data": st.lists(_tweet() | JSON, max_size=4) | JSON,
    "includes": st.fixed_dictionaries({}, optional={"media": st.lists(_media() | JSON,
                                                                      max_size=4) | JSON}) | JSON,
}))
def test_x_api_parser_fuzz(body: Any) -> None:
    try:
        found = parse_search_response(body)
    except Retryable:
        return  # documented: the answer as a whole does not have the documented shape
    _sane(found)
