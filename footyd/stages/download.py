"""Download stage: fetch a discovered clip, validate it, store it under its content key."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import structlog
from prometheus_client import Counter, Histogram

from footyd.clients.blobs import BlobStore
from footyd.clients.media_http import fetch_media
from footyd.clients.netguard import AddressPolicy, guarded_session
from footyd.clients.store import Doc, DuplicateKey, Store
from footyd.clients.ytdlp import fetch_post
from footyd.clock import Clock, utcnow
from footyd.config import Config, DownloadConfig
from footyd.errors import DownloadFailed, FailPolicy, Retryable
from footyd.media.decode import sample_frames
from footyd.media.filters import rejection
from footyd.media.fingerprint import SMALL_H, SMALL_W, Fingerprint, fingerprint_frames
from footyd.media.poster import POSTER_WIDTH_PX, encode_jpeg
from footyd.media.probe import VideoInfo, probe
from footyd.metrics import REGISTRY
from footyd.moves import delete_clip_objects, move_clip
from footyd.pipeline import Handoff
from footyd.procpool import ProcessPool
from footyd.records import (
    CLIP_DISCOVERED,
    CLIP_DOWNLOADED,
    CLIP_DUPLICATE,
    CLIP_FAILED,
    CLIP_REJECTED,
    GOAL_CANCELLED,
    HOLDS_BLOB,
    clip_key,
    poster_key,
)

log = structlog.get_logger(__name__)

DOWNLOAD_SECONDS = Histogram("footyd_download_seconds", "Wall time of successful clip fetches.",
                             buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300), registry=REGISTRY)
DOWNLOAD_BYTES = Counter("footyd_download_bytes", "Bytes of clips fetched and validated.",
                         registry=REGISTRY)

PROBE_TIMEOUT_S = 60.0
MAX_BACKOFF_S = 3600.0
HASH_CHUNK_BYTES = 1 << 20



def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (run it in a thread)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Probed:
    """analyse_in_worker()'s answer as it crosses the process boundary, a refusal as data."""

    info: VideoInfo | None
    kind: str = ""
    reason: str = ""
    fingerprint: Fingerprint | None = None
    poster_jpeg: bytes | None = None


def analyse_in_worker(path: str, filters: DownloadConfig, *, sample_fps: float,
                      max_megapixel_s: float) -> Probed:
    """Probe, filter, then fingerprint in one pool call while the scratch file exists.

    The filters run before the decode so refused junk (portrait, too short) costs no fingerprint;
    the fingerprint's decode also keeps the poster frame.
    """
    try:
        info = probe(path)
        why = rejection(filters, duration_s=info.duration_s, width=info.width, height=info.height,
                        size_bytes=info.size_bytes)
        if why is not None:
            return Probed(info, "filtered", why)
        samples = sample_frames(path, sample_fps=sample_fps, width=SMALL_W, height=SMALL_H,
                                max_megapixel_s=max_megapixel_s, poster_width=POSTER_WIDTH_PX)
        fp = fingerprint_frames(samples.frames, sample_fps=samples.sample_fps,
                                truncated=samples.truncated)
        poster = encode_jpeg(samples.poster) if samples.poster is not None else None
        return Probed(info, fingerprint=fp, poster_jpeg=poster)
    except DownloadFailed as exc:
        return Probed(None, exc.kind, exc.reason)


class DownloadStage:
    """Handles clip ids: discovered -> downloaded | duplicate | rejected | failed (or a retry)."""

    name = "download"

    def __init__(self, cfg: Config, store: Store, blobs: BlobStore, pool: ProcessPool, *,
                 to_dedup: Handoff, clock: Clock = utcnow) -> None:
        self._cfg = cfg
        self._store = store
        self._blobs = blobs
        self._pool = pool
        self._to_dedup = to_dedup
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> DownloadStage:
        self._session = guarded_session(self._policy)  # re-checks the address on every connect
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _policy(self) -> AddressPolicy:
        dl = self._cfg.download
        return AddressPolicy.build(dl.allow_private_addresses, dl.allowed_networks)

    def workers(self) -> int:
        return self._cfg.download.concurrency

    def apply_config(self, cfg: Config) -> None:
        # every handle() reads caps, filters and retry settings from here afresh
        self._cfg = cfg

    async def due(self, now: datetime, limit: int) -> list[str]:
        cursor = self._store.clips.find(
            {"state": CLIP_DISCOVERED, "next_attempt_at": {"$lte": now}}, {"_id": 1}
        ).sort("next_attempt_at", 1).limit(limit)
        return [doc["_id"] async for doc in cursor]

    async def handle(self, clip_id: str) -> None:
        doc = await self._store.clips.find_one({"_id": clip_id})
        if doc is None or doc.get("state") != CLIP_DISCOVERED:
            return
        due_at = doc.get("next_attempt_at")
        if due_at is not None and due_at > self._clock():
            return
        with structlog.contextvars.bound_contextvars(
            clip_id=clip_id, goal_id=doc["goal_id"], fixture_id=doc.get("fixture_id")
        ):
            goal = await self._store.goals.find_one({"_id": doc["goal_id"]}, {"state": 1})
            if goal is None:
                await self._terminal(doc, CLIP_FAILED, "goal missing")
                return
            if goal.get("state") == GOAL_CANCELLED:
                log.info("clip_skipped_goal_cancelled")  # the search stage retracts it
                return
            scratch = self._cfg.download.scratch_dir / "download" / clip_id
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir(parents=True)
            try:
                await self._process(doc, scratch)
            finally:
                # synchronous on purpose: it must also run when the task is being cancelled
                shutil.rmtree(scratch, ignore_errors=True)

    # -- steps -------------------------------------------------------------------------------------
    async def _process(self, doc: Doc, scratch: Path) -> None:
        try:
            path = await self._fetch(doc, scratch)
            probed = await self._analyse(path)
            sha = await asyncio.to_thread(file_sha256, path)
        except DownloadFailed as exc:
            await self._failed(doc, exc)
            return
        except Retryable as exc:
            await self._retry(doc, f"{type(exc).__name__}: {exc}")
            return
        assert probed.info is not None and probed.fingerprint is not None  # _analyse checked
        DOWNLOAD_BYTES.inc(probed.info.size_bytes)
        await self._store_clip(doc, path, probed, sha)

    async def _analyse(self, path: Path) -> Probed:
        dc = self._cfg.dedup
        try:
            probed = await self._pool.run(
                analyse_in_worker, str(path), self._cfg.download, sample_fps=dc.reference_fps,
                max_megapixel_s=dc.max_decode_megapixel_s, timeout_s=PROBE_TIMEOUT_S + dc.timeout_s)
        except Retryable:
            raise
        except Exception as exc:
            # a decoder choking on a hostile file must end the clip, not loop it through retries
            log.warning("probe_crashed", exc_info=True)
            raise DownloadFailed("invalid_media", f"probe failed: {type(exc).__name__}") from exc
        if probed.info is None or probed.fingerprint is None:
            raise DownloadFailed(probed.kind, probed.reason)
        return probed

    async def _fetch(self, doc: Doc, scratch: Path) -> Path:
        dl = self._cfg.download
        started = time.monotonic()
        if doc.get("media_url"):
            assert self._session is not None, "DownloadStage used outside `async with`"
            path = await fetch_media(self._session, doc["media_url"], scratch,
                                     max_size_mb=dl.max_size_mb, timeout_s=dl.timeout_s,
                                     socket_timeout_s=dl.socket_timeout_s, policy=self._policy())
        elif doc.get("post_url"):
            path = await fetch_post(doc["post_url"], scratch, timeout_s=dl.timeout_s,
                                    socket_timeout_s=dl.socket_timeout_s,
                                    max_size_mb=dl.max_size_mb, cookies_file=dl.cookies_file,
                                    ffmpeg_location=dl.ffmpeg_location, policy=self._policy())
        else:
            raise DownloadFailed("unsupported_url", "clip has neither media_url nor post_url")
        DOWNLOAD_SECONDS.observe(time.monotonic() - started)
        return path

    async def _store_clip(self, doc: Doc, path: Path, probed: Probed, sha: str) -> None:
        info, fp = probed.info, probed.fingerprint
        assert info is not None and fp is not None
        clips = self._store.clips
        clip_id, goal_id = doc["_id"], doc["goal_id"]
        twin = await clips.find_one({"goal_id": goal_id, "sha256": sha, "_id": {"$ne": clip_id}})
        if twin is not None:
            await self._duplicate(doc, twin, info)
            return
        key = self._blobs.key_for(clip_key(doc["fixture_id"], goal_id, sha))
        # intent first: a crash after the upload leaves a key we can find and release later
        marked = await clips.update_one({"_id": clip_id, "state": CLIP_DISCOVERED},
                                        {"$addToSet": {"upload_keys": key}})
        if marked.matched_count == 0:
            log.info("clip_changed_during_download")
            return
        meta = {"goal-id": goal_id, "fixture-id": str(doc["fixture_id"]), "clip-id": clip_id,
                "sha256": sha, "source": str(doc.get("source", ""))}
        try:
            await self._blobs.put_file(key, path, content_type="video/mp4", metadata=meta)
        except Retryable as exc:
            await self._retry(doc, f"upload: {exc}")
            return
        poster = await self._store_poster(key, path, probed.poster_jpeg, meta)
        fields = {
            "sha256": sha, "size_bytes": info.size_bytes,
            "width": info.width, "height": info.height, "duration_s": info.duration_s,
            "fps": info.fps, "codec": info.codec,
            "bitrate_bps": info.size_bytes * 8 / info.duration_s if info.duration_s else None,
            "blob_key": key, "stored_at": self._clock(), "last_error": None,
            "fingerprint": fp.to_doc(),  # dedup only compares
            "poster_key": poster,
        }
        stale = [k for k in doc.get("upload_keys") or [] if k != key]  # from a crashed attempt
        try:
            stored = await move_clip(self._store, clip_id, from_=CLIP_DISCOVERED, to=CLIP_DOWNLOADED,
                                     set_=fields, unset=() if stale else ("upload_keys",))
        except DuplicateKey:
            # an identical clip of this goal was written meanwhile: it owns the shared object
            twin = await clips.find_one({"goal_id": goal_id, "sha256": sha, "_id": {"$ne": clip_id}})
            if twin is None:
                raise
            await self._duplicate(doc, twin, info)
            return
        if stored is None:
            # retracted (goal cancelled) while we worked: its state stands, the upload goes
            current = await clips.find_one({"_id": clip_id}, {"state": 1, "upload_keys": 1}) or {}
            log.info("clip_upload_discarded", clip_id=clip_id, goal_id=goal_id,
                     state=current.get("state"), blob_key=key)
            await self._release(clip_id, list(current.get("upload_keys") or [key]), unset=True)
            return
        if stale:
            await self._release(clip_id, stale, unset=True)
        log.info("clip_stored", clip_id=clip_id, goal_id=goal_id, reason="stored", blob_key=key,
                 sha256=sha, size_bytes=info.size_bytes,
                 width=info.width, height=info.height, duration_s=round(info.duration_s, 2))
        await self._to_dedup(goal_id)

    async def _store_poster(self, key: str, video: Path, jpeg: bytes | None,
                            meta: dict[str, str]) -> str | None:
        """Upload the poster beside the video; a clip without one is still a clip (None)."""
        if jpeg is None:
            return None
        path = video.with_name("poster.jpg")
        try:
            await asyncio.to_thread(path.write_bytes, jpeg)
            pkey = poster_key(key)
            await self._blobs.put_file(pkey, path, content_type="image/jpeg", metadata=meta)
        except (Retryable, OSError) as exc:
            log.warning("clip_poster_not_stored", error=f"{type(exc).__name__}: {exc}"[:300],
                        exc_info=True)
            return None
        return pkey

    async def _duplicate(self, doc: Doc, twin: Doc, info: VideoInfo) -> None:
        original = twin.get("duplicate_of") if twin.get("state") == CLIP_DUPLICATE else None
        await self._terminal(doc, CLIP_DUPLICATE, "identical bytes",
                             duplicate_of=original or twin["_id"], size_bytes=info.size_bytes,
                             width=info.width, height=info.height, duration_s=info.duration_s)

    async def _failed(self, doc: Doc, exc: DownloadFailed) -> None:
        policy = exc.kind.policy
        if policy is FailPolicy.RETRY:
            await self._retry(doc, str(exc))
        elif policy is FailPolicy.FAIL:
            await self._terminal(doc, CLIP_FAILED, str(exc), last_error=str(exc))
        else:
            await self._terminal(doc, CLIP_REJECTED, str(exc))

    async def _retry(self, doc: Doc, error: str) -> None:
        dl = self._cfg.download
        attempt = len(doc.get("attempt_ids") or []) + 1
        if attempt >= dl.max_attempts:
            await self._terminal(doc, CLIP_FAILED, f"attempts spent: {error}", last_error=error,
                                 add_attempt=f"d{attempt}")
            return
        delay_s = min(dl.retry_backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)
        next_at = self._clock() + timedelta(seconds=delay_s)
        result = await self._store.clips.update_one(
            {"_id": doc["_id"], "state": CLIP_DISCOVERED},
            {"$addToSet": {"attempt_ids": f"d{attempt}"},
             "$set": {"next_attempt_at": next_at, "last_error": error}})
        if result.matched_count:
            log.info("clip_retry_scheduled", clip_id=doc["_id"], goal_id=doc["goal_id"],
                     reason=error, attempt=attempt, delay_s=delay_s,
                     next_attempt_at=next_at.isoformat())

    async def _terminal(self, doc: Doc, state: str, reason: str, *, add_attempt: str | None = None,
                        **fields: Any) -> None:
        done = await move_clip(
            self._store, doc["_id"], from_=CLIP_DISCOVERED, to=state,
            set_={"reason": reason, "finished_at": self._clock(), **fields},
            other={"$addToSet": {"attempt_ids": add_attempt}} if add_attempt is not None else None)
        if done is None:
            return  # someone else moved it on (retracted): their state stands
        event = {CLIP_FAILED: "clip_failed", CLIP_REJECTED: "clip_rejected"}.get(state, "clip_duplicate")
        extra = {k: v for k, v in fields.items() if k == "duplicate_of"}
        log.info(event, clip_id=doc["_id"], goal_id=doc["goal_id"], reason=reason, **extra)
        if done.get("upload_keys"):
            await self._release(doc["_id"], list(done["upload_keys"]), unset=True)

    async def _release(self, clip_id: str, keys: list[str], *, unset: bool = False) -> None:
        """Delete uploaded objects that no storing clip references (content keys are shared)."""
        for key in keys:
            holders = await self._store.clips.count_documents({"blob_key": key, **HOLDS_BLOB},
                                                              limit=1)
            if holders:
                continue
            try:
                await delete_clip_objects(self._blobs, key)
            except Retryable:
                log.warning("orphan_blob_delete_failed", blob_key=key, exc_info=True)
                return  # keep upload_keys so the leftover stays findable
            log.info("orphan_blob_deleted", blob_key=key)
        if unset:
            await self._store.clips.update_one({"_id": clip_id}, {"$unset": {"upload_keys": ""}})
