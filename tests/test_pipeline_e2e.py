"""One goal through the real pipeline: fake search over HTTP, real downloads, S3, OpenCV dedup."""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from footyd.clients.blobs import S3BlobStore
from footyd.clients.football_parse import Fixture
from footyd.clients.store import Store
from footyd.clients.webhooks import WebhookClient
from footyd.config import Config
from footyd.pipeline import Pipeline
from footyd.procpool import ProcessPool
from footyd.runtime.wiring import open_video_pipeline
from footyd.sim.clips import ClipHost
from footyd.stages import rules
from footyd.stages.monitor_goals import GoalWriter
from footyd.stages.notify import NotifyStage
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


async def _goal(store: Store, goal_id: str = "g-wirtz", fixture_id: int = 1, *,
                state: str = "confirmed") -> None:
    await store.goals.insert_one({
        "_id": goal_id, "fixture_id": fixture_id, "league_id": 78, "kickoff": CLIP_T0,
        "team_id": 168, "team_name": "Bayer Leverkusen", "opponent_id": 157,
        "opponent_name": "Bayern Munich", "elapsed": 23, "extra": None, "minute": 23,
        "scorer_id": 1, "scorer_name": "Florian Wirtz", "assist_name": None,
        "detail": "Normal Goal", "score_home": 1, "score_away": 0, "state": state,
        "first_seen_at": CLIP_T0, "confirmed_at": CLIP_T0 if state != "pending" else None,
        "next_search_at": CLIP_T0,
        "search_attempt_ids": [],
    })


async def _pipeline(stack: AsyncExitStack, cfg: Config, store: Store, blobs: S3BlobStore,
                    clock: Any) -> Pipeline:
    """The video pipeline on one pool worker, scanned only when the test says so."""
    pool = ProcessPool(1)
    stack.callback(pool.shutdown)
    pipeline, _stages = await open_video_pipeline(
        stack, cfg, store=store, blobs=blobs, pool=pool, clock=clock, scan_interval_s=3600)
    return pipeline


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
        pipeline = await _pipeline(stack, cfg, store, s3_store, clock)

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
    # each kept clip's video and its poster (from the same decode), nothing else
    assert all(clips[n]["poster_key"] for n in kept)
    assert sorted(stored) == sorted(k for n in kept
                                    for k in (clips[n]["blob_key"], clips[n]["poster_key"]))
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
        pipeline = await _pipeline(stack, cfg, store, s3_store, clock)
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


def _fixture(fixture_id: int = 1) -> Fixture:
    return Fixture(id=fixture_id, kickoff=CLIP_T0, status_short="1H", status_long="First Half",
                   elapsed=23, league_id=78, league_name="Bundesliga", season=2026, home_id=168,
                   home_name="Bayer Leverkusen", away_id=157, away_name="Bayern Munich",
                   goals_home=1, goals_away=0, events=[], raw={})


def _seen(goal_id: str, *, confirm: bool) -> rules.SeenGoal:
    event = rules.GoalEvent(index=0, team_id=168, team_name="Bayer Leverkusen", elapsed=23,
                            extra=None, scorer_id=1, scorer_name="Florian Wirtz",
                            assist_name=None, detail="Normal Goal", score_home=1, score_away=0)
    return rules.SeenGoal(goal_id=goal_id, event=event, changes={}, seen_count=2,
                          confirm=confirm, reappeared=False)


async def _notify_events(store: Store, blobs: S3BlobStore, now: Any) -> list[str]:
    """The webhook events derived so far (a receiver is configured, never called)."""
    cfg = Config.model_validate({"notify": {"webhooks": [
        {"url": "http://127.0.0.1:9/hook", "name": "h"}]}})
    async with WebhookClient() as client:
        await NotifyStage(cfg, store, blobs, client).derive(now)
    return sorted([d["event"] async for d in store.notifications.find({})])


async def test_a_goal_is_searched_from_its_first_sighting_and_shown_only_once_confirmed(
    store: Store, s3_store: S3BlobStore, clip_host_factory: ClipHostFactory, tmp_path: Path
) -> None:
    host = await clip_host_factory("demo")
    clock = host.clock
    cfg = _cfg(host, tmp_path / "scratch", attempts=3)
    await _goal(store, state="pending")
    confirmed: list[str] = []

    async def on_confirmed(goal_id: str) -> bool:
        confirmed.append(goal_id)
        return True

    async with AsyncExitStack() as stack:
        pipeline = await _pipeline(stack, cfg, store, s3_store, clock)
        for _ in range(5):  # three attempts, then the spent schedule parks the goal
            clock.advance(100)
            await pipeline.scan_once()
            await pipeline.idle()
        goal = await store.goals.find_one({"_id": "g-wirtz"})
        assert goal is not None and goal["state"] == "pending"
        assert len(goal["search_attempt_ids"]) == 3 and goal["next_search_at"] is None
        kept = [c async for c in store.clips.find({"state": "kept"})]
        assert kept, "clips of a pending goal are downloaded and deduplicated"
        # nothing is announced while the goal is pending
        assert await _notify_events(store, s3_store, clock()) == []

        writer = GoalWriter(store, on_confirmed=on_confirmed, on_cancelled=on_confirmed)
        await writer.apply(_fixture(), [_seen("g-wirtz", confirm=True)], poll_id="p9",
                           now=clock(), order_base=0)
        assert confirmed == ["g-wirtz"]
        goal = await store.goals.find_one({"_id": "g-wirtz"})
        assert goal is not None and goal["state"] == "confirmed"
        assert goal["next_search_at"] == clock()  # the parked goal is woken to finish
        await pipeline.scan_once()
        await pipeline.idle()
    goal = await store.goals.find_one({"_id": "g-wirtz"})
    assert goal is not None and goal["state"] == "done" and goal["outcome"] == "clips_kept"
    assert len(goal["search_attempt_ids"]) == 3  # confirming costs no extra search
    events = await _notify_events(store, s3_store, clock())
    assert events.count("goal_confirmed") == 1 and events.count("clip_kept") >= 1
    occurred = [d["facts"]["occurred_at"] async for d in store.notifications.find(
        {"event": "clip_kept"})]
    assert occurred and all(t >= goal["confirmed_at"] for t in occurred)


async def test_a_goal_cancelled_before_confirmation_retracts_what_it_found(
    store: Store, s3_store: S3BlobStore, clip_host_factory: ClipHostFactory, tmp_path: Path
) -> None:
    host = await clip_host_factory("demo")
    clock = host.clock
    cfg = _cfg(host, tmp_path / "scratch", attempts=3)
    await _goal(store, state="pending")
    async with AsyncExitStack() as stack:
        pipeline = await _pipeline(stack, cfg, store, s3_store, clock)
        clock.advance(310)
        await pipeline.scan_once()
        await pipeline.idle()
        assert await s3_store.list_keys("")  # stored while pending

        async def retract(goal_id: str) -> bool:
            return await pipeline.sender("search")(goal_id)

        writer = GoalWriter(store, on_confirmed=retract, on_cancelled=retract)
        await writer.apply(_fixture(), [rules.MissingGoal("g-wirtz", missing_count=2, cancel=True)],
                           poll_id="p9", now=clock(), order_base=0)
        await pipeline.idle()
    goal = await store.goals.find_one({"_id": "g-wirtz"})
    assert goal is not None and goal["state"] == "cancelled" and goal["retracted_at"] is not None
    assert goal["previous_state"] == "pending"
    assert {c["state"] async for c in store.clips.find({})} <= {"retracted", "rejected", "failed"}
    assert await s3_store.list_keys("") == []
    assert await _notify_events(store, s3_store, clock()) == []  # a goal never announced is never retracted
