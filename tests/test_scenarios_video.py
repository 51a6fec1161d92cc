"""The real daemon (subprocess) through the video pipeline: SIGKILL mid-download and mid-dedup,
SIGTERM with downloads in flight. MongoDB is the queue of record: a restart converges."""

from __future__ import annotations

import signal
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from footyd.clients.blobs import S3BlobStore
from footyd.clients.store import Store
from footyd.config import MongoConfig, StorageConfig
from footyd.errors import ExitCode
from footyd.runtime.scratch import LOCK, MARKER
from footyd.sim.clips import ClipHost
from tests.plugins.clips import ClipHostFactory
from tests.plugins.daemon import DaemonFactory, DaemonProcess, base_config
from tests.plugins.servers import MongoServer, S3Server

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` skips it

GOAL_ID = "g-scenario"


@pytest.fixture
def tree(mongo_server: MongoServer, s3_server: S3Server, tmp_path: Path) -> dict[str, Any]:
    return base_config(mongo_server, s3_server, tmp_path, f"v_{uuid.uuid4().hex[:10]}")


async def _setup(tree: dict[str, Any], factory: ClipHostFactory, **download: Any
                 ) -> tuple[ClipHost, Store, S3BlobStore]:
    host = await factory("demo", clock=lambda: datetime.now(UTC))
    now = datetime.now(UTC)
    host.goal_at("demo-1", now - timedelta(minutes=10))  # every candidate is out already
    tree["search"] = {"sources": ["fake"], "attempts": 2, "interval_s": 1.0, "schedule": [],
                      "due_scan_s": 0.2}
    tree["sources"] = {"fake": {"base_url": host.base_url}}
    tree["download"].update({"max_size_mb": 20, "timeout_s": 3.0, "socket_timeout_s": 1.0,
                             "max_attempts": 1, **download})
    tree["shutdown"] = {"intake_s": 1, "search_s": 1, "download_s": 2, "dedup_s": 5, "close_s": 2}
    store = Store(MongoConfig.model_validate({"uri": tree["mongo"]["uri"],
                                              "database": tree["mongo"]["database"]}))
    await store.__aenter__()
    await store.goals.insert_one({
        "_id": GOAL_ID, "fixture_id": 9, "league_id": 78, "kickoff": now, "team_id": 168,
        "team_name": "Bayer Leverkusen", "opponent_id": 157, "opponent_name": "Bayern Munich",
        "elapsed": 23, "extra": None, "minute": 23, "scorer_id": 1, "scorer_name": "Florian Wirtz",
        "assist_name": None, "detail": "Normal Goal", "score_home": 1, "score_away": 0,
        "state": "confirmed", "first_seen_at": now - timedelta(minutes=10), "confirmed_at": now,
        "next_search_at": now, "search_attempt_ids": [],
    })
    blobs = S3BlobStore(StorageConfig.model_validate({**tree["storage"], "create_bucket": True}))
    await blobs.__aenter__()
    return host, store, blobs


async def _close(store: Store, blobs: S3BlobStore) -> None:
    await store.__aexit__(None, None, None)
    await blobs.__aexit__(None, None, None)


def _scratch_files(scratch: Path) -> list[Path]:
    return [p for p in scratch.rglob("*") if p.is_file() and p.name not in (MARKER, LOCK)]


async def _until_done(proc: DaemonProcess) -> dict[str, Any]:
    """The goal is over: search done, then its duplicates' held objects released by dedup."""
    done = await proc.wait_log("goal_search_done", timeout_s=90)
    await proc.wait_log("dedup_duplicates_released", timeout_s=90,
                        where=lambda ln: ln.get("goal_id") == GOAL_ID)
    return done


async def _assert_converged(store: Store, blobs: S3BlobStore) -> None:
    goal = await store.goals.find_one({"_id": GOAL_ID})
    assert goal is not None and goal["state"] == "done" and goal["outcome"] == "clips_kept"
    clips = [c async for c in store.clips.find({"goal_id": GOAL_ID})]
    urls = [c["source_url"] for c in clips]
    assert len(urls) == len(set(urls))  # no duplicate clip documents
    kept = [c for c in clips if c["state"] == "kept"]
    names = sorted((c["media_url"] or c["post_url"]).rsplit("/", 1)[-1] for c in kept)
    assert names == ["a_720p.mp4", "b_540p.mp4"]
    # no orphaned object: exactly the kept clips' blobs are in the bucket
    assert sorted(await blobs.list_keys("")) == sorted(
        k for c in kept for k in (c["blob_key"], c.get("poster_key")) if k)
    assert all(c["state"] in ("kept", "duplicate", "rejected", "failed") for c in clips)


async def test_sigkill_mid_download_then_restart_converges(
    daemon_factory: DaemonFactory, clip_host_factory: ClipHostFactory, tree: dict[str, Any],
) -> None:
    host, store, blobs = await _setup(tree, clip_host_factory)
    try:
        first = await daemon_factory(tree, name="first")
        await host.wait_hit("slow")  # a download is stalled in flight right now
        first.kill_all()
        assert await first.wait_exit() == -signal.SIGKILL
        second = await daemon_factory(tree, name="second")
        resumed = await second.wait_log("pipeline_resumed")
        assert sum(resumed["queued"].values()) >= 1
        await _until_done(second)
        second.send(signal.SIGTERM)
        assert await second.wait_exit() == ExitCode.OK, second.tail()
        await _assert_converged(store, blobs)
        assert _scratch_files(Path(tree["download"]["scratch_dir"])) == []
    finally:
        await _close(store, blobs)


async def test_sigkill_mid_dedup_then_restart_converges(
    daemon_factory: DaemonFactory, clip_host_factory: ClipHostFactory, tree: dict[str, Any],
) -> None:
    _host, store, blobs = await _setup(tree, clip_host_factory)
    try:
        first = await daemon_factory(tree, name="first")
        await first.wait_log("clip_duplicate",
                             where=lambda ln: "lower" in str(ln.get("reason")) or "shorter" in
                             str(ln.get("reason")))
        first.kill_all()
        assert await first.wait_exit() == -signal.SIGKILL
        second = await daemon_factory(tree, name="second")
        await _until_done(second)
        second.send(signal.SIGTERM)
        assert await second.wait_exit() == ExitCode.OK, second.tail()
        await _assert_converged(store, blobs)
    finally:
        await _close(store, blobs)


async def test_sigterm_with_downloads_in_flight_drains_within_budget(
    daemon_factory: DaemonFactory, clip_host_factory: ClipHostFactory, tree: dict[str, Any],
) -> None:
    host, store, blobs = await _setup(tree, clip_host_factory, timeout_s=60.0,
                                      socket_timeout_s=60.0)
    try:
        proc = await daemon_factory(tree)
        await host.wait_hit("slow")
        started = time.monotonic()
        proc.send(signal.SIGTERM)
        assert await proc.wait_exit() == ExitCode.OK, proc.tail()
        took = time.monotonic() - started
        assert took < 11 + 5, f"drain took {took:.1f}s for a budget of 11s"
        drained = {ln["stage"]: ln for ln in proc.events("stage_drained")}
        assert drained["download"]["left"] >= 1  # the stalled download was cut at its budget
        slow = await store.clips.find_one({"goal_id": GOAL_ID, "media_url": host.media_url("slow")})
        assert slow is not None and slow["state"] == "discovered"  # left for the next start
    finally:
        await _close(store, blobs)
