"""Dedup stage against the MongoDB-wire server, S3 (moto), real OpenCV clips and a process pool."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from footyd.clients.blobs import S3BlobStore
from footyd.clients.store import Store
from footyd.config import Config
from footyd.media import Fingerprint, VideoInfo, fingerprint, probe
from footyd.procpool import POOL_REBUILDS, ProcessPool
from footyd.records import clip_key
from footyd.sim.clipgen import write_clip, write_garbage
from footyd.stages.dedup import CLIPS_DEDUPLICATED, DedupStage
from footyd.stages.dedup_rules import ClipQuality, loss_reason, pick_best
from tests.plugins.blobs import videos_of

# its module-scoped clips are built once: one worker runs the file
pytestmark = pytest.mark.xdist_group("test_dedup_stage")

T0 = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
FIXTURE_ID = 7
BACKOFF_S = 60.0


class ManualClock:
    """A clock the test moves."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class CountingBlobs:
    """The real S3 store, recording deletes; `crash_after_deletes` simulates a SIGKILL there."""

    class Crash(BaseException):
        """Stands for the process dying: nothing after it runs, no handler catches it."""

    def __init__(self, inner: S3BlobStore, crash_after_deletes: int | None = None) -> None:
        self.inner = inner
        self.kind, self.bucket = inner.kind, inner.bucket
        self.deleted: list[str] = []
        self.fetched: list[str] = []
        self.crash_after_deletes = crash_after_deletes

    async def put_file(self, key: str, path: Path, *, content_type: str,
                       metadata: dict[str, str]) -> None:
        await self.inner.put_file(key, path, content_type=content_type, metadata=metadata)

    async def get_file(self, key: str, path: Path) -> None:
        await self.inner.get_file(key, path)
        self.fetched.append(key)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)
        if key.endswith(".jpg"):
            return  # a poster goes with its video: `deleted` lists the videos
        self.deleted.append(key)
        if self.crash_after_deletes is not None and len(self.deleted) >= self.crash_after_deletes:
            raise self.Crash

    async def exists(self, key: str) -> bool:
        return await self.inner.exists(key)

    async def list_keys(self, prefix: str) -> list[str]:
        return await self.inner.list_keys(prefix)

    async def ping(self) -> bool:
        return await self.inner.ping()

    def key_for(self, *parts: str) -> str:
        return self.inner.key_for(*parts)


@dataclass
class World:
    """A store, a bucket, a stage and helpers that write what download would have written."""

    store: Store
    blobs: CountingBlobs
    stage: DedupStage
    clock: ManualClock
    cfg: Config
    stored: int = 0
    ids: dict[str, str] = field(default_factory=dict)

    async def goal(self, goal_id: str, **extra: Any) -> str:
        await self.store.goals.insert_one({"_id": goal_id, "fixture_id": FIXTURE_ID,
                                           "state": "searching", "first_seen_at": T0, **extra})
        return goal_id

    async def add(self, goal_id: str, name: str, path: Path, *, body: Path | None = None,
                  info: VideoInfo | None = None, fp: Fingerprint | None = None) -> str:
        """A downloaded clip described by `path` (probe) whose stored bytes are `body` or path;
        with `fp`, stored with that fingerprint as the download stage does."""
        info = info or probe(str(path))
        data = (body or path).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        key = self.blobs.key_for(clip_key(FIXTURE_ID, goal_id, sha))
        await self.blobs.put_file(key, body or path, content_type="video/mp4", metadata={})
        self.stored += 1
        clip_id = f"{goal_id}-{name}"
        await self.store.clips.insert_one({
            "_id": clip_id, "goal_id": goal_id, "fixture_id": FIXTURE_ID, "source": "fake",
            "source_url": f"https://x.test/{name}", "state": "downloaded", "attempt_ids": [],
            "sha256": sha, "size_bytes": len(data), "width": info.width, "height": info.height,
            "duration_s": info.duration_s, "fps": info.fps,
            "bitrate_bps": len(data) * 8 / info.duration_s, "codec": info.codec,
            "blob_key": key, "stored_at": T0 + timedelta(seconds=self.stored),
            "created_at": T0, **({"fingerprint": fp.to_doc()} if fp else {})})
        self.ids[clip_id] = name
        return clip_id

    async def clips(self, goal_id: str) -> dict[str, dict[str, Any]]:
        return {self.ids[d["_id"]]: d
                async for d in self.store.clips.find({"goal_id": goal_id})}

    async def states(self, goal_id: str) -> dict[str, tuple[str, str | None]]:
        return {name: (d["state"], self.ids.get(d.get("duplicate_of", ""))
                       if d["state"] == "duplicate" else None)
                for name, d in (await self.clips(goal_id)).items()}

    async def objects(self) -> set[str]:
        """The stored videos (a poster is never stored without its video)."""
        return set(videos_of(await self.blobs.list_keys("")))

    async def finish(self, goal_id: str) -> None:
        """The goal is over (search done): dedup releases the blobs its duplicates held."""
        await self.store.goals.update_one({"_id": goal_id}, {"$set": {"state": "done"}})
        assert goal_id in await self.stage.due(self.clock(), 100)
        await self.stage.handle(goal_id)
        assert goal_id not in await self.stage.due(self.clock(), 100)

    async def assert_consistent(self, goal_id: str) -> None:
        """Every stored object belongs to a clip holding it (kept, downloaded, or a duplicate
        holding its blob while the goal lasts) and every kept clip has one."""
        docs = (await self.clips(goal_id)).values()
        holding = {d["blob_key"] for d in docs if d["state"] in ("kept", "downloaded")
                   or (d["state"] == "duplicate" and d.get("blob_held"))}
        kept = {d["blob_key"] for d in docs if d["state"] == "kept"}
        prefix = self.blobs.key_for(str(FIXTURE_ID), goal_id) + "/"
        objects = set(videos_of(await self.blobs.list_keys(prefix)))
        assert objects == holding
        assert kept <= objects


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPool]:
    p = ProcessPool(1)
    yield p
    p.shutdown()


@pytest.fixture(scope="module")
def ladder(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One scene at three lengths/sizes: w beats l (resolution), n is >15% longer than w only."""
    root = tmp_path_factory.mktemp("ladder")
    return {
        "w": write_clip(root / "w.mp4", seed=70, scene=7, seconds=4.0, width=854, height=480),
        "l": write_clip(root / "l.mp4", seed=71, scene=7, seconds=4.4, width=640, height=360),
        "n": write_clip(root / "n.mp4", seed=72, scene=7, seconds=5.0, width=480, height=270),
    }


def make_cfg(tmp_path: Path) -> Config:
    return Config.model_validate({"download": {"scratch_dir": str(tmp_path / "scratch")},
                                  "dedup": {"retry_backoff_s": BACKOFF_S, "timeout_s": 60}})


def new_world(store: Store, s3_store: S3BlobStore, pool: ProcessPool, tmp_path: Path) -> World:
    """A World on the default test config, its clock 10 minutes after T0."""
    cfg = make_cfg(tmp_path)
    clock = ManualClock(T0 + timedelta(minutes=10))
    blobs = CountingBlobs(s3_store)
    return World(store, blobs, DedupStage(cfg, store, blobs, pool, clock=clock), clock, cfg)


@pytest.fixture
def world(store: Store, s3_store: S3BlobStore, pool: ProcessPool, tmp_path: Path) -> World:
    return new_world(store, s3_store, pool, tmp_path)


def scratch_empty(w: World) -> bool:
    root = w.cfg.download.scratch_dir / "dedup"
    return not root.exists() or not any(root.iterdir())


# ---- the pure best-of rule ------------------------------------------------------------------

def q(cid: str, dur: float, w: int, h: int, br: float = 1e6, at: int = 0,
      kept: bool = False) -> ClipQuality:
    return ClipQuality(cid, dur, w, h, br, T0 + timedelta(seconds=at), kept)


def test_best_of_close_durations_prefers_resolution_then_bitrate() -> None:
    hd, sd = q("hd", 9.0, 1280, 720, at=2), q("sd", 10.0, 640, 360, at=1)
    assert pick_best([sd, hd]) == hd  # 10% apart: resolution wins over the longer one
    hi, lo = q("hi", 10.0, 640, 360, br=2e6, at=2), q("lo", 10.0, 640, 360, br=1e6, at=1)
    assert pick_best([lo, hi]) == hi
    assert loss_reason(hd, sd) == "lower resolution" and loss_reason(hi, lo) == "lower bitrate"


def test_best_of_far_durations_prefers_the_longer() -> None:
    long_sd, short_hd = q("long", 12.0, 640, 360), q("short", 10.0, 1920, 1080)
    assert pick_best([short_hd, long_sd]) == long_sd  # 10/12 = 0.83: more than 15% apart
    assert loss_reason(long_sd, short_hd) == "shorter"
    # exactly at the 15% edge both still compete on resolution
    assert pick_best([q("a", 20.0, 640, 360), q("b", 17.0, 1280, 720)]).clip_id == "b"


def test_best_of_ties_keep_the_kept_then_the_earlier_clip() -> None:
    first, second = q("x2", 10.0, 640, 360, at=1), q("x1", 10.0, 640, 360, at=2)
    assert pick_best([second, first]) == first
    kept_later = q("k", 10.0, 640, 360, at=5, kept=True)
    assert pick_best([first, kept_later]) == kept_later  # a kept clip is not replaced by an equal
    assert loss_reason(kept_later, first) == "equal quality, kept the earlier copy"
    with pytest.raises(ValueError):
        pick_best([])


def test_best_of_is_a_total_order_even_where_pairwise_would_cycle() -> None:
    # pairwise: a<b (res), b<c (res), c beats a (longer): the group still has one answer
    a, b, c = q("a", 10.0, 640, 360), q("b", 11.0, 1280, 720), q("c", 12.0, 480, 270)
    winners = {pick_best(order).clip_id for order in ([a, b, c], [c, b, a], [b, a, c])}
    assert winners == {"b"}


# ---- the stage -------------------------------------------------------------------------------

async def test_variants_collapse_to_best_copy_and_losers_are_deleted_when_the_goal_ends(
        world: World, clip_dir: Path) -> None:
    g = await world.goal("g1")
    for name in ("a_low", "a_480p", "a_trim1", "a_720p", "b_540p"):
        await world.add(g, name, clip_dir / f"{name}.mp4")
    before = await world.clips(g)
    assert await world.stage.due(world.clock(), 10) == [g]

    await world.stage.handle(g)

    assert await world.states(g) == {
        "a_720p": ("kept", None), "b_540p": ("kept", None),
        "a_low": ("duplicate", "a_720p"), "a_480p": ("duplicate", "a_720p"),
        "a_trim1": ("duplicate", "a_720p")}
    after = await world.clips(g)
    # duplicates hold their blobs while the goal can still regroup
    assert world.blobs.deleted == [] and await world.objects() == {
        d["blob_key"] for d in before.values()}
    assert all(after[n]["blob_held"] for n in ("a_low", "a_480p", "a_trim1"))
    assert "offset +1.0s" in after["a_trim1"]["reason"] and "shorter" in after["a_trim1"]["reason"]
    evidence = after["a_trim1"]["dedup_evidence"]
    assert evidence["kept"] == "g1-a_720p" and evidence["offset_s"] == pytest.approx(1.0, abs=0.21)
    assert evidence["rule"] == "kept_copies_match" and evidence["matched_s"] >= 2.0
    assert 0 <= evidence["mean_distance"] <= world.cfg.dedup.max_hamming
    assert "lower resolution" in after["a_480p"]["reason"]
    assert all(d["fingerprint"]["sample_fps"] == 5.0 for d in after.values())
    assert after["a_720p"]["kept_at"] == world.clock()
    goal = await world.store.goals.find_one({"_id": g})
    assert goal is not None and "dedup_next_at" not in goal and goal["deduped_at"] == world.clock()
    assert await world.stage.due(world.clock(), 10) == []
    assert scratch_empty(world)

    await world.finish(g)
    assert await world.objects() == {before["a_720p"]["blob_key"], before["b_540p"]["blob_key"]}
    assert sorted(world.blobs.deleted) == sorted(before[n]["blob_key"]
                                                 for n in ("a_low", "a_480p", "a_trim1"))
    assert not any("blob_held" in d for d in (await world.clips(g)).values())
    await world.assert_consistent(g)


async def test_better_copy_arriving_later_replaces_the_kept_one(world: World,
                                                                clip_dir: Path) -> None:
    g = await world.goal("g1")
    await world.add(g, "a_480p", clip_dir / "a_480p.mp4")
    await world.stage.handle(g)
    assert await world.states(g) == {"a_480p": ("kept", None)}

    await world.add(g, "a_720p", clip_dir / "a_720p.mp4")
    old_key = (await world.clips(g))["a_480p"]["blob_key"]
    await world.stage.handle(g)

    assert await world.states(g) == {"a_720p": ("kept", None), "a_480p": ("duplicate", "a_720p")}
    assert world.blobs.deleted == [] and await world.blobs.exists(old_key)
    await world.assert_consistent(g)
    await world.finish(g)
    assert world.blobs.deleted == [old_key] and not await world.blobs.exists(old_key)
    await world.assert_consistent(g)


async def test_goals_of_one_fixture_never_dedup_against_each_other(world: World,
                                                                   clip_dir: Path) -> None:
    g1, g2 = await world.goal("g1"), await world.goal("g2")
    await world.add(g1, "a_720p", clip_dir / "a_720p.mp4")
    await world.add(g1, "b_540p", clip_dir / "b_540p.mp4")
    await world.add(g2, "a_logo", clip_dir / "a_logo.mp4")  # same scene as g1's a_720p
    await world.add(g2, "b_540p", clip_dir / "b_540p.mp4")  # same bytes as g1's b_540p
    await world.stage.handle(g1)
    await world.stage.handle(g2)
    # same broadcast overlay on a_logo and b_540p, same clip across goals: all four kept
    assert await world.states(g1) == {"a_720p": ("kept", None), "b_540p": ("kept", None)}
    assert await world.states(g2) == {"a_logo": ("kept", None), "b_540p": ("kept", None)}
    assert world.blobs.deleted == []


async def test_corrupt_stored_blob_fails_closed_then_recovers(world: World, clip_dir: Path,
                                                             tmp_path: Path) -> None:
    g = await world.goal("g1")
    for name in ("a_720p", "a_low", "b_540p"):
        await world.add(g, name, clip_dir / f"{name}.mp4")
    garbage = write_garbage(tmp_path / "garbage.mp4", 200_000, seed=3)
    await world.add(g, "a_480p", clip_dir / "a_480p.mp4", body=garbage)
    objects = await world.objects()
    rebuilds = POOL_REBUILDS._value.get()
    now = world.clock()

    await world.stage.handle(g)

    assert set((await world.states(g)).values()) == {("downloaded", None)}
    assert await world.objects() == objects and world.blobs.deleted == []
    goal = await world.store.goals.find_one({"_id": g})
    assert goal is not None and goal["dedup_next_at"] == now + timedelta(seconds=BACKOFF_S)
    assert "invalid_media" in goal["dedup_error"]
    assert POOL_REBUILDS._value.get() == rebuilds  # bad media is an answer, not a dead worker
    assert scratch_empty(world)
    # not due (nor handled) before the backoff ends
    assert await world.stage.due(now, 10) == []
    await world.stage.handle(g)
    assert set((await world.states(g)).values()) == {("downloaded", None)}

    bad = (await world.clips(g))["a_480p"]
    await world.blobs.inner.put_file(bad["blob_key"], clip_dir / "a_480p.mp4",
                                     content_type="video/mp4", metadata={})
    world.clock.now = now + timedelta(seconds=BACKOFF_S)
    assert await world.stage.due(world.clock(), 10) == [g]
    await world.stage.handle(g)

    assert await world.states(g) == {
        "a_720p": ("kept", None), "b_540p": ("kept", None),
        "a_low": ("duplicate", "a_720p"), "a_480p": ("duplicate", "a_720p")}
    goal = await world.store.goals.find_one({"_id": g})
    assert goal is not None and "dedup_next_at" not in goal and "dedup_error" not in goal
    await world.assert_consistent(g)


async def test_missing_blob_fails_only_that_clip(world: World, clip_dir: Path) -> None:
    g = await world.goal("g1")
    await world.add(g, "a_720p", clip_dir / "a_720p.mp4")
    await world.add(g, "a_low", clip_dir / "a_low.mp4")
    lost = await world.add(g, "a_480p", clip_dir / "a_480p.mp4")
    lost_doc = (await world.clips(g))["a_480p"]
    await world.blobs.inner.delete(lost_doc["blob_key"])

    await world.stage.handle(g)

    assert await world.states(g) == {"a_720p": ("kept", None), "a_low": ("duplicate", "a_720p"),
                                     "a_480p": ("failed", None)}
    failed = await world.store.clips.find_one({"_id": lost})
    assert failed is not None and failed["reason"] == "blob missing"
    await world.assert_consistent(g)


async def test_handle_twice_is_idempotent(world: World, clip_dir: Path) -> None:
    g = await world.goal("g1")
    for name in ("a_720p", "a_low", "b_540p"):
        await world.add(g, name, clip_dir / f"{name}.mp4")
    await world.stage.handle(g)
    first, objects, deletes = await world.clips(g), await world.objects(), list(world.blobs.deleted)
    dups = CLIPS_DEDUPLICATED.labels("duplicate")._value.get()

    await world.stage.handle(g)

    assert await world.clips(g) == first
    assert await world.objects() == objects and world.blobs.deleted == deletes
    assert CLIPS_DEDUPLICATED.labels("duplicate")._value.get() == dups


async def marked_by_an_older_footyd(store: Store, s3_store: S3BlobStore, pool: ProcessPool,
                                    ladder: dict[str, Path], tmp_path: Path) -> World:
    """Goal g1 as a footyd that deleted losers at once left it when killed mid-drop: w kept,
    l marked `dropping_at` with its blob already deleted, still "downloaded"."""
    cfg = make_cfg(tmp_path)
    clock = ManualClock(T0 + timedelta(minutes=10))
    blobs = CountingBlobs(s3_store)
    w = World(store, blobs, DedupStage(cfg, store, blobs, pool, clock=clock), clock, cfg)
    g = await w.goal("g1")
    for name in ("w", "l"):  # that footyd stored fingerprints before any state change
        await w.add(g, name, ladder[name],
                    fp=fingerprint(str(ladder[name]), sample_fps=cfg.dedup.reference_fps))
    await store.clips.update_one({"_id": "g1-w"}, {"$set": {"state": "kept", "kept_at": T0}})
    await store.clips.update_one({"_id": "g1-l"}, {"$set": {"dropping_at": T0}})
    await s3_store.delete((await w.clips(g))["l"]["blob_key"])
    return w


async def test_a_loser_marked_mid_delete_never_wins_and_holds_nothing(
        store: Store, s3_store: S3BlobStore, pool: ProcessPool, ladder: dict[str, Path],
        tmp_path: Path) -> None:
    w = await marked_by_an_older_footyd(store, s3_store, pool, ladder, tmp_path)
    # a longer copy arrives: by the rule alone l (within 15% of it, sharper) would now win
    await w.add("g1", "n", ladder["n"])
    assert pick_best([ClipQuality.from_doc(d) for d in (await w.clips("g1")).values()]).clip_id \
        == "g1-l"
    await w.stage.handle("g1")

    assert await w.states("g1") == {"n": ("kept", None), "w": ("duplicate", "n"),
                                    "l": ("duplicate", "n")}
    docs = await w.clips("g1")
    assert docs["w"]["blob_held"] and not docs["l"]["blob_held"] and "dropping_at" not in docs["l"]
    await w.assert_consistent("g1")


async def test_marked_loser_whose_winner_vanished_is_checked_against_the_store(
        store: Store, s3_store: S3BlobStore, pool: ProcessPool, ladder: dict[str, Path],
        tmp_path: Path) -> None:
    w = await marked_by_an_older_footyd(store, s3_store, pool, ladder, tmp_path)
    await store.clips.update_one({"_id": "g1-w"}, {"$set": {"state": "retracted"}})
    await w.stage.handle("g1")
    # l's blob is gone: it cannot be kept, it is failed visibly instead
    assert await w.states("g1") == {"w": ("retracted", None), "l": ("failed", None)}
    assert (await w.clips("g1"))["l"]["reason"] == "blob missing"


async def test_killed_mid_release_converges_and_the_released_copy_is_never_kept_again(
        store: Store, s3_store: S3BlobStore, pool: ProcessPool, ladder: dict[str, Path],
        tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    clock = ManualClock(T0 + timedelta(minutes=10))
    crashing = CountingBlobs(s3_store, crash_after_deletes=1)
    w = World(store, crashing, DedupStage(cfg, store, crashing, pool, clock=clock), clock, cfg)
    g = await w.goal("g1")
    for name in ("w", "l", "n"):
        await w.add(g, name, ladder[name])
    await w.stage.handle(g)
    states = await w.states(g)
    (kept,) = [n for n, (state, _) in states.items() if state == "kept"]
    held = sorted(n for n in states if n != kept)
    assert all(states[n] == ("duplicate", kept) for n in held)
    await store.goals.update_one({"_id": g}, {"$set": {"state": "done"}})
    with pytest.raises(CountingBlobs.Crash):
        await w.stage.handle(g)
    docs = await w.clips(g)
    (cut,) = [n for n in held if docs[n]["blob_key"] == crashing.deleted[0]]
    (other,) = [n for n in held if n != cut]
    assert docs[cut]["releasing_at"] and docs[cut]["blob_held"] and docs[other]["blob_held"]
    # the goal reopens (a redrive) without its kept copy, and a poorer copy arrives: the
    # half-released copy lost its blob and is never kept again; the other held copy is
    await store.clips.update_one({"_id": f"g1-{kept}"}, {"$set": {"state": "retracted"}})
    await s3_store.delete(docs[kept]["blob_key"])
    await store.goals.update_one({"_id": g}, {"$set": {"state": "searching"}})
    poor = write_clip(tmp_path / "poor.mp4", seed=73, scene=7, seconds=4.0, width=320, height=180)
    await w.add(g, "poor", poor)
    w.blobs = CountingBlobs(s3_store)
    w.stage = DedupStage(cfg, store, w.blobs, pool, clock=clock)
    await w.stage.handle(g)
    states = await w.states(g)
    assert states[other] == ("kept", None) and states[cut] == ("duplicate", other)
    assert states["poor"] == ("duplicate", other)
    assert (await w.clips(g))[other]["reason"] == "kept again: its group changed"

    await w.finish(g)  # the interrupted release completes
    docs = await w.clips(g)
    assert not any(d.get("blob_held") or d.get("releasing_at") for d in docs.values())
    assert not await s3_store.exists(docs[cut]["blob_key"])
    await w.assert_consistent(g)


async def test_due_lists_goals_with_downloaded_clips_respecting_backoff_and_cancel(
        world: World, clip_dir: Path) -> None:
    now = world.clock()
    await world.goal("g_new")
    await world.add("g_new", "a_720p", clip_dir / "a_720p.mp4")
    await world.goal("g_later", dedup_next_at=now + timedelta(seconds=30))
    await world.add("g_later", "a_720p", clip_dir / "a_720p.mp4")
    await world.goal("g_cancel", state="cancelled")
    await world.add("g_cancel", "a_720p", clip_dir / "a_720p.mp4")
    await world.goal("g_none")

    assert await world.stage.due(now, 10) == ["g_new"]
    assert await world.stage.due(now + timedelta(seconds=30), 10) == ["g_later", "g_new"]
    assert await world.stage.due(now + timedelta(seconds=30), 1) == ["g_later"]

    await world.stage.handle("g_cancel")  # a cancelled goal is left to search's retraction
    await world.stage.handle("g_later")  # not yet
    assert await world.states("g_cancel") == {"a_720p": ("downloaded", None)}
    assert await world.states("g_later") == {"a_720p": ("downloaded", None)}
    await world.stage.handle("g_new")
    assert await world.stage.due(now + timedelta(seconds=30), 10) == ["g_later"]


async def test_killed_pool_worker_fails_closed_then_recovers(
        store: Store, s3_store: S3BlobStore, clip_dir: Path, tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    clock = ManualClock(T0 + timedelta(minutes=10))
    pool = ProcessPool(1)
    try:
        blobs = CountingBlobs(s3_store)
        w = World(store, blobs, DedupStage(cfg, store, blobs, pool, clock=clock), clock, cfg)
        g = await w.goal("g1")
        await w.add(g, "a_720p", clip_dir / "a_720p.mp4")
        await w.add(g, "a_low", clip_dir / "a_low.mp4")
        worker_pid = await pool.run(os.getpid, timeout_s=60)
        # freeze the only worker so the dedup job is surely on it, then kill that worker
        os.kill(worker_pid, signal.SIGSTOP)
        handler = asyncio.create_task(w.stage.handle(g))
        deadline = time.monotonic() + 60
        while pool.busy < 1:  # no event to await: the pool's own busy count
            assert time.monotonic() < deadline and not handler.done()
            await asyncio.sleep(0.02)
        os.kill(worker_pid, signal.SIGKILL)
        await handler

        assert set((await w.states(g)).values()) == {("downloaded", None)}
        goal = await store.goals.find_one({"_id": g})
        assert goal is not None and "Retryable" in goal["dedup_error"]
        assert blobs.deleted == []

        clock.now += timedelta(seconds=BACKOFF_S)
        await w.stage.handle(g)
        assert await w.states(g) == {"a_720p": ("kept", None), "a_low": ("duplicate", "a_720p")}
        assert await pool.run(os.getpid, timeout_s=60) != worker_pid
    finally:
        pool.shutdown()


# ---- fingerprints stored by download; resume; caps ------------------------------------------

async def test_stored_fingerprints_are_only_compared_and_old_clips_are_fingerprinted(
        world: World, clip_dir: Path) -> None:
    """Clips stored with a fingerprint are never fetched back; one stored before that change
    (no fingerprint) is fetched from storage, fingerprinted and grouped with them."""
    g = await world.goal("g1")
    ref_fps = world.cfg.dedup.reference_fps
    for name in ("a_720p", "b_540p"):
        path = clip_dir / f"{name}.mp4"
        await world.add(g, name, path, fp=fingerprint(str(path), sample_fps=ref_fps))
    old = await world.add(g, "a_480p", clip_dir / "a_480p.mp4")

    await world.stage.handle(g)

    docs = await world.clips(g)
    assert world.blobs.fetched == [docs["a_480p"]["blob_key"]]
    assert await world.states(g) == {"a_720p": ("kept", None), "b_540p": ("kept", None),
                                     "a_480p": ("duplicate", "a_720p")}
    stored = await world.store.clips.find_one({"_id": old})
    assert stored is not None and Fingerprint.from_doc(stored["fingerprint"]) == fingerprint(
        str(clip_dir / "a_480p.mp4"), sample_fps=ref_fps)


async def test_clip_above_the_decode_cost_cap_is_kept_undeduplicated(
        store: Store, s3_store: S3BlobStore, pool: ProcessPool, clip_dir: Path,
        tmp_path: Path) -> None:
    cfg = Config.model_validate({"download": {"scratch_dir": str(tmp_path / "scratch")},
                                 "dedup": {"max_decode_megapixel_s": 3.0}})
    blobs = CountingBlobs(s3_store)
    w = World(store, blobs, DedupStage(cfg, store, blobs, pool, clock=ManualClock(T0)),
              ManualClock(T0), cfg)
    g = await w.goal("g1")
    for name in ("a_720p", "a_low", "a_480p"):  # 5.5, 1.4 and 2.5 megapixel-s
        await w.add(g, name, clip_dir / f"{name}.mp4")

    await w.stage.handle(g)

    assert await w.states(g) == {"a_720p": ("kept", None), "a_480p": ("kept", None),
                                 "a_low": ("duplicate", "a_480p")}
    big = (await w.clips(g))["a_720p"]
    assert big["dedup_excluded"].startswith("decode cost 5.5 megapixel-s")
    assert big["reason"].startswith("kept without dedup: decode cost")
    assert "fingerprint" not in big
    goal = await store.goals.find_one({"_id": g})
    assert goal is not None and "dedup_error" not in goal and goal["deduped_at"] == T0
    await w.stage.handle(g)  # excluded clips are not tried again
    assert w.blobs.fetched.count(big["blob_key"]) == 1
    await w.assert_consistent(g)


async def test_clip_timing_out_twice_is_excluded_and_the_goal_finishes(
        store: Store, s3_store: S3BlobStore, clip_dir: Path, tmp_path: Path) -> None:
    # every fingerprint times out at 10 ms; the other clips came with stored fingerprints
    cfg = Config.model_validate({"download": {"scratch_dir": str(tmp_path / "scratch")},
                                 "dedup": {"timeout_s": 0.01, "retry_backoff_s": BACKOFF_S}})
    clock = ManualClock(T0)
    pool = ProcessPool(1)
    try:
        blobs = CountingBlobs(s3_store)
        w = World(store, blobs, DedupStage(cfg, store, blobs, pool, clock=clock), clock, cfg)
        g = await w.goal("g1")
        for name in ("a_720p", "a_low"):
            path = clip_dir / f"{name}.mp4"
            await w.add(g, name, path, fp=fingerprint(str(path), sample_fps=5.0))
        slow = await w.add(g, "a_480p", clip_dir / "a_480p.mp4")

        await w.stage.handle(g)  # first timeout: fail closed, retry later
        assert set((await w.states(g)).values()) == {("downloaded", None)}
        assert (await store.clips.find_one({"_id": slow}) or {})["fingerprint_failures"] == 1
        assert blobs.deleted == []

        clock.now += timedelta(seconds=BACKOFF_S)
        await w.stage.handle(g)  # second: excluded, the rest is deduplicated

        assert await w.states(g) == {"a_720p": ("kept", None), "a_low": ("duplicate", "a_720p"),
                                     "a_480p": ("kept", None)}
        doc = (await w.clips(g))["a_480p"]
        assert doc["dedup_excluded"].startswith("fingerprinting failed 2 times, last:")
        assert "timed out" in doc["dedup_excluded"]
        goal = await store.goals.find_one({"_id": g})
        assert goal is not None and "dedup_next_at" not in goal
        assert await w.stage.due(clock.now + timedelta(hours=1), 10) == []
        await w.assert_consistent(g)
    finally:
        pool.shutdown()
