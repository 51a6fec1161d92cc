"""Dedup stage: group copies of one clip among a goal's fingerprinted clips, keep the best of each.

Items are goal ids: dedup is scoped per goal (lesson 27) and compares every pair (lesson 19).
Download stores each clip's fingerprint; dedup only fingerprints clips stored without one (from
before that, read back from the blob store). It fails closed (lesson 18): a fingerprint failure
changes no state and deletes nothing, except that a clip whose fingerprinting timed out or broke
the pool `max_fingerprint_failures` times, or whose decode cost is above the cap, is kept
undeduplicated (`dedup_excluded` says why) so its goal still finishes.

Grouping (media/groups.py) does not depend on arrival order: every fingerprinted clip of the
goal takes part, duplicates included, and the grouping is a function of that set alone. Because
the rule is not monotone (a later clip can pull a copy into another group), a duplicate keeps its
blob (`blob_held`) while the goal can still regroup: a later run may keep it again ("kept
again"). Once the goal is over (done or failed) dedup releases the held blobs. So the kept set
after the last clip equals what one run over all the clips would keep, whatever the order.

Crash safety: fingerprints are stored before any state change, so a rerun regroups the same
clips identically. Per group the winner is written "kept" first, then each loser "duplicate"
(blob held), so a crash between leaves two kept copies until the rerun, never none. Release marks
a duplicate `releasing_at` (never kept again), deletes its object unless another holder shares
the content key, then clears the mark; deleting an already missing object is a no-op. A clip
marked `dropping_at` by an older footyd mid-delete may lack its blob, so it never wins.

A clip without a fingerprint whose blob is missing (a data problem no retry fixes) is set
"failed" (reason "blob missing") and the others are deduplicated; every other failure fails
the whole goal closed.
"""

from __future__ import annotations

import shutil
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import Counter, Histogram

from footyd.clients.blobs import BlobStore
from footyd.clients.store import AFTER, Store, StoreError
from footyd.clock import Clock, utcnow
from footyd.config import Config
from footyd.errors import DownloadFailed, Permanent, Retryable
from footyd.media.fingerprint import Fingerprint, fingerprint
from footyd.metrics import REGISTRY
from footyd.moves import delete_clip_objects, move_clip
from footyd.procpool import ProcessPool
from footyd.records import (
    CLIP_DOWNLOADED,
    CLIP_DUPLICATE,
    CLIP_FAILED,
    CLIP_HOLDS_BLOB,
    CLIP_KEPT,
    GOAL_CANCELLED,
    GOAL_DONE,
    GOAL_FAILED,
    HOLDS_BLOB,
    holds_blob,
)
from footyd.stages.dedup_rules import (
    ClipQuality,
    Evidence,
    loss_reason,
    match_and_group,
    pick_best,
)

log = structlog.get_logger(__name__)

DEDUP_RUNS = Counter("footyd_dedup_runs", "Dedup runs per goal by outcome.", ["outcome"],
                     registry=REGISTRY)
DEDUP_SECONDS = Histogram("footyd_dedup_seconds", "Wall time of one goal's dedup run.",
                          registry=REGISTRY)
CLIPS_DEDUPLICATED = Counter("footyd_clips_deduplicated", "Clip state changes made by dedup.",
                             ["result"], registry=REGISTRY)

GOAL_OVER = (GOAL_DONE, GOAL_FAILED)  # no clip can arrive: regrouping is over, blobs released
MATCH_TIMEOUT_S = 60.0  # comparing stored fingerprints: milliseconds per goal normally



def _print_of(doc: dict[str, Any]) -> Fingerprint | None:
    try:
        return Fingerprint.from_doc(doc["fingerprint"]) if doc.get("fingerprint") else None
    except (ValueError, KeyError, TypeError):
        return None  # an older doc version: fingerprint again


class DedupStage:
    """Groups a goal's downloaded and kept clips by fingerprint and keeps the best of each."""

    name = "dedup"

    def __init__(self, cfg: Config, store: Store, blobs: BlobStore, pool: ProcessPool, *,
                 clock: Clock = utcnow) -> None:
        self._cfg = cfg
        self._workers = cfg.dedup.workers
        self._store = store
        self._blobs = blobs
        self._pool = pool
        self._clock = clock

    def workers(self) -> int:
        return self._workers  # sized with the process pool: a restart changes it

    def apply_config(self, cfg: Config) -> None:
        self._cfg = cfg

    async def due(self, now: datetime, limit: int) -> list[str]:
        """Goals with a downloaded clip or a run cut before it finished (`dedup_pending`), not
        cancelled, or over (done, failed) with duplicates still holding blobs; whose retry time
        (if any) has come."""
        if limit <= 0:
            return []
        clips = self._store.clips
        fresh = await clips.distinct("goal_id", {"state": CLIP_DOWNLOADED})
        held = await clips.distinct("goal_id", {"state": CLIP_DUPLICATE, "blob_held": True})
        cursor = self._store.goals.find(
            {"$and": [{"$or": [{"_id": {"$in": fresh}, "state": {"$ne": GOAL_CANCELLED}},
                               {"dedup_pending": True, "state": {"$ne": GOAL_CANCELLED}},
                               {"_id": {"$in": held}, "state": {"$in": list(GOAL_OVER)}}]},
                      {"$or": [{"dedup_next_at": None}, {"dedup_next_at": {"$lte": now}}]}]},
            {"_id": 1}).sort("_id", 1).limit(limit)
        return [str(doc["_id"]) async for doc in cursor]

    async def handle(self, goal_id: str) -> None:
        started = time.monotonic()
        outcome = "error"
        try:
            with structlog.contextvars.bound_contextvars(goal_id=goal_id):
                outcome = await self._run(goal_id)
        finally:
            DEDUP_RUNS.labels(outcome).inc()
            DEDUP_SECONDS.observe(time.monotonic() - started)

    async def _run(self, goal_id: str) -> str:
        now = self._clock()
        goal = await self._store.goals.find_one({"_id": goal_id})
        if goal is None or goal.get("state") == GOAL_CANCELLED:
            return "skipped"
        next_at = goal.get("dedup_next_at")
        if next_at is not None and next_at > now:
            return "skipped"
        # duplicates take part through their fingerprints: grouping must not depend on order
        docs = await self._store.clips.find(
            {"goal_id": goal_id, "dedup_excluded": None, "$or": [
                {"state": {"$in": list(CLIP_HOLDS_BLOB)}},
                {"state": CLIP_DUPLICATE, "fingerprint": {"$ne": None}}]}).sort(
            [("stored_at", 1), ("_id", 1)]).to_list(None)
        if not goal.get("dedup_pending") and not any(d["state"] == CLIP_DOWNLOADED for d in docs):
            if goal.get("state") not in GOAL_OVER:
                return "idle"
            try:
                return await self._release(goal_id, now)
            except Retryable as exc:
                return await self._fail(goal_id, now, exc)
        scratch = self._cfg.download.scratch_dir / "dedup" / goal_id
        dc = self._cfg.dedup
        try:
            prints, missing = await self._fingerprints(docs, scratch, now)
            docs = [d for d in docs if d["_id"] in prints]
            keys = [str(d["_id"]) for d in docs]
            pairs, grouping = await self._pool.run(
                match_and_group, keys, [prints[d["_id"]] for d in docs],
                [ClipQuality.from_doc(d) for d in docs], max_hamming=dc.max_hamming,
                min_consecutive=dc.min_consecutive, min_match_s=dc.min_match_s,
                min_match_ratio=dc.min_match_ratio, min_match_coverage=dc.min_match_coverage,
                mirrored=dc.match_mirrored, crops=dc.match_crops, timeout_s=MATCH_TIMEOUT_S)
        except StoreError:
            raise
        except Exception as exc:  # fail closed on anything the media side throws (cv2 included)
            return await self._fail(goal_id, now, exc)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        for doc in missing:
            await self._mark_failed(doc, now)
        groups = grouping.groups
        evidence = Evidence(keys, pairs, grouping)
        duplicates = 0
        # a run cut between its first write and its last (SIGKILL, a dead MongoDB) can leave no
        # clip downloaded and a group with two kept copies: the marker keeps the goal due
        await self._store.goals.update_one({"_id": goal_id}, {"$set": {"dedup_pending": True}})
        try:
            for group in groups:
                duplicates += await self._settle([docs[i] for i in group], evidence, now)
        except Retryable as exc:  # the blob store failed mid-way: the markers make a rerun safe
            return await self._fail(goal_id, now, exc)
        await self._store.goals.update_one(
            {"_id": goal_id}, {"$unset": {"dedup_next_at": "", "dedup_error": "", "dedup_pending": ""},
                               "$set": {"deduped_at": now}})
        log.info("dedup_done", groups=len(groups), kept=len(groups), duplicates=duplicates,
                 missing=len(missing))
        return "done"

    async def _fail(self, goal_id: str, now: datetime, exc: Exception) -> str:
        await self._store.goals.update_one({"_id": goal_id}, {"$set": {
            "dedup_next_at": now + timedelta(seconds=self._cfg.dedup.retry_backoff_s),
            "dedup_error": f"{type(exc).__name__}: {exc}"[:500]}})
        log.warning("dedup_failed", error=type(exc).__name__, exc_info=True)
        return "failed"

    async def _fingerprints(self, docs: list[dict[str, Any]], scratch: Path, now: datetime
                            ) -> tuple[dict[str, Fingerprint], list[dict[str, Any]]]:
        """Stored or freshly computed fingerprints by clip id, and the clips whose blob is gone.

        Clips over the decode-cost cap, or failing in the pool too often, are excluded (kept
        undeduplicated). Any other failure raises (the caller fails closed); fingerprints
        computed so far stay stored, which changes no state and saves work on the retry.
        """
        prints: dict[str, Fingerprint] = {}
        missing: list[dict[str, Any]] = []
        dc = self._cfg.dedup
        for doc in docs:
            fp = _print_of(doc)
            if fp is not None:
                prints[doc["_id"]] = fp
                continue
            if doc["state"] == CLIP_DUPLICATE:
                continue  # an unreadable old fingerprint; its blob is gone, so it cannot join
            with structlog.contextvars.bound_contextvars(clip_id=doc["_id"]):
                path = scratch / f"{doc['_id']}.mp4"
                path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    if not doc.get("blob_key"):
                        raise Permanent("clip has no blob_key")
                    await self._blobs.get_file(doc["blob_key"], path)
                except Permanent:
                    log.warning("dedup_blob_missing", blob_key=doc.get("blob_key"))
                    missing.append(doc)
                    continue
                try:
                    fp = await self._pool.run(fingerprint, str(path), sample_fps=dc.reference_fps,
                                              max_megapixel_s=dc.max_decode_megapixel_s,
                                              timeout_s=dc.timeout_s)
                except DownloadFailed as exc:
                    if exc.kind != "filtered":
                        raise
                    await self._exclude(doc, now, exc.reason)
                    continue
                except Retryable as exc:
                    if await self._strike(doc, exc) < dc.max_fingerprint_failures:
                        raise
                    await self._exclude(doc, now, f"fingerprinting failed {dc.max_fingerprint_failures}"
                                                  f" times, last: {exc}")
                    continue
                finally:
                    path.unlink(missing_ok=True)
            await self._store.clips.update_one(
                {"_id": doc["_id"], "state": {"$in": list(CLIP_HOLDS_BLOB)}},
                {"$set": {"fingerprint": fp.to_doc()}})
            prints[doc["_id"]] = fp
        return prints, missing

    async def _strike(self, doc: dict[str, Any], exc: Exception) -> int:
        """Count one pool failure (timeout, dead worker) against the clip; the new count."""
        res = await self._store.clips.find_one_and_update(
            {"_id": doc["_id"]}, {"$inc": {"fingerprint_failures": 1},
                                  "$set": {"last_error": f"{type(exc).__name__}: {exc}"[:500]}},
            return_document=AFTER)
        return int((res or {}).get("fingerprint_failures") or 0)

    async def _exclude(self, doc: dict[str, Any], now: datetime, why: str) -> None:
        """Keep a clip without deduplicating it (fail safe: nothing is deleted), saying why."""
        if await move_clip(self._store, doc["_id"], from_=CLIP_HOLDS_BLOB, to=CLIP_KEPT,
                           set_={"kept_at": now, "dedup_excluded": why,
                                 "reason": f"kept without dedup: {why}"}):
            CLIPS_DEDUPLICATED.labels("excluded").inc()
            log.warning("clip_dedup_excluded", clip_id=doc["_id"], reason=why)

    async def _mark_failed(self, doc: dict[str, Any], now: datetime) -> None:
        # a stored clip without its blob is a data problem no retry fixes: make it visible
        if await move_clip(self._store, doc["_id"], from_=CLIP_HOLDS_BLOB, to=CLIP_FAILED,
                           where={"fingerprint": {"$exists": False}},
                           set_={"reason": "blob missing", "failed_at": now}):
            CLIPS_DEDUPLICATED.labels("failed").inc()

    async def _settle(self, members: list[dict[str, Any]], evidence: Evidence,
                      now: datetime) -> int:
        """Write one group's outcome: winner kept (a held duplicate is kept again), then each
        other blob holder becomes a duplicate holding its blob; earlier duplicates in the group
        point at the winner."""
        holders = [m for m in members if holds_blob(m) and not m.get("releasing_at")]
        if not holders:
            return 0  # only released duplicates (their kept copy left the goal): nothing to decide
        eligible = [m for m in holders if not m.get("dropping_at")]
        if not eligible:  # the run that marked them lost its winner meanwhile: check the blobs
            eligible = [m for m in holders
                        if m.get("blob_key") and await self._blobs.exists(m["blob_key"])]
        if not eligible:
            for m in holders:
                await move_clip(self._store, m["_id"], from_=m["state"], to=CLIP_FAILED,
                                set_={"reason": "blob missing", "failed_at": now},
                                unset=("blob_held",))
            return 0
        best = pick_best([ClipQuality.from_doc(m) for m in eligible])
        winner = next(m for m in members if m["_id"] == best.clip_id)
        if winner["state"] != CLIP_KEPT and not await self._keep(winner, now):
            log.warning("dedup_winner_changed", clip_id=winner["_id"])
            return 0  # someone else moved it: leave the losers for the next run
        duplicates = 0
        for loser in members:
            if loser is winner:
                continue
            if loser["state"] == CLIP_DUPLICATE:
                await self._repoint(loser, winner["_id"], evidence)
            else:
                duplicates += await self._drop(loser, winner, best, evidence, now)
        return duplicates

    async def _keep(self, winner: dict[str, Any], now: datetime) -> bool:
        """Downloaded -> kept, or a held duplicate kept again (its group changed)."""
        if winner["state"] == CLIP_DOWNLOADED:
            moved = await move_clip(self._store, winner["_id"], from_=CLIP_DOWNLOADED, to=CLIP_KEPT,
                                    set_={"kept_at": now}, unset=("dropping_at",))
            label = CLIP_KEPT
        else:
            moved = await move_clip(
                self._store, winner["_id"], from_=CLIP_DUPLICATE, to=CLIP_KEPT,
                where={"blob_held": True, "releasing_at": None},
                set_={"kept_at": now, "reason": "kept again: its group changed"},
                unset=("duplicate_of", "dedup_evidence", "blob_held"))
            label = "revived"
            if moved:
                log.info("clip_kept_again", clip_id=winner["_id"], was=winner.get("duplicate_of"))
        if moved:
            CLIPS_DEDUPLICATED.labels(label).inc()
        return moved is not None

    async def _repoint(self, dup: dict[str, Any], winner_id: str, evidence: Evidence) -> None:
        """An earlier duplicate now in a group kept by another clip points at that clip."""
        if dup.get("duplicate_of") == winner_id:
            return
        res = await self._store.clips.update_one(
            {"_id": dup["_id"], "state": CLIP_DUPLICATE},
            {"$set": {"duplicate_of": winner_id,
                      "dedup_evidence": evidence.of(dup["_id"], winner_id)}})
        if res.modified_count:
            log.info("clip_duplicate_repointed", clip_id=dup["_id"], duplicate_of=winner_id,
                     was=dup.get("duplicate_of"))

    async def _drop(self, loser: dict[str, Any], winner: dict[str, Any], best: ClipQuality,
                    evidence: Evidence, now: datetime) -> int:
        """Kept/downloaded -> duplicate of the winner. Its blob is held until the goal ends (a
        later clip can regroup it); one marked by an older footyd mid-delete loses it now."""
        lid, wid = loser["_id"], winner["_id"]
        clips = self._store.clips
        marked = bool(loser.get("dropping_at"))
        if marked and loser.get("blob_key") and loser["blob_key"] != winner.get("blob_key"):
            await delete_clip_objects(self._blobs, loser["blob_key"])
        proof = evidence.of(lid, wid)
        # offset: where the loser starts inside the winner (time in winner = time in loser + it)
        where = f" at offset {proof['offset_s']:+.1f}s"
        if proof.get("via"):
            where += " (matched through another copy)"
        why = "dropped by an earlier run" if marked else loss_reason(best, ClipQuality.from_doc(loser))
        moved = await move_clip(
            self._store, lid, from_=CLIP_HOLDS_BLOB, to=CLIP_DUPLICATE,
            set_={"duplicate_of": wid, "deduped_at": now, "dedup_evidence": proof,
                  "reason": f"same clip as {wid}{where}, {why}", "blob_held": not marked},
            unset=("dropping_at",))
        if moved:
            CLIPS_DEDUPLICATED.labels(CLIP_DUPLICATE).inc()
            log.info("clip_duplicate", clip_id=lid, duplicate_of=wid, reason=why)
        # earlier duplicates of a demoted winner now point at the clip that is kept
        await clips.update_many({"goal_id": loser["goal_id"], "state": CLIP_DUPLICATE,
                                 "duplicate_of": lid}, {"$set": {"duplicate_of": wid}})
        return int(moved is not None)

    async def _release(self, goal_id: str, now: datetime) -> str:
        """The goal is over: delete the blobs its duplicates held (mark, delete, unmark)."""
        clips = self._store.clips
        released = 0
        # only what releasing needs: a clip's fingerprint is its largest field
        async for dup in clips.find({"goal_id": goal_id, "state": CLIP_DUPLICATE,
                                     "blob_held": True}, {"releasing_at": 1, "blob_key": 1}):
            res = await clips.update_one(
                {"_id": dup["_id"], "state": CLIP_DUPLICATE, "blob_held": True},
                {"$set": {"releasing_at": dup.get("releasing_at") or now}})
            if not res.matched_count:
                continue
            key = dup.get("blob_key")
            # content-addressed keys: an identical copy may still need the object
            if key and not await clips.find_one(
                    {"blob_key": key, "_id": {"$ne": dup["_id"]}, **HOLDS_BLOB}, {"_id": 1}):
                await delete_clip_objects(self._blobs, key)
            await clips.update_one({"_id": dup["_id"], "state": CLIP_DUPLICATE},
                                   {"$set": {"blob_released_at": now},
                                    "$unset": {"blob_held": "", "releasing_at": ""}})
            released += 1
            CLIPS_DEDUPLICATED.labels("released").inc()
        log.info("dedup_duplicates_released", released=released)
        return "released"
