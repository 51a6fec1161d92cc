"""Download stage against real MongoDB-wire, S3 (moto), the clip host, yt-dlp and a process pool."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aioboto3
import cv2
import numpy as np
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from footyd.clients.blobs import BlobStore, S3BlobStore
from footyd.clients.store import Store
from footyd.config import Config, StorageConfig
from footyd.media.fingerprint import Fingerprint, fingerprint
from footyd.metrics import REGISTRY
from footyd.moves import delete_clip_objects
from footyd.procpool import ProcessPool
from footyd.records import clip_key
from footyd.sim.clipgen import ClipSpec
from footyd.sim.clips import ClipHost, ManualClock
from footyd.stages.download import DownloadStage
from footyd.stages.retention import Retention, RetentionReport
from tests.plugins.blobs import videos_of
from tests.plugins.clips import CLIP_T0

# its module-scoped clips are built once: one worker runs the file
pytestmark = pytest.mark.xdist_group("test_download_stage")

GOAL = "g-test-1"
FIXTURE = 4242


@dataclass
class DedupInbox:
    """The to_dedup handoff: records each goal id and its clips' states at hand-off time."""

    store: Store
    calls: list[tuple[str, list[str]]] = field(default_factory=list)

    async def __call__(self, goal_id: str) -> bool:
        states = [d["state"] async for d in self.store.clips.find({"goal_id": goal_id})]
        self.calls.append((goal_id, states))
        return True


class HookedBlobs:
    """The real S3 store, with a hook run right after each upload (to stage races)."""

    def __init__(self, inner: S3BlobStore, after_put: Callable[[str], Awaitable[None]]) -> None:
        self._inner = inner
        self._after_put = after_put
        self.kind = inner.kind
        self.bucket = inner.bucket

    async def put_file(self, key: str, path: Path, *, content_type: str,
                       metadata: dict[str, str]) -> None:
        await self._inner.put_file(key, path, content_type=content_type, metadata=metadata)
        if not key.endswith(".jpg"):  # the hook is about the video; its poster follows
            await self._after_put(key)

    async def get_file(self, key: str, path: Path) -> None:
        await self._inner.get_file(key, path)

    async def delete(self, key: str) -> None:
        await self._inner.delete(key)

    async def exists(self, key: str) -> bool:
        return await self._inner.exists(key)

    async def list_keys(self, prefix: str) -> list[str]:
        return await self._inner.list_keys(prefix)

    async def ping(self) -> bool:
        return await self._inner.ping()

    def key_for(self, *parts: str) -> str:
        return self._inner.key_for(*parts)


class SignallingClipHost(ClipHost):
    """The clip host, setting `streaming` once a stalling body has started to flow."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.streaming = asyncio.Event()

    async def _stream(self, req: web.Request, spec: ClipSpec) -> web.StreamResponse:
        self.streaming.set()
        return await super()._stream(req, spec)


@dataclass
class Env:
    store: Store
    blobs: S3BlobStore
    host: ClipHost
    clock: ManualClock
    inbox: DedupInbox
    scratch: Path
    clip_dir: Path
    pool: ProcessPool
    stack: AsyncExitStack

    async def stage(self, blobs: BlobStore | None = None, dedup: dict[str, Any] | None = None,
                    **download: Any) -> DownloadStage:
        settings: dict[str, Any] = {"scratch_dir": str(self.scratch), "retry_backoff_s": 60,
                                    "max_attempts": 3, "timeout_s": 60, "socket_timeout_s": 10,
                                    "allow_private_addresses": True}  # the clip host is loopback
        settings.update(download)
        cfg = Config.model_validate({"download": settings, "dedup": dedup or {}})
        stage = DownloadStage(cfg, self.store, blobs or self.blobs, self.pool, to_dedup=self.inbox,
                              clock=self.clock)
        return await self.stack.enter_async_context(stage)

    async def add_clip(self, *, media: str | None = None, post: str | None = None,
                       **extra: Any) -> str:
        clip_id = "c" + uuid.uuid4().hex[:16]
        media_url = post_url = None
        if media is not None:
            media_url = self.host.media_url(media) + f"?n={clip_id}"
        if post is not None:
            post_url = self.host.media_url(post) + f"?post={clip_id}"
        doc = {"_id": clip_id, "goal_id": GOAL, "fixture_id": FIXTURE, "source": "fake",
               "source_url": media_url or post_url, "post_url": post_url, "media_url": media_url,
               "posted_at": CLIP_T0, "text": "GOAL", "state": "discovered", "attempt_ids": [],
               "next_attempt_at": CLIP_T0, "created_at": CLIP_T0, **extra}
        await self.store.clips.insert_one(doc)
        return clip_id

    async def clip(self, clip_id: str) -> dict[str, Any]:
        doc = await self.store.clips.find_one({"_id": clip_id})
        assert doc is not None
        return doc

    async def keys(self) -> list[str]:
        """The stored videos (a poster is never stored without its video)."""
        return videos_of(await self.blobs.list_keys(""))

    def scratch_left(self) -> list[Path]:
        root = self.scratch / "download"  # the per-clip dirs below it must all be gone
        return list(root.rglob("*")) if root.exists() else []

    def sha(self, name: str) -> str:
        return hashlib.sha256((self.clip_dir / f"{name}.mp4").read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPool]:
    p = ProcessPool(1)
    yield p
    p.shutdown()


@pytest.fixture
async def env(store: Store, s3_store: S3BlobStore, clip_host: ClipHost, pool: ProcessPool,
              clip_dir: Path, tmp_path: Path) -> AsyncIterator[Env]:
    await store.goals.insert_one({"_id": GOAL, "fixture_id": FIXTURE, "state": "searching",
                                  "first_seen_at": CLIP_T0, "scorer_name": "Wirtz"})
    clock = ManualClock(CLIP_T0)
    async with AsyncExitStack() as stack:
        e = Env(store, s3_store, clip_host, clock, DedupInbox(store), tmp_path / "scratch",
                clip_dir, pool, stack)
        yield e
    assert e.scratch_left() == [], "scratch files left behind"


async def head(cfg: StorageConfig, key: str) -> dict[str, Any]:
    """HEAD an object with a separate client, so ContentType and metadata are seen as S3 has them."""
    session = aioboto3.Session()
    async with session.client(
        "s3", endpoint_url=cfg.endpoint_url, region_name=cfg.region,
        aws_access_key_id=cfg.access_key_id.get_secret_value() if cfg.access_key_id else None,
        aws_secret_access_key=(cfg.secret_access_key.get_secret_value()
                               if cfg.secret_access_key else None),
    ) as s3:
        result: dict[str, Any] = await s3.head_object(Bucket=cfg.bucket, Key=key)
        return result


def clips_total(state: str) -> float:
    return REGISTRY.get_sample_value("footyd_clips_total", {"state": state}) or 0.0


# -- success ------------------------------------------------------------------------------------


async def test_media_url_is_stored_under_its_content_key(env: Env, s3_cfg: StorageConfig) -> None:
    stage = await env.stage()
    clip_id = await env.add_clip(media="a_low")
    before = clips_total("downloaded")
    with capture_logs() as logs:
        await stage.handle(clip_id)
    sha = env.sha("a_low")
    key = env.blobs.key_for(clip_key(FIXTURE, GOAL, sha))
    doc = await env.clip(clip_id)
    assert doc["state"] == "downloaded"
    assert (doc["sha256"], doc["blob_key"]) == (sha, key)
    assert (doc["width"], doc["height"]) == (640, 360)
    assert doc["duration_s"] == pytest.approx(6.0, abs=0.2)
    assert doc["size_bytes"] == (env.clip_dir / "a_low.mp4").stat().st_size
    assert doc["bitrate_bps"] == pytest.approx(doc["size_bytes"] * 8 / doc["duration_s"])
    assert doc["stored_at"] == CLIP_T0 and "upload_keys" not in doc
    assert await env.keys() == [key]
    obj = await head(s3_cfg, key)
    assert obj["ContentType"] == "video/mp4"
    assert obj["Metadata"] == {"goal-id": GOAL, "fixture-id": str(FIXTURE), "clip-id": clip_id,
                               "sha256": sha, "source": "fake"}
    # the handoff came after the state was written
    assert env.inbox.calls == [(GOAL, ["downloaded"])]
    assert clips_total("downloaded") == before + 1
    stored = [e for e in logs if e["event"] == "clip_stored"]
    assert stored and stored[0]["clip_id"] == clip_id and stored[0]["goal_id"] == GOAL


async def test_the_poster_from_the_same_decode_is_stored_beside_the_video(
        env: Env, s3_cfg: StorageConfig, tmp_path: Path) -> None:
    stage = await env.stage()
    clip_id = await env.add_clip(media="a_low")
    await stage.handle(clip_id)
    doc = await env.clip(clip_id)
    assert doc["poster_key"] == doc["blob_key"].removesuffix(".mp4") + ".jpg"
    assert (await head(s3_cfg, doc["poster_key"]))["ContentType"] == "image/jpeg"
    path = tmp_path / "poster.jpg"
    await env.blobs.get_file(doc["poster_key"], path)
    image = cv2.imread(str(path))
    assert image is not None and image.shape == (360, 640, 3)  # the clip's size, in colour
    frame = 0.4 * doc["duration_s"]  # the poster is the frame at 40% of the clip
    cap = cv2.VideoCapture(str(env.clip_dir / "a_low.mp4"))
    cap.set(cv2.CAP_PROP_POS_MSEC, frame * 1000)
    ok, want = cap.read()
    cap.release()
    assert ok and float(np.abs(image.astype(int) - want.astype(int)).mean()) < 12  # vs 29 at 0 s
    assert float(image.std()) > 10  # a picture, not a flat frame
    await delete_clip_objects(env.blobs, doc["blob_key"])
    assert await env.blobs.list_keys("") == []  # the poster goes with its video
    # idempotent: a second delivery of the same id does nothing
    await stage.handle(clip_id)
    assert len(env.inbox.calls) == 1 and env.host.hits["a_low"] == 1


async def test_post_url_is_fetched_with_ytdlp(env: Env) -> None:
    stage = await env.stage()
    clip_id = await env.add_clip(post="a_low")
    await stage.handle(clip_id)
    doc = await env.clip(clip_id)
    assert doc["state"] == "downloaded" and doc["sha256"] == env.sha("a_low")
    assert await env.keys() == [doc["blob_key"]]
    assert env.inbox.calls == [(GOAL, ["downloaded"])]


async def test_identical_bytes_from_a_second_url_is_a_duplicate(env: Env) -> None:
    stage = await env.stage()
    first = await env.add_clip(media="a_low")
    second = await env.add_clip(media="a_low")
    await stage.handle(first)
    await stage.handle(second)
    doc = await env.clip(second)
    assert doc["state"] == "duplicate"
    assert (doc["duplicate_of"], doc["reason"]) == (first, "identical bytes")
    assert "sha256" not in doc and "blob_key" not in doc
    assert await env.keys() == [(await env.clip(first))["blob_key"]]
    assert len(env.inbox.calls) == 1


# -- rejections and permanent failures ----------------------------------------------------------


async def test_portrait_is_rejected_for_its_aspect(env: Env) -> None:
    stage = await env.stage()
    clip_id = await env.add_clip(media="portrait")
    with capture_logs() as logs:
        await stage.handle(clip_id)
    doc = await env.clip(clip_id)
    assert doc["state"] == "rejected" and "aspect" in doc["reason"]
    assert await env.keys() == [] and env.inbox.calls == []
    assert any(e["event"] == "clip_rejected" and e["reason"] == doc["reason"] for e in logs)


async def test_garbage_is_rejected_as_invalid_media(env: Env) -> None:
    stage = await env.stage()
    clip_id = await env.add_clip(media="garbage")
    await stage.handle(clip_id)
    doc = await env.clip(clip_id)
    assert doc["state"] == "rejected" and doc["reason"].startswith("invalid_media")
    assert await env.keys() == []


async def test_oversized_is_rejected_too_large(env: Env) -> None:
    stage = await env.stage(max_size_mb=1)
    clip_id = await env.add_clip(media="oversized")
    await stage.handle(clip_id)
    doc = await env.clip(clip_id)
    assert doc["state"] == "rejected" and doc["reason"].startswith("too_large")


async def test_apply_config_takes_a_new_size_cap(env: Env) -> None:
    stage = await env.stage()
    cfg = Config.model_validate({"download": {"scratch_dir": str(env.scratch), "max_size_mb": 0.5,
                                                "allow_private_addresses": True}})
    stage.apply_config(cfg)
    clip_id = await env.add_clip(media="a_low")  # ~0.8 MB, fine under the default cap
    await stage.handle(clip_id)
    doc = await env.clip(clip_id)
    assert doc["state"] == "rejected" and doc["reason"].startswith("too_large")
    assert await env.keys() == []


@pytest.mark.parametrize(("name", "kind"), [("missing", "not_found"), ("geo", "forbidden")])
async def test_404_and_403_fail_without_retry(env: Env, name: str, kind: str) -> None:
    stage = await env.stage()
    clip_id = await env.add_clip(media=name)
    with capture_logs() as logs:
        await stage.handle(clip_id)
    doc = await env.clip(clip_id)
    assert doc["state"] == "failed" and doc["reason"].startswith(kind)
    assert doc["attempt_ids"] == []
    assert await stage.due(CLIP_T0.replace(year=2030), 10) == []
    env.clock.advance(86400)
    await stage.handle(clip_id)
    assert env.host.hits[name] == 1
    assert [e["event"] for e in logs if e["event"].startswith("clip_")] == ["clip_failed"]


# -- retries ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "kind"), [("limited", "rate_limited"), ("broken", "server_error")])
async def test_retryable_errors_back_off_then_fail(env: Env, name: str, kind: str) -> None:
    stage = await env.stage(retry_backoff_s=60, max_attempts=3)
    clip_id = await env.add_clip(media=name)
    await stage.handle(clip_id)
    doc = await env.clip(clip_id)
    assert doc["state"] == "discovered" and doc["attempt_ids"] == ["d1"]
    assert doc["last_error"].startswith(kind)
    assert (doc["next_attempt_at"] - CLIP_T0).total_seconds() == 60
    assert await stage.due(env.clock(), 10) == []
    await stage.handle(clip_id)  # not due yet: nothing is fetched
    assert env.host.hits[name] == 1

    env.clock.advance(60)
    assert await stage.due(env.clock(), 10) == [clip_id]
    await stage.handle(clip_id)
    doc = await env.clip(clip_id)
    assert doc["attempt_ids"] == ["d1", "d2"]
    assert (doc["next_attempt_at"] - env.clock()).total_seconds() == 120

    env.clock.advance(120)
    await stage.handle(clip_id)
    doc = await env.clip(clip_id)
    assert doc["state"] == "failed" and doc["reason"].startswith(f"attempts spent: {kind}")
    assert doc["attempt_ids"] == ["d1", "d2", "d3"] and env.host.hits[name] == 3
    assert await stage.due(env.clock().replace(year=2030), 10) == []


async def test_stalled_body_times_out_and_is_retried(env: Env) -> None:
    stage = await env.stage(timeout_s=1, socket_timeout_s=0.3)
    clip_id = await env.add_clip(media="slow")
    await stage.handle(clip_id)
    doc = await env.clip(clip_id)
    assert doc["state"] == "discovered" and doc["attempt_ids"] == ["d1"]
    assert doc["last_error"].startswith("timeout")
    assert doc["next_attempt_at"] > CLIP_T0


async def test_cancelled_download_leaves_nothing_and_stays_pending(env: Env, clip_dir: Path) -> None:
    host = SignallingClipHost(clip_dir, clock=ManualClock(CLIP_T0))
    await host.start()
    env.host = host
    try:
        stage = await env.stage()
        clip_id = await env.add_clip(media="slow")
        task = asyncio.create_task(stage.handle(clip_id))
        await host.streaming.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await host.stop()
    doc = await env.clip(clip_id)
    assert doc["state"] == "discovered" and doc["attempt_ids"] == []
    assert not (env.scratch / "download" / clip_id).exists()


# -- races with retraction and concurrent twins --------------------------------------------------


async def test_clip_retracted_during_upload_ends_retracted_without_object(env: Env) -> None:
    clip_id = await env.add_clip(media="a_low")
    uploaded: list[str] = []

    async def retract(key: str) -> None:
        uploaded.append(key)
        assert await env.keys() == [key]  # the object really was there
        await env.store.clips.update_one({"_id": clip_id, "state": "discovered"},
                                         {"$set": {"state": "retracted"}})

    stage = await env.stage(blobs=HookedBlobs(env.blobs, retract))
    await stage.handle(clip_id)
    doc = await env.clip(clip_id)
    assert doc["state"] == "retracted" and "sha256" not in doc and "upload_keys" not in doc
    assert len(uploaded) == 1 and await env.keys() == []
    assert env.inbox.calls == []


async def test_concurrent_identical_clip_wins_and_its_object_survives(env: Env) -> None:
    clip_id = await env.add_clip(media="a_low")
    twin_id = "c-twin"

    async def twin_finishes_first(key: str) -> None:
        await env.store.clips.insert_one({
            "_id": twin_id, "goal_id": GOAL, "fixture_id": FIXTURE, "source_url": "http://x/y",
            "state": "downloaded", "sha256": env.sha("a_low"), "blob_key": key})

    stage = await env.stage(blobs=HookedBlobs(env.blobs, twin_finishes_first))
    await stage.handle(clip_id)
    doc = await env.clip(clip_id)
    assert doc["state"] == "duplicate" and doc["duplicate_of"] == twin_id
    assert await env.keys() == [(await env.clip(twin_id))["blob_key"]]
    assert env.inbox.calls == []


async def test_upload_left_by_a_crashed_attempt_is_released(env: Env) -> None:
    key = env.blobs.key_for(clip_key(FIXTURE, GOAL, env.sha("a_low")))
    await env.blobs.put_file(key, env.clip_dir / "a_low.mp4", content_type="video/mp4",
                             metadata={})
    clip_id = await env.add_clip(media="missing", upload_keys=[key])
    stage = await env.stage()
    await stage.handle(clip_id)
    doc = await env.clip(clip_id)
    assert doc["state"] == "failed" and "upload_keys" not in doc
    assert await env.keys() == []


# -- scheduling ---------------------------------------------------------------------------------


async def test_cancelled_goal_is_left_for_search_to_retract(env: Env) -> None:
    await env.store.goals.update_one({"_id": GOAL}, {"$set": {"state": "cancelled"}})
    stage = await env.stage()
    clip_id = await env.add_clip(media="a_low")
    await stage.handle(clip_id)
    assert (await env.clip(clip_id))["state"] == "discovered"
    assert env.host.hits["a_low"] == 0 and await env.keys() == []


async def test_due_lists_discovered_clips_oldest_first(env: Env) -> None:
    stage = await env.stage()
    later = await env.add_clip(media="a_low", next_attempt_at=CLIP_T0.replace(minute=5))
    sooner = await env.add_clip(media="a_480p", next_attempt_at=CLIP_T0.replace(minute=1))
    await env.add_clip(media="b_540p", next_attempt_at=CLIP_T0.replace(minute=30))
    await env.add_clip(media="a_logo", state="downloaded")
    assert await stage.due(CLIP_T0.replace(minute=10), 10) == [sooner, later]
    assert await stage.due(CLIP_T0.replace(minute=10), 1) == [sooner]



@pytest.mark.parametrize("via", ["media", "post"])
async def test_loopback_clip_is_rejected_unless_private_addresses_are_allowed(
    env: Env, via: str
) -> None:
    stage = await env.stage(allow_private_addresses=False)  # the shipped default
    clip_id = await env.add_clip(**{via: "a_720p"})
    hits = env.host.hits["a_720p"]
    await stage.handle(clip_id)
    doc = await env.clip(clip_id)
    assert doc["state"] == "rejected" and doc["reason"].startswith("blocked_address")
    assert "loopback" in doc["reason"] and "download.allow_private_addresses" in doc["reason"]
    assert env.host.hits["a_720p"] == hits  # refused before any connection was made
    assert await env.keys() == [] and env.scratch_left() == []


# -- fingerprint while the scratch file exists ---------------------------------------------------


async def test_stored_clip_carries_its_fingerprint(env: Env) -> None:
    stage = await env.stage()
    clip_id = await env.add_clip(media="a_720p")
    await stage.handle(clip_id)
    doc = await env.clip(clip_id)
    assert doc["state"] == "downloaded"
    fp = Fingerprint.from_doc(doc["fingerprint"])
    ref = fingerprint(str(env.clip_dir / "a_720p.mp4"), sample_fps=Config().dedup.reference_fps)
    assert fp == ref and len(fp.hashes) == 30  # 6 s at 5 samples/s


async def test_refused_clips_cost_no_fingerprint(env: Env) -> None:
    stage = await env.stage()
    clip_id = await env.add_clip(media="portrait")
    await stage.handle(clip_id)
    doc = await env.clip(clip_id)
    assert doc["state"] == "rejected" and "fingerprint" not in doc


async def test_decode_cost_above_the_cap_is_rejected_with_a_reason(env: Env) -> None:
    # a_720p: 6 s x 0.92 megapixels = 5.5 megapixel-s; a_low (640x360): 1.4
    stage = await env.stage(dedup={"max_decode_megapixel_s": 3.0})
    big, small = await env.add_clip(media="a_720p"), await env.add_clip(media="a_low")
    await stage.handle(big)
    await stage.handle(small)
    doc = await env.clip(big)
    assert doc["state"] == "rejected" and "fingerprint" not in doc
    assert doc["reason"].startswith("filtered: decode cost 5.5 megapixel-s")
    assert "max_decode_megapixel_s 3" in doc["reason"]
    assert (await env.clip(small))["state"] == "downloaded"
    assert await env.keys() == [(await env.clip(small))["blob_key"]]


class RetireBeforePut(HookedBlobs):
    """The real S3 store; a hook runs right BEFORE the upload (the fixture retired mid-download)."""

    async def put_file(self, key: str, path: Path, *, content_type: str,
                       metadata: dict[str, str]) -> None:
        if not key.endswith(".jpg"):  # the hook is about the video; its poster follows
            await self._after_put(key)
        await self._inner.put_file(key, path, content_type=content_type, metadata=metadata)


@pytest.mark.parametrize("when", ["before_upload", "after_upload"])
async def test_a_fixture_retired_while_its_clip_downloads_leaves_no_object(
        env: Env, when: str) -> None:
    """Retention deletes the fixture, its goal and the clip's document while the clip is in
    flight; whether the object lands before or after, nothing of the fixture stays stored."""
    await env.store.fixtures.insert_one({"_id": FIXTURE, "stage": "completed",
                                         "kickoff": datetime.now(UTC) - timedelta(days=40)})
    await env.store.goals.update_one({"_id": GOAL}, {"$set": {"fixture_id": FIXTURE}}, upsert=True)
    clip_id = await env.add_clip(media="a_low")
    retired: list[RetentionReport] = []

    async def retire(_key: str) -> None:
        cfg = Config.model_validate({"retention": {"days": 30}})
        retired.append(await Retention(cfg, env.store, env.blobs).run())

    hooked = (RetireBeforePut if when == "before_upload" else HookedBlobs)(env.blobs, retire)
    stage = await env.stage(blobs=hooked)
    await stage.handle(clip_id)
    assert retired and retired[0].fixtures == [FIXTURE]
    assert await env.store.clips.find_one({"_id": clip_id}) is None
    assert await env.keys() == []
    assert env.inbox.calls == []
