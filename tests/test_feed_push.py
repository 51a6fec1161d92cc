"""Feeds push: a Reddit post reaches its goal (and download) when the listing is read, not at the
goal's next search attempt, and one listing read serves every goal."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

from footyd.clients.blobs import S3BlobStore
from footyd.clients.store import Store
from footyd.config import Config
from footyd.procpool import ProcessPool
from footyd.runtime.wiring import open_video_pipeline
from footyd.sim.clips import ClipScript
from footyd.sim.reddit import FakeReddit
from footyd.stages.search import FEED_ATTEMPT, SearchStage
from tests.plugins.clips import ClipHostFactory
from tests.test_pipeline_e2e import _goal

SCRIPT = ClipScript.model_validate({"goals": [{
    "key": "wirtz", "match": ["Wirtz", "Leverkusen"], "at_s": 0, "candidates": []}]})


async def test_feed_post_is_pushed_between_attempts_and_kept(
    store: Store, s3_store: S3BlobStore, clip_host_factory: ClipHostFactory, tmp_path: Path
) -> None:
    host = await clip_host_factory(SCRIPT)
    reddit = FakeReddit()
    await reddit.start()
    cfg = Config.model_validate({
        "search": {"sources": ["reddit"], "attempts": 3, "interval_s": 600},
        "sources": {"reddit": {**reddit.source_config(), "poll_s": 0.1}},
        "download": {"scratch_dir": str(tmp_path / "s"), "max_size_mb": 20, "timeout_s": 20,
                     "socket_timeout_s": 5, "allow_private_addresses": True},
        "dedup": {"workers": 1},
    })
    await _goal(store)
    await _goal(store, goal_id="g-other", fixture_id=2)  # another searchable goal, other teams
    await store.goals.update_one({"_id": "g-other"}, {"$set": {
        "team_name": "Arsenal", "opponent_name": "Chelsea", "scorer_name": "Bukayo Saka"}})
    try:
        async with AsyncExitStack() as stack:
            pool = ProcessPool(1)
            stack.callback(pool.shutdown)
            pipeline, stages = await open_video_pipeline(
                stack, cfg, store=store, blobs=s3_store, pool=pool, clock=host.clock,
                scan_interval_s=3600)
            search = stages.search
            assert search.feed_interval_s == 0.1
            off = cfg.model_copy(update={"search": cfg.search.model_copy(update={"feeds_push": False})})
            assert SearchStage(off, store, s3_store, search.sources,
                               to_download=pipeline.sender("download")).feed_interval_s is None
            await pipeline.scan_once()  # attempt 1 of each goal: nothing posted yet
            await pipeline.idle()
            assert await store.clips.count_documents({}) == 0
            attempts = [len(g["search_attempt_ids"]) async for g in store.goals.find({})]
            assert attempts == [1, 1]

            reddit.add_post("Bayer Leverkusen [1] - 0 Bayern Munich - Florian Wirtz 23'",
                            host.media_url("a_720p"))
            reads_before = reddit.listing_requests
            # the next attempt is 600 s away; the feed pass alone finds the post
            assert await search.push_feeds() == 1
            assert reddit.listing_requests == reads_before + 1  # one read for both goals
            assert await search.push_feeds() == 0  # already seen: nothing pushed twice
            await pipeline.idle()
    finally:
        await reddit.stop()
    clip = await store.clips.find_one({})
    assert clip is not None and clip["goal_id"] == "g-wirtz" and clip["source"] == "reddit"
    assert clip["search_attempt"] == FEED_ATTEMPT
    assert clip["state"] == "kept", clip
    goals = {g["_id"]: g async for g in store.goals.find({})}
    assert len(goals["g-wirtz"]["search_attempt_ids"]) == 1  # no attempt was spent on it


async def test_feed_push_to_a_goal_cancelled_meanwhile_is_retracted(
    store: Store, s3_store: S3BlobStore, clip_host_factory: ClipHostFactory, tmp_path: Path
) -> None:
    host = await clip_host_factory(SCRIPT)
    reddit = FakeReddit()
    await reddit.start()
    cfg = Config.model_validate({
        "search": {"sources": ["reddit"]},
        "sources": {"reddit": {**reddit.source_config(), "poll_s": 0.1}},
        "download": {"scratch_dir": str(tmp_path / "s"), "allow_private_addresses": True},
    })
    await _goal(store)
    handed: list[str] = []

    async def to_download(clip_id: str) -> bool:
        handed.append(clip_id)
        return True

    try:
        async with AsyncExitStack() as stack:
            from footyd.sources import build_sources

            sources = build_sources(cfg)
            for source in sources:
                stack.push_async_callback(source.aclose)
            search = SearchStage(cfg, store, s3_store, sources, to_download=to_download,
                                 clock=host.clock)
            reddit.add_post("Bayer Leverkusen [1] - 0 Bayern Munich - Florian Wirtz 23'",
                            host.media_url("a_720p"))
            goal = await store.goals.find_one({"_id": "g-wirtz"})
            assert goal is not None
            # VAR cancels the goal after the feed matched it but before the hand-off
            await store.goals.update_one({"_id": "g-wirtz"}, {"$set": {"state": "cancelled"}})
            assert await search._push_goal(goal, sources) == 0
    finally:
        await reddit.stop()
    clip = await store.clips.find_one({})
    assert clip is not None and clip["state"] == "retracted" and handed == []
