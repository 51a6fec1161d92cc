"""The default search schedule: a copy posted 40 minutes after the goal is still found, for no
more requests per goal than the flat 10 x 60 s cadence it replaced (which never sees it)."""

from __future__ import annotations

from typing import Any

import pytest

from footyd.clients.blobs import S3BlobStore
from footyd.clients.store import Store
from footyd.config import Config, FakeSourceConfig
from footyd.sim.clips import ClipScript, ManualClock
from footyd.sources.fake import fake_source
from tests.plugins.clips import CLIP_T0, ClipHostFactory
from tests.plugins.search import Downloads, insert_goal, stage_for

LATE_S = 40 * 60
SCRIPT = ClipScript.model_validate({"goals": [{
    "key": "wirtz", "match": ["Wirtz", "Leverkusen"], "at_s": 0, "candidates": [
        {"clip": "a_low", "delay_s": 90, "id": "early"},
        {"clip": "a_720p", "delay_s": LATE_S, "id": "hd-mirror"}]}]})


@pytest.mark.parametrize(("search", "finds_late"), [
    ({}, True),  # the default schedule
    ({"schedule": [], "attempts": 10, "interval_s": 60}, False),  # the flat cadence before it
])
async def test_a_copy_posted_40_minutes_later_is_found_for_no_more_requests(
        store: Store, s3_store: S3BlobStore, clip_host_factory: ClipHostFactory,
        downloads: Downloads, search: dict[str, Any], finds_late: bool) -> None:
    clock = ManualClock(CLIP_T0)
    host = await clip_host_factory(SCRIPT, clock=clock)
    source = fake_source(FakeSourceConfig(base_url=host.base_url))
    cfg = Config.model_validate({"search": {"sources": ["fake"], **search}})
    stage = stage_for(cfg, store, s3_store, [source], downloads, clock)
    await insert_goal(store, first_seen_at=CLIP_T0)
    try:
        for _ in range(0, 3600, 5):  # an hour of due scans, 5 s apart (search.due_scan_s)
            for goal_id in await stage.due(clock(), 10):
                await stage.handle(goal_id)
            clock.advance(5)
    finally:
        await source.aclose()
    urls = {c["media_url"] async for c in store.clips.find({})}
    assert host.media_url("a_low") in urls
    assert (host.media_url("a_720p") in urls) is finds_late
    goal = await store.goals.find_one({"_id": "g1"})
    assert goal is not None
    assert len(host.searches) == len(goal["search_attempt_ids"]) <= 10  # requests for this goal
