"""Objects uploaded by a clip that a kill left unreleased are found and deleted at startup."""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

from footyd import records
from footyd.clients.blobs import S3BlobStore
from footyd.clients.store import Store
from footyd.config import Config
from footyd.procpool import ProcessPool
from footyd.runtime.wiring import wire

T0 = datetime(2026, 3, 14, 15, tzinfo=UTC)


async def test_clip_lookups_by_blob_key_and_upload_keys_are_indexed(store: Store) -> None:
    keys = [list(ix["key"]) for ix in (await store.clips.index_information()).values()]
    assert [("blob_key", 1)] in [[tuple(k) for k in key] for key in keys]
    assert [("upload_keys", 1)] in [[tuple(k) for k in key] for key in keys]


async def _object(blobs: S3BlobStore, tmp_path: Path, name: str) -> str:
    key = blobs.key_for("9", "g1", name)
    src = tmp_path / name
    src.write_bytes(name.encode() * 100)
    await blobs.put_file(key, src, content_type="video/mp4", metadata={})
    return key


async def test_startup_deletes_objects_a_kill_left_between_upload_and_release(
    store: Store, s3_store: S3BlobStore, tmp_path: Path
) -> None:
    # SIGKILL after the upload landed, after the retraction pass marked the clip (and the goal)
    # retracted, before the download released its upload: nothing would look at it again
    orphan = await _object(s3_store, tmp_path, "orphan.mp4")
    shared = await _object(s3_store, tmp_path, "shared.mp4")
    pending = await _object(s3_store, tmp_path, "pending.mp4")
    await store.goals.insert_one({"_id": "g1", "fixture_id": 9, "state": records.GOAL_CANCELLED,
                                  "retracted_at": T0})
    await store.clips.insert_many([
        {"_id": "c1", "goal_id": "g1", "source_url": "u1", "state": records.CLIP_RETRACTED,
         "upload_keys": [orphan], "retracted_at": T0},
        # a failed clip whose (content-addressed) upload another clip of the goal now holds
        {"_id": "c2", "goal_id": "g1", "source_url": "u2", "state": records.CLIP_FAILED,
         "upload_keys": [shared]},
        {"_id": "c3", "goal_id": "g1", "source_url": "u3", "state": records.CLIP_KEPT,
         "blob_key": shared, "sha256": "s3"},
        # still downloading at the next start: the download stage owns its intent
        {"_id": "c4", "goal_id": "g1", "source_url": "u4", "state": records.CLIP_DISCOVERED,
         "upload_keys": [pending]},
    ])
    cfg = Config.model_validate({"download": {"scratch_dir": str(tmp_path / "scratch")}})
    async with AsyncExitStack() as stack:
        pool = ProcessPool(1)
        stack.callback(pool.shutdown)
        await wire(stack, cfg, store=store, blobs=s3_store, pool=pool)
    assert not await s3_store.exists(orphan)
    assert await s3_store.exists(shared) and await s3_store.exists(pending)
    left = {d["_id"]: d.get("upload_keys") async for d in store.clips.find({}, {"upload_keys": 1})}
    assert left == {"c1": None, "c2": None, "c3": None, "c4": [pending]}
