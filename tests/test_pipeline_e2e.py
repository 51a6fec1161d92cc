"""One goal through the real pipeline: fake search over HTTP, real downloads, S3, OpenCV dedup."""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from footyd.clients.blobs import S3BlobStore
from footyd.clients.store import Store
from footyd.config import Config
from footyd.procpool import ProcessPool
from footyd.runtime.wiring import open_video_pipeline
from footyd.sim.clips import ClipHost
from tests.plugins.clips import CLIP_T0, ClipHostFactory

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` skips it

SCENE_A = {"a_720p", "a_low", "a_480p", "a_trim1", "a_logo"}


def _cfg(host: ClipHost, scratch: Path, **search: Any) -> Config:
    return Config.model_validate({
        "search": {"sources": ["fake"], "attempts": 10, "interval_s": 60, "schedule": [],
                   "window_margin_s": 120,
                   **search},
        "sources": {"fake": {"base_url": host.base_url}},
        # the stalled mirror is bounded by socket_timeout_s; timeout_s only needs to outlast a
        # yt-dlp start on a loaded machine
        "download": {"scratch_dir": str(scratch), "max_size_mb": 20, "timeout_s": 30,
                     "socket_timeout_s": 1, "max_attempts": 2, "retry_backoff_s": 60,
                     "allow_private_addresses": True},  # the clip host is loopback
        "dedup": {"workers": 1},
    })


async def _goal(store: Store, goal_id: str = "g-wirtz", fixture_id: int = 1) -> None:
    await store.goals.insert_one({
        "_id": goal_id, "fixture_id": fixture_id, "league_id": 78, "kickoff": CLIP_T0,
        "team_id": 168, "team_name": "Bayer Leverkusen", "opponent_id": 157,
        "opponent_name": "Bayern Munich", "elapsed": 23, "extra": None, "minute": 23,
        "scorer_id": 1, "scorer_name": "Florian Wirtz", "assist_name": None,
        "detail": "Normal Goal", "score_home": 1, "score_away": 0, "state": "confirmed",
        "first_seen_at": CLIP_T0, "confirmed_at": CLIP_T0, "next_search_at": CLIP_T0,
        "search_attempt_ids": [],
    })


def _name(clip: dict[str, Any]) -> str:
    url = clip["media_url"] or clip["post_url"]
    return str(url).split("?")[0].rsplit("/", 1)[-1].removesuffix(".mp4")


async def _clips(store: Store) -> dict[str, dict[str, Any]]:
    return {_name(c): c async for c in store.clips.find({})}


async def test_one_goal_realistic_candidate_mix(
    store: Store, s3_store: S3BlobStore, clip_host_factory: ClipHostFactory, tmp_path: Path
) -> None:
    host = await clip_host_factory("demo")
    clock = host.clock
    assert callable(clock)
    cfg = _cfg(host, tmp_path / "scratch")
    await _goal(store)
    async with AsyncExitStack() as stack:
        pool = ProcessPool(1)
        stack.callback(pool.shutdown)
        pipeline, _stages = await open_video_pipeline(
            stack, cfg, store=store, blobs=s3_store, pool=pool, clock=clock, scan_interval_s=3600)

        kept_before_hd: set[str] = set()
        for minute in range(16):
            await pipeline.scan_once()
            await pipeline.idle()
            if minute == 6:  # a_720p is revealed at 7 minutes: the best copy so far is kept
                kept_before_hd = {n for n, c in (await _clips(store)).items() if c["state"] == "kept"}
            clock.advance(60)
        goal = await store.goals.find_one({"_id": "g-wirtz"})
        assert goal is not None and goal["state"] == "done"
        await pipeline.scan_once()  # the goal is over: dedup releases its duplicates' objects
        await pipeline.idle()

    clips = await _clips(store)
    states = {name: c["state"] for name, c in clips.items()}
    assert goal["state"] == "done" and goal["outcome"] == "clips_kept", (goal, states)
    kept = {n for n, s in states.items() if s == "kept"}
    assert kept == {"a_720p", "b_540p"}
    # the best A copy before the HD one arrived was kept, then replaced
    assert len(kept_before_hd & SCENE_A) == 1 and "a_720p" not in kept_before_hd
    a_best = clips["a_720p"]["_id"]
    for name in SCENE_A - {"a_720p"}:
        assert states[name] == "duplicate" and clips[name]["duplicate_of"] == a_best, name
    assert states["portrait"] == "rejected" and "aspect" in clips["portrait"]["reason"]
    assert states["garbage"] == "rejected" and "invalid_media" in clips["garbage"]["reason"]
    assert states["oversized"] == "rejected" and "too_large" in clips["oversized"]["reason"]
    assert states["missing"] == "failed" and "not_found" in clips["missing"]["reason"]
    assert states["slow"] == "failed" and "attempts spent" in clips["slow"]["reason"]
    # exactly the kept clips' objects remain in S3; no scratch files
    stored = await s3_store.list_keys("")
    assert sorted(stored) == sorted(clips[n]["blob_key"] for n in kept)
    assert list((tmp_path / "scratch").rglob("*.mp4")) == []
    assert len(goal["search_attempt_ids"]) == 10


async def test_cancelled_goal_mid_pipeline_is_retracted(
    store: Store, s3_store: S3BlobStore, clip_host_factory: ClipHostFactory, tmp_path: Path
) -> None:
    host = await clip_host_factory("demo")
    clock = host.clock
    cfg = _cfg(host, tmp_path / "scratch", attempts=3)
    await _goal(store)
    async with AsyncExitStack() as stack:
        pool = ProcessPool(1)
        stack.callback(pool.shutdown)
        pipeline, _stages = await open_video_pipeline(
            stack, cfg, store=store, blobs=s3_store, pool=pool, clock=clock, scan_interval_s=3600)
        clock.advance(310)  # several clips revealed
        await pipeline.scan_once()
        await pipeline.idle()
        assert await s3_store.list_keys("")  # something was stored
        await store.goals.update_one({"_id": "g-wirtz"}, {"$set": {
            "state": "cancelled", "cancelled_at": clock() + timedelta(seconds=1)}})
        clock.advance(60)
        await pipeline.scan_once()
        await pipeline.idle()
    goal = await store.goals.find_one({"_id": "g-wirtz"})
    assert goal is not None and goal["retracted_at"] is not None
    assert {c["state"] async for c in store.clips.find({})} <= {"retracted", "rejected", "failed"}
    assert await s3_store.list_keys("") == []
    assert len(goal["search_attempt_ids"]) == 1  # no search after the cancellation
