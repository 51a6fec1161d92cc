"""Fake Reddit -> yt-dlp -> S3 -> dedup against the `fake` source's clips of the same goal."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from footyd.clients.blobs import S3BlobStore
from footyd.clients.store import Store
from footyd.config import Config
from footyd.procpool import ProcessPool
from footyd.runtime.wiring import open_video_pipeline
from footyd.sim.clips import ClipHost, ClipScript
from footyd.sim.reddit import FakeReddit
from tests.plugins.clips import ClipHostFactory
from tests.test_pipeline_e2e import _goal

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` skips it

SCRIPT = ClipScript.model_validate({"goals": [{
    "key": "wirtz", "match": ["Wirtz", "Leverkusen"], "at_s": 0,
    "candidates": [{"clip": "a_low", "delay_s": 30, "text": "WIRTZ!!! Leverkusen lead"}],
}]})


def _cfg(host: ClipHost, reddit: dict[str, Any], scratch: Path) -> Config:
    return Config.model_validate({
        "search": {"sources": ["fake", "reddit"], "attempts": 3, "interval_s": 60, "schedule": []},
        "sources": {"fake": {"base_url": host.base_url}, "reddit": reddit},
        "download": {"scratch_dir": str(scratch), "max_size_mb": 20, "timeout_s": 20,
                     "socket_timeout_s": 5, "max_attempts": 2, "retry_backoff_s": 60,
                     "allow_private_addresses": True},  # the clip host is loopback
        "dedup": {"workers": 1},
    })


async def _run(store: Store, s3: S3BlobStore, host: ClipHost, cfg: Config, scans: int) -> None:
    async with AsyncExitStack() as stack:
        pool = ProcessPool(1)
        stack.callback(pool.shutdown)
        pipeline, _stages = await open_video_pipeline(
            stack, cfg, store=store, blobs=s3, pool=pool, clock=host.clock, scan_interval_s=3600)
        for _ in range(scans):
            host.clock.advance(60)
            await pipeline.scan_once()
            await pipeline.idle()


async def test_reddit_clip_is_stored_and_deduplicated_with_another_sources(
    store: Store, s3_store: S3BlobStore, clip_host_factory: ClipHostFactory, tmp_path: Path
) -> None:
    host = await clip_host_factory(SCRIPT)
    reddit = FakeReddit()
    await reddit.start()
    try:
        title = "Bayer Leverkusen [1] - 0 Bayern Munich - Florian Wirtz 23'"
        hd = reddit.add_post(title, host.media_url("a_720p"))
        reddit.add_post("Bayer Leverkusen 1 - [1] Bayern Munich - Harry Kane 23'",
                        host.media_url("b_540p"))  # the other side's goal: not this one
        await _goal(store)
        await _run(store, s3_store, host, _cfg(host, reddit.source_config(), tmp_path / "s"), 2)
    finally:
        await reddit.stop()
    clips = {c["source"]: c async for c in store.clips.find({})}
    assert set(clips) == {"fake", "reddit"}
    ours, theirs = clips["reddit"], clips["fake"]
    assert ours["post_url"] == host.media_url("a_720p") and ours["media_url"] is None
    assert ours["permalink"].startswith(f"https://www.reddit.com/r/soccer/comments/{hd}/bayer_")
    assert ours["text"] == title
    # the HD Reddit copy wins; the other source's low copy is its duplicate
    assert ours["state"] == "kept", ours
    assert theirs["state"] == "duplicate" and theirs["duplicate_of"] == ours["_id"], theirs
    # the goal is still searching: the duplicate holds its object until the goal is over
    assert theirs["blob_held"] is True
    assert sorted(await s3_store.list_keys("")) == sorted(
        k for c in (ours, theirs) for k in (c["blob_key"], c["poster_key"]))
    assert host.hits["b_540p"] == 0
    assert reddit.listing_requests >= 1


async def test_unreachable_reddit_leaves_the_other_sources_working(
    store: Store, s3_store: S3BlobStore, clip_host_factory: ClipHostFactory, tmp_path: Path
) -> None:
    host = await clip_host_factory(SCRIPT)
    down = {"client_id": "a", "client_secret": "b", "timeout_s": 2,
            "auth_url": "http://127.0.0.1:9/api/v1/access_token",
            "api_base_url": "http://127.0.0.1:9"}
    await _goal(store)
    await _run(store, s3_store, host, _cfg(host, down, tmp_path / "s"), 1)
    goal = await store.goals.find_one({"_id": "g-wirtz"})
    assert goal is not None
    entry = goal["search_log"][0]
    assert entry["sources"]["reddit"]["outcome"] == "error"
    assert entry["sources"]["fake"]["outcome"] == "ok"
    assert [c["state"] async for c in store.clips.find({"source": "fake"})] == ["kept"]
