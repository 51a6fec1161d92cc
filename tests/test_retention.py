"""Retention against the real MongoDB-wire server and S3 (moto): exactly the old data goes."""

from __future__ import annotations

import json
import os
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aioboto3
import pytest

from footyd.clients.blobs import S3BlobStore
from footyd.clients.store import Store
from footyd.config import Config, MongoConfig, StorageConfig
from footyd.errors import ExitCode, Retryable
from footyd.procpool import ProcessPool
from footyd.runtime.wiring import RETENTION_JOB, wire
from footyd.stages.retention import Retention
from tests.plugins.cli import run_footyd
from tests.plugins.daemon import write_toml

NOW = datetime.now(UTC)
# (stage, kickoff age in days); fixture 12 is old, 123 shares its key prefix and must survive
FIXTURES = {12: ("completed", 40), 13: ("completed", 40), 123: ("completed", 2),
            14: ("active", 40), 15: ("staging", 40)}
GONE = {12, 13}


def _cfg(days: int | None = 30, **retention: Any) -> Config:
    return Config.model_validate({"retention": {"days": days, **retention}})


async def _seed(store: Store, blobs: S3BlobStore, tmp: Path) -> None:
    src = tmp / "c.mp4"
    src.write_bytes(b"clip bytes")
    for fid, (stage, age_days) in FIXTURES.items():
        await store.fixtures.insert_one({"_id": fid, "stage": stage,
                                         "kickoff": NOW - timedelta(days=age_days)})
        for n in range(2):
            gid = f"g{fid}-{n}"
            await store.goals.insert_one({"_id": gid, "fixture_id": fid, "state": "done"})
            key = blobs.key_for(str(fid), gid, "kept.mp4")
            await blobs.put_file(key, src, content_type="video/mp4", metadata={})
            await store.clips.insert_one({"_id": f"c-{gid}", "goal_id": gid, "fixture_id": fid,
                                          "source_url": f"u{gid}", "state": "kept",
                                          "blob_key": key})
            await store.notifications.insert_one({
                "_id": f"n-{gid}", "event_id": f"goal_confirmed:{gid}", "webhook": "w",
                "goal_id": gid, "fixture_id": fid, "state": "delivered"})
        # an object no clip names (an interrupted upload's leftover) goes with its fixture
        await blobs.put_file(blobs.key_for(str(fid), "orphan.mp4"), src,
                             content_type="video/mp4", metadata={})


async def _survivors(store: Store, blobs: S3BlobStore) -> dict[str, set[Any]]:
    return {
        "fixtures": set(await store.fixtures.distinct("_id")),
        "goals": {int(g.split("-")[0][1:]) for g in await store.goals.distinct("_id")},
        "clips": set(await store.clips.distinct("fixture_id")),
        "notifications": set(await store.notifications.distinct("fixture_id")),
        "objects": {int(k.split("/")[1]) for k in await blobs.list_keys("")},
    }


KEPT = set(FIXTURES) - GONE


async def test_exactly_the_old_completed_fixtures_go_with_everything_they_own(
        store: Store, s3_store: S3BlobStore, tmp_path: Path) -> None:
    await _seed(store, s3_store, tmp_path)
    before = await _survivors(store, s3_store)
    dry = await Retention(_cfg(), store, s3_store, clock=lambda: NOW).run(dry_run=True)
    assert await _survivors(store, s3_store) == before  # a dry run deletes nothing
    report = await Retention(_cfg(), store, s3_store, clock=lambda: NOW).run()
    assert report.fixtures == dry.fixtures == sorted(GONE)
    assert (report.goals, report.clips, report.notifications, report.objects) == (4, 4, 4, 6)
    assert (dry.goals, dry.clips, dry.notifications, dry.objects) == (4, 4, 4, 6)
    assert await _survivors(store, s3_store) == {k: KEPT for k in before}
    again = await Retention(_cfg(), store, s3_store, clock=lambda: NOW).run()
    assert again.fixtures == [] and again.objects == 0


async def test_retention_off_deletes_nothing(store: Store, s3_store: S3BlobStore,
                                             tmp_path: Path) -> None:
    await _seed(store, s3_store, tmp_path)
    before = await _survivors(store, s3_store)
    report = await Retention(_cfg(None), store, s3_store, clock=lambda: NOW).run()
    assert report.fixtures == [] and await _survivors(store, s3_store) == before


class CrashingBlobs:
    """The real S3 store, failing after a number of deletes (a crash mid-run)."""

    def __init__(self, inner: S3BlobStore, deletes: int) -> None:
        self.inner, self.left = inner, deletes

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def delete(self, key: str) -> None:
        if self.left == 0:
            raise Retryable("S3 went away")
        self.left -= 1
        await self.inner.delete(key)


async def test_a_crash_mid_run_is_finished_by_the_next_run(
        store: Store, s3_store: S3BlobStore, tmp_path: Path) -> None:
    await _seed(store, s3_store, tmp_path)
    crashing = CrashingBlobs(s3_store, deletes=2)
    with pytest.raises(Retryable):
        await Retention(_cfg(), store, crashing, clock=lambda: NOW).run()  # type: ignore[arg-type]
    marked = await store.fixtures.distinct("_id", {"retiring_at": {"$exists": True}})
    assert sorted(marked) == sorted(GONE)  # marked before anything was deleted
    assert len(await s3_store.list_keys("")) == 3 * len(FIXTURES) - 2
    # the next run finishes the marked fixtures even once they are no longer "old"
    report = await Retention(_cfg(days=365), store, s3_store, clock=lambda: NOW).run()
    assert report.resumed == sorted(GONE) and report.fixtures == []
    assert await _survivors(store, s3_store) == {k: KEPT for k in
                                                ("fixtures", "goals", "clips", "notifications",
                                                 "objects")}


async def test_stale_multipart_uploads_are_aborted(s3_cfg: StorageConfig,
                                                   s3_store: S3BlobStore) -> None:
    session = aioboto3.Session()
    async with session.client("s3", endpoint_url=s3_cfg.endpoint_url, region_name=s3_cfg.region,
                              aws_access_key_id="testing", aws_secret_access_key="testing") as s3:
        await s3.create_multipart_upload(Bucket=s3_cfg.bucket, Key="clips/1/g/x.mp4")
        await s3.create_multipart_upload(Bucket=s3_cfg.bucket, Key="elsewhere/y.mp4")
        # another app's upload whose key merely starts with the prefix's letters
        await s3.create_multipart_upload(Bucket=s3_cfg.bucket, Key="clips-archive/z.mp4")
        listed = (await s3.list_multipart_uploads(Bucket=s3_cfg.bucket))["Uploads"]
        # moto reports a fixed 2010 start time: measure ages from what the server says
        age_s = (datetime.now(UTC) - min(u["Initiated"] for u in listed)).total_seconds()
        assert await s3_store.abort_stale_uploads(age_s + 3600) == 0  # younger than that
        assert await s3_store.abort_stale_uploads(0.001, dry_run=True) == 1
        assert await s3_store.abort_stale_uploads(0.001) == 1
        left = (await s3.list_multipart_uploads(Bucket=s3_cfg.bucket)).get("Uploads", [])
        # outside "clips/": not ours
        assert sorted(u["Key"] for u in left) == ["clips-archive/z.mp4", "elsewhere/y.mp4"]


async def test_cli_dry_run_prints_what_would_go(store: Store, s3_store: S3BlobStore,
                                                mongo_cfg: MongoConfig, s3_cfg: StorageConfig,
                                                tmp_path: Path) -> None:
    await _seed(store, s3_store, tmp_path)
    storage = json.loads(s3_cfg.model_dump_json())
    storage.update(access_key_id="testing", secret_access_key="testing")
    cfg_path = write_toml(tmp_path / "c.toml", {
        "mongo": {"uri": mongo_cfg.uri.get_secret_value(), "database": mongo_cfg.database},
        "storage": {k: v for k, v in storage.items() if v is not None},
        "retention": {"days": 30}})

    async def cli(*args: str) -> tuple[int, str, str]:
        return await run_footyd("retention", "-c", str(cfg_path), *args)

    code, out, err = await cli("--dry-run")
    assert code == ExitCode.OK, err
    shown = json.loads(out)
    assert shown["dry_run"] is True and shown["fixtures"] == sorted(GONE)
    assert await store.fixtures.count_documents({}) == len(FIXTURES)
    code, out, _ = await cli()
    assert code == ExitCode.OK and json.loads(out)["fixtures"] == sorted(GONE)
    assert set(await store.fixtures.distinct("_id")) == KEPT


async def test_cli_dry_run_writes_nothing_and_previews_with_days_while_retention_is_off(
        mongo_cfg: MongoConfig, tmp_path: Path) -> None:
    """Against a database and a local_dir that do not exist: no collection, no index, no
    directory appear; `--days N` previews even with retention off, which alone exits 78."""
    fresh_db = f"{mongo_cfg.database}_dry"
    local_dir = tmp_path / "never" / "blobs"
    cfg_path = write_toml(tmp_path / "c.toml", {
        "mongo": {"uri": mongo_cfg.uri.get_secret_value(), "database": fresh_db},
        "storage": {"kind": "local", "local_dir": str(local_dir)}})

    async def cli(*args: str) -> tuple[int, str, str]:
        return await run_footyd("retention", "-c", str(cfg_path), *args)

    code, _, err = await cli("--dry-run")
    assert code == ExitCode.CONFIG and "--days" in err
    code, out, err = await cli("--dry-run", "--days", "30")
    assert code == ExitCode.OK, err
    shown = json.loads(out)
    assert shown["dry_run"] is True and shown["fixtures"] == [] and shown["cutoff"]
    async with Store(mongo_cfg.model_copy(update={"database": fresh_db}), read_only=True) as st:
        assert await st.db.list_collection_names() == []
    assert not local_dir.exists() and not local_dir.parent.exists()
    code, _, err = await cli("--dry-run", "--days", "0")
    assert code == ExitCode.USAGE and "1 to 36500" in err


async def test_local_store_sweeps_only_stale_partial_writes(local_store: Any) -> None:
    root: Path = local_store.root
    (root / "clips" / "1").mkdir(parents=True)
    stale, fresh = root / "clips/1/a.mp4.tmp", root / "clips/1/b.mp4.tmp"
    # another app's files in local_dir, outside "clips/" (one under a look-alike name)
    (root / "other").mkdir()
    (root / "clips-archive").mkdir()
    theirs = [root / "other/job.tmp", root / "clips-archive/d.mp4.tmp", root / "x.mp4.tmp"]
    for p in (stale, fresh, root / "clips/1/c.mp4", *theirs):
        p.write_bytes(b"x")
    old = datetime.now(UTC).timestamp() - 3 * 86400
    for p in (stale, *theirs):
        os.utime(p, (old, old))
    assert await local_store.abort_stale_uploads(3600, dry_run=True) == 1 and stale.exists()
    assert await local_store.abort_stale_uploads(3600) == 1
    assert sorted(p.name for p in (root / "clips/1").iterdir()) == ["b.mp4.tmp", "c.mp4"]
    assert all(p.exists() for p in theirs)


async def test_the_daemon_wiring_runs_retention_daily_at_the_configured_time(
        store: Store, s3_store: S3BlobStore, tmp_path: Path) -> None:
    await _seed(store, s3_store, tmp_path)
    cfg = Config.model_validate({"retention": {"days": 30, "at": "04:15"},
                                 "download": {"scratch_dir": str(tmp_path / "scratch")}})
    pool = ProcessPool(1)
    try:
        async with AsyncExitStack() as stack:
            rt = await wire(stack, cfg, store=store, blobs=s3_store, pool=pool)
            job = rt.scheduler.sched.get_job(RETENTION_JOB)
            assert job is not None
            assert (job.next_run_time.hour, job.next_run_time.minute) == (4, 15)
            await job.func()  # what the scheduler calls at 04:15 UTC
            rt.apply_config(Config.model_validate({**cfg.model_dump(mode="json"),
                                                   "retention": {"days": 30, "at": "05:00"}}))
            job = rt.scheduler.sched.get_job(RETENTION_JOB)
            assert (job.next_run_time.hour, job.next_run_time.minute) == (5, 0)  # hot
    finally:
        pool.shutdown()
    assert set(await store.fixtures.distinct("_id")) == KEPT
