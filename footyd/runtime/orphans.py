"""Startup sweep: objects a clip uploaded but, killed before releasing them, never recorded.

A download writes its intent (`upload_keys`) before uploading and releases it after the state
write; a retraction pass or a terminal state written in between, followed by a SIGKILL, leaves
the clip terminal with the key still listed and nothing that would look at it again. At startup
nothing of this replica is in flight, so every terminal clip still listing keys is a leftover,
unless another replica's live download claim says that clip is being worked on right now.
"""

from __future__ import annotations

import structlog

from footyd import records
from footyd.clients.blobs import BlobStore
from footyd.clients.store import Store
from footyd.moves import delete_clip_objects
from footyd.pipeline import ClaimGate
from footyd.stages.download import DownloadStage

log = structlog.get_logger(__name__)

BATCH = 200


async def release_leftover_uploads(store: Store, blobs: BlobStore,
                                   claims: ClaimGate | None = None) -> int:
    """Delete unreferenced leftover objects and clear the intent; returns objects deleted."""
    clips = store.clips
    leftover = {"state": {"$ne": records.CLIP_DISCOVERED}, "upload_keys.0": {"$exists": True}}
    deleted = 0
    docs = await clips.find(leftover, {"upload_keys": 1}).limit(BATCH).to_list(None)
    busy = await claims.held_elsewhere(DownloadStage.name, [d["_id"] for d in docs]) if claims else set()
    for doc in docs:
        if doc["_id"] in busy:
            continue
        for key in doc["upload_keys"]:
            # a storing clip owns the object; a downloading one still owns its intent
            holder = await clips.find_one(
                {"$or": [{"blob_key": key, "state": {"$in": list(records.CLIP_HOLDS_BLOB)}},
                         {"blob_key": key, "state": records.CLIP_DUPLICATE, "blob_held": True},
                         {"upload_keys": key, "state": records.CLIP_DISCOVERED}]}, {"_id": 1})
            if holder is None:
                await delete_clip_objects(blobs, key)
                deleted += 1
                log.info("orphan_blob_deleted", blob_key=key, clip_id=doc["_id"], reason="leftover")
        await clips.update_one({"_id": doc["_id"], "upload_keys": doc["upload_keys"]},
                               {"$unset": {"upload_keys": ""}})
    return deleted
