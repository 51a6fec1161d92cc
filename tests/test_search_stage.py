"""Search stage against the MongoDB-wire server, moto S3 and the clip host's fake search."""

from __future__ import annotations

import asyncio
import socket
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr
from structlog.testing import capture_logs

from footyd import records
from footyd.clients.blobs import S3BlobStore
from footyd.clients.store import Store
from footyd.config import Config, FakeSourceConfig, SnscrapeConfig, XApiConfig
from footyd.metrics import REGISTRY
from footyd.sim.clips import ClipHost, ManualClock
from footyd.sources import Candidate, GoalQuery, Source, SourceHealth, SourceHealthState
from footyd.sources.fake import fake_source
from footyd.sources.search_service import SearchServiceSource
from footyd.sources.snscrape_source import SnscrapeSource
from footyd.sources.x_api import XApiSource
from footyd.stages.search import SearchStage
from tests.plugins.clips import CLIP_T0, ClipHostFactory
from tests.plugins.http import serve_app

FIXTURE_ID = 1001


def make_cfg(*, attempts: int = 3, interval_s: float = 60, on_cancel: str = "delete",
             aliases: dict[str, list[str]] | None = None, source_timeout_s: float = 45) -> Config:
    return Config.model_validate({
        "search": {"attempts": attempts, "interval_s": interval_s, "schedule": [],
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


# ---------------------------------------------------------------- attempts


async def test_attempts_run_on_schedule_and_skip_seen_urls(
    store: Store, s3_store: S3BlobStore, host: ClipHost, fake: SearchServiceSource,
    downloads: Downloads, clock: ManualClock,
) -> None:
    stage = stage_for(make_cfg(attempts=3), store, s3_store, [fake], downloads, clock)
    await insert_goal(store)
    clock.advance(70)  # a_low was posted at +60
    await stage.handle("g1")
    await stage.handle("g1")  # same instant: idempotent, no second attempt or search
    g = await goal(store)
    assert g["state"] == "searching" and g["search_attempt_ids"] == ["a1"]
    assert g["next_search_at"] == CLIP_T0 + timedelta(seconds=130)
    assert len(host.searches) == 1
    assert set(await clips_by_name(store)) == {"a_low"}

    clock.advance(59)  # one second before the next attempt is due
    await stage.handle("g1")
    assert len(host.searches) == 1 and (await goal(store))["search_attempt_ids"] == ["a1"]

    clock.advance(1)
    await stage.handle("g1")
    g = await goal(store)
    assert g["search_attempt_ids"] == ["a1", "a2"]
    entry = g["search_log"][1]
    assert entry["attempt"] == "a2" and entry["seen"] == 1  # a_low again, skipped
    assert entry["candidates"] == 4 and entry["new_clips"] == 2 and entry["filtered"] == 1
    assert entry["sources"]["fake"] == {"outcome": "ok", "candidates": 4, "error": None}
    clips = await clips_by_name(store)
    assert set(clips) == {"a_low", "portrait", "garbage", "a_480p"}
    assert clips["a_480p"]["media_url"] is None
    assert all(c["source_url"] == c["post_url"] for c in clips.values())  # never a media URL
    assert clips["a_low"]["hint_width"] == 640 and clips["a_low"]["hint_height"] == 360

    clock.advance(60)
    await stage.handle("g1")
    assert (await goal(store))["search_attempt_ids"] == ["a1", "a2", "a3"]
    assert set(await clips_by_name(store)) == {
        "a_low", "portrait", "garbage", "a_480p", "missing", "a_trim1"}

    clock.advance(60)  # attempts spent: no further search, clips still pending download
    await stage.handle("g1")
    g = await goal(store)
    assert len(host.searches) == 3 and g["state"] == "searching"
    assert g["next_search_at"] == clock() + timedelta(seconds=30)
    assert len(downloads.ids) == 5  # every discovered clip once, the portrait never


async def test_default_schedule_is_dense_then_sparse_and_lasts_past_45_minutes(
    store: Store, s3_store: S3BlobStore, host: ClipHost, fake: SearchServiceSource,
    downloads: Downloads, clock: ManualClock,
) -> None:
    cfg = Config.model_validate({"search": {"window_margin_s": 120}})  # the shipped schedule
    offsets = cfg.search.attempt_offsets_s()
    assert len(offsets) <= cfg.search.attempts == 10  # no more requests per goal than before
    assert offsets[:4] == [0, 20, 40, 60] and offsets[-1] >= 45 * 60  # late HD copies
    stage = stage_for(cfg, store, s3_store, [fake], downloads, clock)
    await insert_goal(store)
    clock.advance(15)  # confirmed one poll after the goal was first seen
    seen_at: list[float] = []
    while (await goal(store))["state"] != "done" and clock() < CLIP_T0 + timedelta(hours=2):
        g = await goal(store)
        due = g.get("next_search_at")
        if due is not None and due > clock():
            clock.advance((due - clock()).total_seconds())
        before = len(host.searches)
        await stage.handle("g1")
        if len(host.searches) > before:
            seen_at.append((clock() - CLIP_T0).total_seconds())
    assert len(seen_at) == len(offsets)
    assert seen_at[0] == 15 and seen_at[1] == 25  # never two attempts closer than 10 s
    assert seen_at[2:] == offsets[2:]  # then on the goal's own clock
    assert len(host.searches) == len(offsets)


async def test_portrait_hint_is_rejected_before_download(
    store: Store, s3_store: S3BlobStore, host: ClipHost, fake: SearchServiceSource,
    downloads: Downloads, clock: ManualClock,
) -> None:
    stage = stage_for(make_cfg(), store, s3_store, [fake], downloads, clock)
    await insert_goal(store)
    clock.advance(95)  # a_low (+60) and the portrait phone clip (+90)
    await stage.handle("g1")
    clips = await clips_by_name(store)
    portrait = clips["portrait"]
    assert portrait["state"] == "rejected"
    assert portrait["reason"].startswith("filtered: aspect 0.56 (360x640)")
    assert portrait["_id"] not in downloads.ids
    assert downloads.ids == [clips["a_low"]["_id"]]


async def test_handoff_only_discovered_ids_after_attempt_written(
    store: Store, s3_store: S3BlobStore, host: ClipHost, fake: SearchServiceSource,
    downloads: Downloads, clock: ManualClock,
) -> None:
    stage = stage_for(make_cfg(), store, s3_store, [fake], downloads, clock)
    await insert_goal(store)
    clock.advance(130)
    await stage.handle("g1")
    clips = await clips_by_name(store)
    discovered = {c["_id"] for c in clips.values() if c["state"] == "discovered"}
    assert discovered and set(downloads.ids) == discovered
    # at every handoff the attempt was already recorded and the clip was "discovered"
    assert all(attempts == ["a1"] and state == "discovered" for _, attempts, state in downloads.seen)
    for c in clips.values():
        assert c["goal_id"] == "g1" and c["fixture_id"] == FIXTURE_ID and c["source"] == "fake"
        assert c["_id"].startswith("c") and len(c["_id"]) == 17
    assert all(c["next_attempt_at"] == clock() for c in clips.values() if c["_id"] in discovered)


async def test_rerun_after_crash_before_attempt_write_is_idempotent(
    store: Store, s3_store: S3BlobStore, host: ClipHost, fake: SearchServiceSource,
    downloads: Downloads, clock: ManualClock,
) -> None:
    stage = stage_for(make_cfg(), store, s3_store, [fake], downloads, clock)
    await insert_goal(store)
    clock.advance(130)
    await stage.handle("g1")
    first = await clips_by_name(store)
    # What a SIGKILL between the clip inserts and the attempt write leaves behind:
    await store.goals.update_one({"_id": "g1"}, {
        "$set": {"state": "confirmed", "search_attempt_ids": [], "next_search_at": CLIP_T0},
        "$unset": {"search_log": ""}})
    rerun = Downloads(store)
    stage2 = stage_for(make_cfg(), store, s3_store, [fake], rerun, clock)
    await stage2.handle("g1")
    g = await goal(store)
    assert g["search_attempt_ids"] == ["a1"] and len(g["search_log"]) == 1
    assert g["search_log"][0]["new_clips"] == 3 and g["search_log"][0]["seen"] == 4
    assert {k: v["_id"] for k, v in (await clips_by_name(store)).items()} == {
        k: v["_id"] for k, v in first.items()}
    assert sorted(rerun.ids) == sorted(downloads.ids)  # the same clips handed on again


async def test_aliases_and_cadence_are_hot(
    store: Store, s3_store: S3BlobStore, host: ClipHost, fake: SearchServiceSource,
    downloads: Downloads, clock: ManualClock,
) -> None:
    stage = stage_for(make_cfg(attempts=1), store, s3_store, [fake], downloads, clock)
    await insert_goal(store, scorer="Unknown")
    await stage.handle("g1")
    assert "B04" not in host.searches[-1]
    stage.apply_config(make_cfg(attempts=2, interval_s=10,
                                aliases={"Bayer Leverkusen": ["B04", "Werkself"]}))
    clock.advance(60)
    await stage.handle("g1")  # with attempts=1 this would have closed the goal
    g = await goal(store)
    assert g["search_attempt_ids"] == ["a1", "a2"] and g["state"] == "searching"
    assert g["next_search_at"] == clock() + timedelta(seconds=10)
    assert "B04" in host.searches[-1] and "Werkself" in host.searches[-1]
    assert "Unknown" not in host.searches[-1]


# ---------------------------------------------------------------- failing sources


def _write_module(tmp_path: Path, name: str, body: str) -> None:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))


@pytest.mark.parametrize("module", ["snscrape.modules.twitter", "footyd_test_blocked_scraper"])
async def test_blocked_snscrape_does_not_delay_or_break_attempt(
    store: Store, s3_store: S3BlobStore, host: ClipHost, fake: SearchServiceSource,
    downloads: Downloads, clock: ManualClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    module: str,
) -> None:
    # not installed here (the real case), or installed and answered "blocked (404)" by X
    _write_module(tmp_path, "footyd_test_blocked_scraper", """
        class ScraperException(Exception):
            pass
        class TwitterSearchScraper:
            def __init__(self, query):
                self.query = query
            def get_items(self):
                raise ScraperException("4 requests to https://twitter.com/search failed, "
                                       "giving up. Errors: blocked (404)")
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "snscrape" not in sys.modules
    snscrape = SnscrapeSource(SnscrapeConfig(timeout_s=60), module_name=module)
    stage = stage_for(make_cfg(), store, s3_store, [snscrape, fake], downloads, clock)
    await insert_goal(store)
    clock.advance(70)
    started = time.monotonic()
    await stage.handle("g1")
    clock.advance(60)
    await stage.handle("g1")  # circuit open now: refused at once again
    assert time.monotonic() - started < 10  # far below snscrape's 60 s timeout
    g = await goal(store)
    assert g["search_attempt_ids"] == ["a1", "a2"]
    for entry in g["search_log"]:
        assert entry["sources"]["snscrape"]["outcome"] == "unavailable"
        assert entry["sources"]["snscrape"]["error"]
        assert entry["sources"]["fake"]["outcome"] == "ok"
    assert "blocked" in g["search_log"][0]["sources"]["snscrape"]["error"] or \
        "not installed" in g["search_log"][0]["sources"]["snscrape"]["error"]
    assert len(await clips_by_name(store)) == 4 and len(downloads.ids) == 3
    await snscrape.aclose()


async def test_hung_source_is_cut_off_and_the_attempt_completes(
    store: Store, s3_store: S3BlobStore, host: ClipHost, fake: SearchServiceSource,
    downloads: Downloads, clock: ManualClock,
) -> None:
    hung = HungSource()
    assert isinstance(hung, Source) and isinstance(CancellingSource(store), Source)
    stage = stage_for(make_cfg(source_timeout_s=0.3), store, s3_store, [hung, fake], downloads,
                      clock)
    await insert_goal(store)
    clock.advance(70)
    await stage.handle("g1")
    g = await goal(store)
    assert g["search_attempt_ids"] == ["a1"]
    assert g["search_log"][0]["sources"]["hung"] == {
        "outcome": "error", "candidates": 0, "error": "no answer within 0.3 s"}
    assert g["search_log"][0]["sources"]["fake"]["outcome"] == "ok"
    assert hung.cancelled == 1  # the stalled call was cancelled, not leaked
    assert len(downloads.ids) == 1


# ---------------------------------------------------------------- rate limits


async def test_fully_rate_limited_attempt_is_deferred_not_spent(
    store: Store, s3_store: S3BlobStore, downloads: Downloads, clock: ManualClock,
    throttled: tuple[Throttled, SearchServiceSource],
) -> None:
    server, limited = throttled
    snscrape = SnscrapeSource(SnscrapeConfig())  # not installed here: "unavailable"
    stage = stage_for(make_cfg(attempts=3, interval_s=60), store, s3_store, [limited, snscrape],
                      downloads, clock)
    await insert_goal(store)
    clock.advance(70)
    with capture_logs() as logs:
        await stage.handle("g1")
    g = await goal(store)
    assert g["search_attempt_ids"] == [] and g["search_deferrals"] == 1
    assert g["state"] == "searching"
    assert g["next_search_at"] == clock() + timedelta(seconds=5)  # Retry-After 2 s, clamped up
    (entry,) = g["search_log"]
    assert entry["deferred"] is True and entry["attempt"] == "a1" and entry["retry_in_s"] == 5
    assert entry["sources"]["throttled"]["outcome"] == "rate_limited"
    assert entry["sources"]["throttled"]["retry_after_s"] == 2
    assert entry["sources"]["snscrape"]["outcome"] == "unavailable"
    (event,) = [e for e in logs if e["event"] == "goal_search_deferred"]
    assert event["attempt"] == "a1" and event["retry_in_s"] == 5 and event["deferrals"] == 1

    assert await stage.due(clock() + timedelta(seconds=4), 10) == []
    server.retry_after_s = "900"
    clock.advance(5)
    await stage.handle("g1")
    g = await goal(store)
    assert g["search_attempt_ids"] == [] and g["search_deferrals"] == 2
    assert g["next_search_at"] == clock() + timedelta(seconds=60)  # clamped down to interval

    server.limited = False  # the window reset: the same attempt a1 runs and counts
    clock.advance(60)
    await stage.handle("g1")
    g = await goal(store)
    assert g["search_attempt_ids"] == ["a1"] and g["search_deferrals"] == 2
    assert g["search_log"][-1]["sources"]["throttled"]["outcome"] == "empty"
    assert "deferred" not in g["search_log"][-1]
    assert server.requests == 3
    for _ in range(3):  # a2 (empty), then the goal closes
        clock.advance(60)
        await stage.handle("g1")
    g = await goal(store)
    assert g["search_attempt_ids"] == ["a1", "a2", "a3"]
    assert g["outcome"] == "no_clips_found"  # deferrals are not attempts that could not ask
    await snscrape.aclose()


async def test_deferral_cap_spends_the_attempt(
    store: Store, s3_store: S3BlobStore, downloads: Downloads, clock: ManualClock,
    throttled: tuple[Throttled, SearchServiceSource],
) -> None:
    _, limited = throttled
    stage = stage_for(make_cfg(attempts=2), store, s3_store, [limited], downloads, clock)
    await insert_goal(store)
    attempts = []
    for _ in range(5):
        clock.advance(60)
        await stage.handle("g1")
        attempts.append(len((await goal(store))["search_attempt_ids"]))
    assert attempts == [0, 0, 1, 2, 2]  # two deferrals, then spent normally, then closed
    g = await goal(store)
    assert [bool(e.get("deferred")) for e in g["search_log"]] == [True, True, False, False]
    assert g["search_deferrals"] == 2
    assert g["state"] == "done" and g["outcome"] == "sources_failed"


@pytest.mark.parametrize("scorer", ["Florian Wirtz", "Nobody Atall"])
async def test_partly_answered_attempt_is_not_deferred(
    store: Store, s3_store: S3BlobStore, host: ClipHost, fake: SearchServiceSource,
    downloads: Downloads, clock: ManualClock, throttled: tuple[Throttled, SearchServiceSource],
    scorer: str,
) -> None:
    _, limited = throttled
    stage = stage_for(make_cfg(), store, s3_store, [limited, fake], downloads, clock)
    await insert_goal(store, scorer=scorer, team="Bayer Leverkusen" if "Wirtz" in scorer
                      else "Nowhere FC")
    clock.advance(130)
    await stage.handle("g1")
    g = await goal(store)
    assert g["search_attempt_ids"] == ["a1"] and "search_deferrals" not in g
    (entry,) = g["search_log"]
    assert "deferred" not in entry
    assert entry["sources"]["throttled"]["outcome"] == "rate_limited"
    assert entry["sources"]["fake"]["outcome"] == ("ok" if "Wirtz" in scorer else "empty")
    assert g["next_search_at"] == clock() + timedelta(seconds=60)
    assert len(downloads.ids) == (3 if "Wirtz" in scorer else 0)  # the clips found are kept


async def test_rate_limited_rerun_of_a_crashed_attempt_still_records_its_clips(
    store: Store, s3_store: S3BlobStore, host: ClipHost, fake: SearchServiceSource,
    downloads: Downloads, clock: ManualClock, throttled: tuple[Throttled, SearchServiceSource],
) -> None:
    stage = stage_for(make_cfg(), store, s3_store, [fake], downloads, clock)
    await insert_goal(store)
    clock.advance(130)
    await stage.handle("g1")
    # a SIGKILL between the clip inserts and the attempt write, then the source is throttled
    await store.goals.update_one({"_id": "g1"}, {
        "$set": {"state": "confirmed", "search_attempt_ids": [], "next_search_at": CLIP_T0},
        "$unset": {"search_log": ""}})
    rerun = Downloads(store)
    stage2 = stage_for(make_cfg(), store, s3_store, [throttled[1]], rerun, clock)
    await stage2.handle("g1")
    g = await goal(store)
    assert g["search_attempt_ids"] == ["a1"] and "search_deferrals" not in g
    assert g["search_log"][0]["new_clips"] == 3
    assert sorted(rerun.ids) == sorted(downloads.ids)  # a1's clips handed on, not deferred


async def test_query_carries_the_goal_time(
    store: Store, s3_store: S3BlobStore, downloads: Downloads, clock: ManualClock,
) -> None:
    recording = RecordingSource()
    stage = stage_for(make_cfg(), store, s3_store, [recording], downloads, clock)
    await insert_goal(store, first_seen_at=CLIP_T0 - timedelta(minutes=3))
    await stage.handle("g1")
    (query,) = recording.queries
    assert query.goal_at == CLIP_T0 - timedelta(minutes=3)  # rate-limited sources favour newer


# ---------------------------------------------------------------- end of search


async def _set_states(store: Store, states: dict[str, str]) -> None:
    """Play the downstream stages: set clip states by catalogue name."""
    for name, clip in (await clips_by_name(store)).items():
        if name in states:
            await store.clips.update_one({"_id": clip["_id"]}, {"$set": {"state": states[name]}})


async def test_done_clips_kept(
    store: Store, s3_store: S3BlobStore, host: ClipHost, fake: SearchServiceSource,
    downloads: Downloads, clock: ManualClock,
) -> None:
    stage = stage_for(make_cfg(attempts=1), store, s3_store, [fake], downloads, clock)
    await insert_goal(store)
    clock.advance(130)
    await stage.handle("g1")
    await _set_states(store, {"a_low": "kept", "garbage": "rejected", "a_480p": "duplicate"})
    before = REGISTRY.get_sample_value("footyd_goals_done_total", {"outcome": "clips_kept"}) or 0
    clock.advance(60)
    await stage.handle("g1")
    g = await goal(store)
    assert g["state"] == "done" and g["outcome"] == "clips_kept" and g["done_at"] == clock()
    assert g["next_search_at"] is None
    assert REGISTRY.get_sample_value("footyd_goals_done_total", {"outcome": "clips_kept"}) == before + 1
    assert await stage.due(clock() + timedelta(hours=1), 10) == []


async def test_not_done_while_a_clip_is_in_flight_then_all_rejected(
    store: Store, s3_store: S3BlobStore, host: ClipHost, fake: SearchServiceSource,
    downloads: Downloads, clock: ManualClock,
) -> None:
    stage = stage_for(make_cfg(attempts=1), store, s3_store, [fake], downloads, clock)
    await insert_goal(store)
    clock.advance(130)
    await stage.handle("g1")
    await _set_states(store, {"a_low": "failed", "garbage": "rejected"})  # a_480p still pending
    clock.advance(60)
    await stage.handle("g1")
    g = await goal(store)
    assert g["state"] == "searching" and "outcome" not in g
    assert g["next_search_at"] == clock() + timedelta(seconds=30)
    assert await stage.due(clock(), 10) == []
    await _set_states(store, {"a_480p": "downloaded"})  # downloaded is not terminal either
    clock.advance(30)
    assert await stage.due(clock(), 10) == ["g1"]
    await stage.handle("g1")
    assert (await goal(store))["state"] == "searching"
    await _set_states(store, {"a_480p": "failed"})
    clock.advance(30)
    await stage.handle("g1")
    g = await goal(store)
    assert g["state"] == "done" and g["outcome"] == "all_rejected"
    assert len(host.searches) == 1


async def test_done_no_clips_found_when_sources_answered_empty(
    store: Store, s3_store: S3BlobStore, host: ClipHost, fake: SearchServiceSource,
    dead_source: SearchServiceSource, downloads: Downloads, clock: ManualClock,
) -> None:
    # one source down, one answering "nothing": X had nothing, we did not fail
    stage = stage_for(make_cfg(attempts=2), store, s3_store, [dead_source, fake], downloads,
                      clock)
    await insert_goal(store, scorer="Nobody Atall", team="Nowhere FC")
    for _ in range(3):
        clock.advance(60)
        await stage.handle("g1")
    g = await goal(store)
    assert g["state"] == "done" and g["outcome"] == "no_clips_found"
    assert [e["sources"]["fake"]["outcome"] for e in g["search_log"]] == ["empty", "empty"]
    assert g["search_log"][0]["sources"]["service"]["outcome"] == "error"
    assert await store.clips.count_documents({}) == 0 and downloads.ids == []


async def test_done_sources_failed_when_no_source_answered(
    store: Store, s3_store: S3BlobStore, dead_source: SearchServiceSource, downloads: Downloads,
    clock: ManualClock,
) -> None:
    stage = stage_for(make_cfg(attempts=2), store, s3_store, [dead_source], downloads, clock)
    await insert_goal(store)
    for _ in range(3):
        clock.advance(60)
        await stage.handle("g1")
    g = await goal(store)
    assert g["state"] == "done" and g["outcome"] == "sources_failed"
    assert [e["sources"]["service"]["outcome"] for e in g["search_log"]] == ["error", "error"]
    assert all(e["sources"]["service"]["error"] for e in g["search_log"])


async def test_done_sources_partial_after_a_restart_with_other_sources(
    store: Store, s3_store: S3BlobStore, host: ClipHost, fake: SearchServiceSource,
    dead_source: SearchServiceSource, downloads: Downloads, clock: ManualClock,
) -> None:
    await insert_goal(store, scorer="Nobody Atall", team="Nowhere FC")
    first = stage_for(make_cfg(attempts=2), store, s3_store, [dead_source], downloads, clock)
    await first.handle("g1")
    # a restart with the source fixed: the schedule resumes from MongoDB
    second = stage_for(make_cfg(attempts=2), store, s3_store, [fake], downloads, clock)
    clock.advance(60)
    await second.handle("g1")
    clock.advance(60)
    await second.handle("g1")
    g = await goal(store)
    assert g["search_attempt_ids"] == ["a1", "a2"]
    assert g["outcome"] == "sources_partial"  # attempt 1 could not ask anybody


# ---------------------------------------------------------------- cancellation


async def _upload(blobs: S3BlobStore, tmp_path: Path, name: str) -> str:
    path = tmp_path / f"{name}.mp4"
    path.write_bytes(name.encode() * 100)
    key = blobs.key_for(records.clip_key(FIXTURE_ID, "g1", name * 8))
    await blobs.put_file(key, path, content_type="video/mp4", metadata={})
    return key


async def _cancelled_goal_with_clips(store: Store, blobs: S3BlobStore,
                                     tmp_path: Path) -> dict[str, str]:
    """A searching goal with clips in every state, then cancelled as the monitor does it."""
    await insert_goal(store, state="searching", search_attempt_ids=["a1"],
                      next_search_at=CLIP_T0)
    keys = {"kept": await _upload(blobs, tmp_path, "aa"),
            "downloaded": await _upload(blobs, tmp_path, "bb"),
            "gone": blobs.key_for(records.clip_key(FIXTURE_ID, "g1", "cc" * 8))}
    clips = [
        ("c_kept", "kept", keys["kept"]), ("c_down", "downloaded", keys["downloaded"]),
        ("c_dup", "duplicate", keys["kept"]),  # identical bytes: shares the kept clip's key
        ("c_disc", "discovered", None), ("c_rej", "rejected", None),
        ("c_gone", "kept", keys["gone"]),  # blob deleted by a run that crashed before its write
    ]
    for cid, state, key in clips:
        doc: dict[str, Any] = {"_id": cid, "goal_id": "g1", "fixture_id": FIXTURE_ID,
                               "source_url": f"https://example.org/{cid}", "state": state}
        if key:
            doc["blob_key"] = key
        await store.clips.insert_one(doc)
    await store.goals.update_one({"_id": "g1"}, {"$set": {
        "state": "cancelled", "cancelled_at": CLIP_T0, "previous_state": "searching",
        "next_search_at": None}})
    return keys


async def test_cancel_retracts_and_deletes_blobs(
    store: Store, s3_store: S3BlobStore, host: ClipHost, fake: SearchServiceSource,
    downloads: Downloads, clock: ManualClock, tmp_path: Path,
) -> None:
    keys = await _cancelled_goal_with_clips(store, s3_store, tmp_path)
    stage = stage_for(make_cfg(on_cancel="delete"), store, s3_store, [fake], downloads, clock)
    clock.advance(600)
    assert await stage.due(clock(), 10) == ["g1"]
    with capture_logs() as logs:
        await stage.handle("g1")
    assert not await s3_store.exists(keys["kept"])
    assert not await s3_store.exists(keys["downloaded"])
    async for c in store.clips.find({"goal_id": "g1"}):
        assert c["state"] == "retracted" and c["reason"] == "goal cancelled"
        assert c["blob_deleted"] is (c["_id"] in ("c_kept", "c_down", "c_gone"))
    prev = {c["_id"]: c["previous_state"] async for c in store.clips.find({})}
    assert prev["c_disc"] == "discovered" and prev["c_dup"] == "duplicate"
    g = await goal(store)
    assert g["retracted_at"] == clock() and g["search_attempt_ids"] == ["a1"]
    (event,) = [e for e in logs if e["event"] == "goal_clips_retracted"]
    assert event["clips"] == 6 and event["blobs_deleted"] == 3 and event["blobs_kept"] == 0
    # done for good: not due, no search, a second run changes nothing
    assert await stage.due(clock() + timedelta(hours=1), 10) == []
    clock.advance(60)
    await stage.handle("g1")
    assert (await goal(store))["retracted_at"] == g["retracted_at"]
    assert host.searches == [] and downloads.ids == []


async def test_cancel_with_on_cancel_keep_keeps_blobs(
    store: Store, s3_store: S3BlobStore, fake: SearchServiceSource, downloads: Downloads,
    clock: ManualClock, tmp_path: Path,
) -> None:
    keys = await _cancelled_goal_with_clips(store, s3_store, tmp_path)
    stage = stage_for(make_cfg(on_cancel="keep"), store, s3_store, [fake], downloads, clock)
    await stage.handle("g1")
    assert await s3_store.exists(keys["kept"]) and await s3_store.exists(keys["downloaded"])
    states = {c["_id"]: (c["state"], c["blob_deleted"]) async for c in store.clips.find({})}
    assert set(states.values()) == {("retracted", False)}
    assert (await goal(store))["retracted_at"] == clock()


@pytest.mark.parametrize("on_cancel", ["delete", "keep"])
async def test_cancel_removes_uploads_a_crashed_download_never_recorded(
    store: Store, s3_store: S3BlobStore, fake: SearchServiceSource, downloads: Downloads,
    clock: ManualClock, tmp_path: Path, on_cancel: str,
) -> None:
    await insert_goal(store, state="cancelled", cancelled_at=CLIP_T0, next_search_at=None)
    orphan = await _upload(s3_store, tmp_path, "dd")
    await store.clips.insert_one({"_id": "c_mid", "goal_id": "g1", "fixture_id": FIXTURE_ID,
                                  "source_url": "https://example.org/mid", "state": "discovered",
                                  "upload_keys": [orphan]})
    stage = stage_for(make_cfg(on_cancel=on_cancel), store, s3_store, [fake], downloads, clock)
    await stage.handle("g1")
    assert not await s3_store.exists(orphan)
    assert (await store.clips.find_one({"_id": "c_mid"}) or {})["state"] == "retracted"


async def test_cancel_during_search_wins_over_the_attempt(
    store: Store, s3_store: S3BlobStore, host: ClipHost, fake: SearchServiceSource,
    downloads: Downloads, clock: ManualClock,
) -> None:
    stage = stage_for(make_cfg(), store, s3_store, [fake, CancellingSource(store)], downloads,
                      clock)
    await insert_goal(store)
    clock.advance(70)
    await stage.handle("g1")
    g = await goal(store)
    assert g["state"] == "cancelled" and g["search_attempt_ids"] == []
    assert "search_log" not in g and downloads.ids == []
    states = [c["state"] async for c in store.clips.find({"goal_id": "g1"})]
    assert states == ["retracted", "retracted"]  # a_low and the VAR source's post
    await stage.handle("g1")  # the monitor's cancel handoff: completes the retraction
    assert (await goal(store))["retracted_at"] == clock()


# ---------------------------------------------------------------- due


async def test_due_newest_first_with_cancelled_unretracted(
    store: Store, s3_store: S3BlobStore, downloads: Downloads, clock: ManualClock,
) -> None:
    t0 = CLIP_T0
    h = timedelta(hours=1)
    await insert_goal(store, "g_old", first_seen_at=t0 - h)
    await insert_goal(store, "g_new", first_seen_at=t0)
    await insert_goal(store, "g_mid", first_seen_at=t0 - h / 2, state="searching",
                      next_search_at=t0 - timedelta(seconds=10))
    await insert_goal(store, "g_later", first_seen_at=t0 - h / 4, state="searching",
                      next_search_at=t0 + timedelta(seconds=60))
    await insert_goal(store, "g_done", first_seen_at=t0, state="done", next_search_at=None)
    await insert_goal(store, "g_pending", first_seen_at=t0, state="pending", next_search_at=None)
    await insert_goal(store, "g_cancel", first_seen_at=t0 - h / 6, state="cancelled",
                      next_search_at=None)
    await insert_goal(store, "g_retracted", first_seen_at=t0, state="cancelled",
                      next_search_at=None, retracted_at=t0)
    stage = stage_for(make_cfg(), store, s3_store, [], downloads, clock)
    assert await stage.due(t0, 10) == ["g_new", "g_cancel", "g_mid", "g_old"]
    assert await stage.due(t0, 2) == ["g_new", "g_cancel"]
    assert await stage.due(t0 + h, 10) == ["g_new", "g_cancel", "g_later", "g_mid", "g_old"]


async def test_unknown_or_finished_goals_are_left_alone(
    store: Store, s3_store: S3BlobStore, host: ClipHost, fake: SearchServiceSource,
    downloads: Downloads, clock: ManualClock,
) -> None:
    stage = stage_for(make_cfg(), store, s3_store, [fake], downloads, clock)
    await insert_goal(store, "g_pending", state="pending")
    await insert_goal(store, "g_done", state="done")
    for goal_id in ("missing", "g_pending", "g_done"):
        await stage.handle(goal_id)
    assert host.searches == []
    assert (await goal(store, "g_pending"))["search_attempt_ids"] == []



class Rotating:
    """A search_service and an X API on loopback whose media URLs are re-signed on every request."""

    def __init__(self) -> None:
        self.requests = 0

    async def service(self, request: web.Request) -> web.Response:
        self.requests += 1
        return web.json_response([{
            "post_url": "https://clips.example/p/77", "posted_at": CLIP_T0.isoformat(),
            "media_url": f"https://cdn.example/v/77.mp4?Expires=99&Signature=s{self.requests}",
        }])

    async def x(self, request: web.Request) -> web.Response:
        self.requests += 1
        video = {"media_key": "7_1790000000000000077", "type": "video", "duration_ms": 20000,
                 "variants": [{"content_type": "video/mp4", "bit_rate": 2176000,
                               "url": f"https://video.twimg.com/v/77.mp4?tag=12&s={self.requests}"}]}
        tweet = {"id": "1790000000000000077", "text": "Wirtz!", "created_at": "2026-03-14T12:00:30Z",
                 "attachments": {"media_keys": [video["media_key"]]}}
        return web.json_response({"data": [tweet], "includes": {"media": [video]}})


@pytest.mark.parametrize("kind", ["search_service", "x_api"])
async def test_a_re_signed_media_url_is_still_the_same_clip(
    store: Store, s3_store: S3BlobStore, downloads: Downloads, clock: ManualClock, kind: str
) -> None:
    server = Rotating()
    app = web.Application()
    app.router.add_get("/search", server.service)
    app.router.add_get("/tweets/search/recent", server.x)
    async with serve_app(app) as url:
        src: Source = (SearchServiceSource(url, requests_per_min=None) if kind == "search_service"
                       else XApiSource(XApiConfig(base_url=url, bearer_token=SecretStr("t"))))
        try:
            stage = stage_for(make_cfg(attempts=2), store, s3_store, [src], downloads, clock)
            await insert_goal(store)
            await stage.handle("g1")
            clock.advance(61)
            await stage.handle("g1")
        finally:
            await src.aclose()
    assert server.requests == 2
    clips = [c async for c in store.clips.find({"goal_id": "g1"})]
    assert len(clips) == 1 and clips[0]["media_url"].endswith("1")  # the first signature kept
    log = (await goal(store))["search_log"]
    assert [e["new_clips"] for e in log] == [1, 0] and log[1]["seen"] == 1
