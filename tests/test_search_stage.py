"""Search stage: attempts on schedule, hand-offs, slow, hung and rate-limited sources."""

from __future__ import annotations

import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web
from pydantic import SecretStr
from structlog.testing import capture_logs

from footyd.clients.blobs import S3BlobStore
from footyd.clients.store import Store
from footyd.config import Config, SnscrapeConfig, XApiConfig
from footyd.sim.clips import ClipHost, ManualClock
from footyd.sources import Source
from footyd.sources.search_service import SearchServiceSource
from footyd.sources.snscrape_source import SnscrapeSource
from footyd.sources.x_api import XApiSource
from tests.plugins.clips import CLIP_T0
from tests.plugins.http import serve_app
from tests.plugins.search import (
    FIXTURE_ID,
    CancellingSource,
    Downloads,
    HungSource,
    RecordingSource,
    Throttled,
    clips_by_name,
    goal,
    insert_goal,
    make_cfg,
    stage_for,
)

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
    assert offsets[:7] == [0, 30, 60, 90, 120, 150, 180]  # the first wave of clips
    assert offsets[-1] >= 45 * 60  # late HD copies
    stage = stage_for(cfg, store, s3_store, [fake], downloads, clock)
    await insert_goal(store)
    clock.advance(20)  # the first attempt runs late (a busy pipeline)
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
    assert seen_at[:2] == [20, 35]  # never two attempts closer than half the densest step
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
    # long enough that the loopback fake answers in time even on a loaded machine
    stage = stage_for(make_cfg(source_timeout_s=1.5), store, s3_store, [hung, fake], downloads,
                      clock)
    await insert_goal(store)
    clock.advance(70)
    await stage.handle("g1")
    g = await goal(store)
    assert g["search_attempt_ids"] == ["a1"]
    assert g["search_log"][0]["sources"]["hung"] == {
        "outcome": "error", "candidates": 0, "error": "no answer within 1.5 s"}
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
