"""The real daemon delivers webhooks from its MongoDB outbox and resumes them after SIGKILL."""

from __future__ import annotations

import signal
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from footyd.clients.blobs import S3BlobStore
from footyd.clients.store import Store
from footyd.config import MongoConfig, StorageConfig
from tests.plugins.daemon import DaemonFactory, base_config, write_toml
from tests.plugins.notify import receiver, seed_events
from tests.plugins.servers import MongoServer, S3Server

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` skips it


def _world(mongo: MongoServer, s3: S3Server, tmp: Path
           ) -> tuple[dict[str, Any], Store, S3BlobStore]:
    """A daemon config on a fresh database and bucket, and (unopened) clients for both."""
    tree = base_config(mongo, s3, tmp, f"n_{uuid.uuid4().hex[:10]}")
    tree["search"] = {"due_scan_s": 0.2}
    return (tree, Store(MongoConfig.model_validate(tree["mongo"])),
            S3BlobStore(StorageConfig.model_validate(tree["storage"])))


async def test_deliveries_resume_after_sigkill_and_arrive_once_each(
        daemon_factory: DaemonFactory, mongo_server: MongoServer, s3_server: S3Server,
        tmp_path: Path) -> None:
    tree, store, blobs = _world(mongo_server, s3_server, tmp_path)
    async with store, blobs, receiver() as rx:
        ids = await seed_events(store, blobs, datetime.now(UTC), tmp_path)
        rx.default = 500
        tree["notify"] = {"webhooks": [{"url": rx.url("hook-TOKEN123"), "name": "main"}],
                          "backoff_base_s": 0.3, "backoff_max_s": 1.0}
        first = await daemon_factory(tree, name="first")
        # every event was written to the outbox and tried (and refused) before the crash
        await rx.wait(lambda: {r.event_id for r in rx.requests} == set(ids.values()), 60)
        first.kill_all()
        await first.wait_exit()
        pending = await store.notifications.find({}).to_list(None)
        assert len(pending) == len(ids) and all(d["state"] == "pending" for d in pending)
        assert all(d["attempts"] >= 1 for d in pending)

        rx.default = 200
        second = await daemon_factory(tree, name="second")
        await second.wait_log("notification_delivered", count=len(ids))
        await second.wait_log("pipeline_resumed")
        assert sorted(r.event_id for r in rx.ok("hook-TOKEN123")) == sorted(ids.values())
        delivered = await store.notifications.count_documents({"state": "delivered"})
        assert delivered == len(ids)
        for proc in (first, second):  # the URL carries a token: it is never logged
            assert "TOKEN123" not in "\n".join(proc.raw) + proc.stderr


async def test_a_webhook_added_by_sighup_gets_the_recent_events(
        daemon_factory: DaemonFactory, mongo_server: MongoServer, s3_server: S3Server,
        tmp_path: Path) -> None:
    tree, store, blobs = _world(mongo_server, s3_server, tmp_path)
    async with store, blobs, receiver() as rx:
        ids = await seed_events(store, blobs, datetime.now(UTC), tmp_path)
        proc = await daemon_factory(tree)
        await proc.wait_notify("READY=1")
        assert await store.notifications.count_documents({}) == 0  # no webhook, no outbox
        tree["notify"] = {"webhooks": [{"url": rx.url("late"), "name": "late",
                                        "events": ["clip_kept"]}]}
        write_toml(proc.config_path, tree)
        proc.send(signal.SIGHUP)
        line = await proc.wait_log("config_reloaded")
        assert "notify.webhooks" in line["changed"]
        await rx.wait(lambda: len(rx.ok("late")) == 2)
        assert sorted(r.event_id for r in rx.ok("late")) == sorted(
            ids[k] for k in ("kept_old", "kept_new"))
