"""Search stage: a cancelled goal's clips are retracted; due order; unknown goals left alone."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from footyd import records
from footyd.clients.blobs import S3BlobStore
from footyd.clients.store import Store
from footyd.sim.clips import ClipHost, ManualClock
from footyd.sources.search_service import SearchServiceSource
from tests.plugins.clips import CLIP_T0
from tests.plugins.search import (
    FIXTURE_ID,
    CancellingSource,
    Downloads,
    goal,
    insert_goal,
    make_cfg,
    stage_for,
)


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
    stage = stage_for(make_cfg(before_confirm=False), store, s3_store, [fake], downloads, clock)
    await insert_goal(store, "g_pending", state="pending")
    await insert_goal(store, "g_done", state="done")
    assert await stage.due(clock(), 10) == []
    for goal_id in ("missing", "g_pending", "g_done"):
        await stage.handle(goal_id)
    assert host.searches == []
    assert (await goal(store, "g_pending"))["search_attempt_ids"] == []
    # searched from the first sighting (the default), a pending goal stays pending
    stage.apply_config(make_cfg())
    assert await stage.due(clock(), 10) == ["g_pending"]
    await stage.handle("g_pending")
    pending = await goal(store, "g_pending")
    assert pending["search_attempt_ids"] == ["a1"] and pending["state"] == "pending"
    assert len(host.searches) == 1
