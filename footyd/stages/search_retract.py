"""Retraction of a cancelled goal's clips (part of the search stage): blob first, then state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from prometheus_client import Counter

from footyd import records
from footyd.clients.blobs import BlobStore
from footyd.clients.store import Store
from footyd.errors import FootydError
from footyd.metrics import REGISTRY
from footyd.moves import delete_clip_objects, move_clip

log = structlog.get_logger(__name__)

RETRACT_PASSES = 3  # clips may change state under us (a download finishing): re-read a few times
ERROR_MAX_CHARS = 300
CLIPS_RETRACTED = Counter(
    "footyd_clips_retracted", "Clips retracted after their goal was cancelled, by blob action.",
    ["blob"], registry=REGISTRY,
)


async def _drop_unrecorded_uploads(store: Store, blobs: BlobStore, goal_id: str,
                                   clip: dict[str, Any], *, delete: bool) -> None:
    """Delete objects a crashed download uploaded but never recorded (`upload_keys`)."""
    if clip["state"] != records.CLIP_DISCOVERED:
        return
    for key in clip.get("upload_keys") or []:
        shared = await store.clips.find_one(
            {"goal_id": goal_id, "blob_key": key, "_id": {"$ne": clip["_id"]}}, {"_id": 1})
        if delete or shared is None:  # on_cancel=keep keeps only blobs a clip records
            await delete_clip_objects(blobs, key)


async def retract_goal(store: Store, blobs: BlobStore, goal: dict[str, Any], now: datetime, *,
                       delete: bool) -> None:
    """Retract every clip of a cancelled goal (blobs deleted when `delete`), then mark the goal."""
    goal_id = goal["_id"]
    clips = store.clips
    not_retracted = {"goal_id": goal_id, "state": {"$ne": records.CLIP_RETRACTED}}
    retracted = deleted = kept = 0
    for _ in range(RETRACT_PASSES):
        pending = [d async for d in clips.find(
            not_retracted, {"state": 1, "blob_key": 1, "upload_keys": 1, "blob_held": 1})]
        if not pending:
            break
        for clip in pending:
            holds = records.holds_blob(clip) and bool(clip.get("blob_key"))
            try:
                if holds and delete:
                    await delete_clip_objects(blobs, clip["blob_key"])
                await _drop_unrecorded_uploads(store, blobs, goal_id, clip, delete=delete)
            except FootydError as exc:
                # retracted_at stays unset, so the due scan tries again
                log.warning("clip_blob_delete_failed", clip_id=clip["_id"], error=str(exc))
                await store.goals.update_one(
                    {"_id": goal_id, "state": records.GOAL_CANCELLED},
                    {"$set": {"retract_error": str(exc)[:ERROR_MAX_CHARS]}})
                return
            moved = await move_clip(
                store, clip["_id"], from_=clip["state"], to=records.CLIP_RETRACTED,
                set_={"reason": "goal cancelled", "retracted_at": now,
                      "previous_state": clip["state"], "blob_deleted": holds and delete},
                unset=("blob_held",))
            if moved:
                retracted += 1
                blob = "deleted" if holds and delete else ("kept" if holds else "none")
                deleted += blob == "deleted"
                kept += blob == "kept"
                CLIPS_RETRACTED.labels(blob).inc()
    if await clips.find_one(not_retracted, {"_id": 1}) is not None:
        log.warning("goal_retract_incomplete")  # clips kept changing state; retried when due
        return
    await store.goals.update_one(
        {"_id": goal_id, "state": records.GOAL_CANCELLED, "retracted_at": None},
        {"$set": {"retracted_at": now, "next_search_at": None},
         "$unset": {"retract_error": ""}},
    )
    log.info("goal_clips_retracted", clips=retracted, blobs_deleted=deleted, blobs_kept=kept,
             on_cancel="delete" if delete else "keep")
