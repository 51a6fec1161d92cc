"""Search stage: how a goal ends (`done` and its outcome) once its clips are terminal."""

from __future__ import annotations

from datetime import timedelta

from footyd.clients.blobs import S3BlobStore
from footyd.clients.store import Store
from footyd.metrics import REGISTRY
from footyd.sim.clips import ClipHost, ManualClock
from footyd.sources.search_service import SearchServiceSource
from tests.plugins.search import (
    Downloads,
    clips_by_name,
    goal,
    insert_goal,
    make_cfg,
    stage_for,
)


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
