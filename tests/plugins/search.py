"""Search-stage test kit: goals and config, fake and hostile sources, a recording hand-off."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

from footyd.clients.store import Store
from footyd.config import Config, FakeSourceConfig
from footyd.sim.clips import ClipHost, ManualClock
from footyd.sources import Candidate, GoalQuery, SourceHealth, SourceHealthState
from footyd.sources.fake import fake_source
from footyd.sources.search_service import SearchServiceSource
from footyd.stages.search import SearchStage
from tests.plugins.clips import CLIP_T0, ClipHostFactory
from tests.plugins.http import serve_app

FIXTURE_ID = 1001


def make_cfg(*, attempts: int = 3, interval_s: float = 60, on_cancel: str = "delete",
             aliases: dict[str, list[str]] | None = None, source_timeout_s: float = 45,
             before_confirm: bool = True) -> Config:
    return Config.model_validate({
        "search": {"attempts": attempts, "interval_s": interval_s, "schedule": [],
                   "before_confirm": before_confirm,
                   "window_margin_s": 120,
                   "team_aliases": aliases or {}, "source_timeout_s": source_timeout_s},
        "goals": {"on_cancel": on_cancel},
    })


async def insert_goal(store: Store, goal_id: str = "g1", *, first_seen_at: datetime = CLIP_T0,
                      state: str = "confirmed", scorer: str | None = "Florian Wirtz",
                      team: str = "Bayer Leverkusen", **extra: Any) -> None:
    """A goal document as the monitor writes it on confirmation."""
    doc: dict[str, Any] = {
        "_id": goal_id, "fixture_id": FIXTURE_ID, "league_id": 78,
        "kickoff": first_seen_at - timedelta(minutes=44), "team_id": 168, "team_name": team,
        "opponent_id": 157, "opponent_name": "Bayern München", "elapsed": 44, "extra": None,
        "minute": 44, "scorer_id": 1, "scorer_name": scorer, "assist_name": None,
        "detail": "Normal Goal", "score_home": 1, "score_away": 0, "state": state,
        "first_seen_at": first_seen_at, "confirmed_at": first_seen_at,
        "next_search_at": first_seen_at, "search_attempt_ids": [], "cancelled_at": None,
    }
    doc.update(extra)
    await store.goals.insert_one(doc)


class Downloads:
    """The download handoff: records each id with the goal's attempts at that instant."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.ids: list[str] = []
        self.seen: list[tuple[str, list[str], str]] = []  # (clip id, goal attempts, clip state)

    async def __call__(self, clip_id: str) -> bool:
        clip = await self.store.clips.find_one({"_id": clip_id})
        assert clip is not None
        goal = await self.store.goals.find_one({"_id": clip["goal_id"]})
        assert goal is not None
        self.ids.append(clip_id)
        self.seen.append((clip_id, list(goal["search_attempt_ids"]), clip["state"]))
        return True


class HungSource:
    """A source that never answers (a stalled scraper), implementing the Source protocol."""

    name = "hung"

    def __init__(self) -> None:
        self.cancelled = 0

    @property
    def health(self) -> SourceHealthState:
        return SourceHealthState(SourceHealth.OK)

    async def search(self, query: GoalQuery, since: datetime) -> list[Candidate]:
        try:
            await asyncio.Event().wait()
        finally:
            self.cancelled += 1
        return []

    async def aclose(self) -> None:
        return None


class CancellingSource:
    """Answers one candidate after the monitor cancelled the goal during the search (VAR)."""

    name = "var"

    def __init__(self, store: Store) -> None:
        self.store = store

    @property
    def health(self) -> SourceHealthState:
        return SourceHealthState(SourceHealth.OK)

    async def search(self, query: GoalQuery, since: datetime) -> list[Candidate]:
        await self.store.goals.update_one(
            {"_id": query.goal_id}, {"$set": {"state": "cancelled", "next_search_at": None}})
        return [Candidate(source=self.name, post_url="https://example.org/p/1",
                          media_url="https://example.org/m/1.mp4", posted_at=CLIP_T0,
                          text="goal")]

    async def aclose(self) -> None:
        return None


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(CLIP_T0)


@pytest.fixture
async def host(clip_host_factory: ClipHostFactory, clock: ManualClock) -> ClipHost:
    """The demo clip host on the same clock as the stage (goal demo-1 scored at CLIP_T0)."""
    return await clip_host_factory("demo", clock=clock)


@pytest.fixture
async def fake(host: ClipHost) -> AsyncIterator[SearchServiceSource]:
    src = fake_source(FakeSourceConfig(base_url=host.base_url))
    yield src
    await src.aclose()


@pytest.fixture
async def dead_source() -> AsyncIterator[SearchServiceSource]:
    """A search_service whose port refuses connections."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    src = SearchServiceSource(f"http://127.0.0.1:{port}", name="service", requests_per_min=None,
                              timeout_s=5)
    yield src
    await src.aclose()


class Throttled:
    """A loopback search_service that answers 429 (Retry-After) until told to answer []."""

    def __init__(self) -> None:
        self.retry_after_s = "2"
        self.limited = True
        self.requests = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.limited:
            return web.Response(status=429, headers={"Retry-After": self.retry_after_s})
        return web.json_response([])


@pytest.fixture
async def throttled() -> AsyncIterator[tuple[Throttled, SearchServiceSource]]:
    """The throttled server and a source for it (no local limiter: every call asks)."""
    server = Throttled()
    app = web.Application()
    app.router.add_get("/search", server.handle)
    async with serve_app(app) as url:
        src = SearchServiceSource(url, name="throttled", requests_per_min=None)
        try:
            yield server, src
        finally:
            await src.aclose()


class RecordingSource:
    """Answers nothing and keeps the queries it was asked (Source protocol)."""

    name = "recording"

    def __init__(self) -> None:
        self.queries: list[GoalQuery] = []

    @property
    def health(self) -> SourceHealthState:
        return SourceHealthState(SourceHealth.OK)

    async def search(self, query: GoalQuery, since: datetime) -> list[Candidate]:
        self.queries.append(query)
        return []

    async def aclose(self) -> None:
        return None


@pytest.fixture
def downloads(store: Store) -> Downloads:
    return Downloads(store)


def stage_for(cfg: Config, store: Store, blobs: Any, sources: list[Any], downloads: Downloads,
              clock: ManualClock, **kw: Any) -> SearchStage:
    return SearchStage(cfg, store, blobs, sources, to_download=downloads, clock=clock, **kw)


async def goal(store: Store, goal_id: str = "g1") -> dict[str, Any]:
    doc = await store.goals.find_one({"_id": goal_id})
    assert doc is not None
    return doc


async def clips_by_name(store: Store, goal_id: str = "g1") -> dict[str, dict[str, Any]]:
    """Clips keyed by catalogue name (the last path part of their source URL)."""
    out = {}
    async for c in store.clips.find({"goal_id": goal_id}):
        name = (c["media_url"] or c["post_url"]).split("/media/")[-1].split(".mp4")[0]
        assert name not in out, "a candidate was inserted twice"
        out[name] = c
    return out

