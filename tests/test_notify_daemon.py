"""The real daemon delivers webhooks from its MongoDB outbox and resumes them after SIGKILL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from footyd.clients.blobs import S3BlobStore
from footyd.clients.store import Store
from footyd.config import MongoConfig, StorageConfig
from tests.plugins.daemon import DaemonFactory, base_config
from tests.plugins.notify import receiver, seed_events
from tests.plugins.servers import MongoServer, S3Server


async def test_deliveries_resume_after_sigkill_and_arrive_once_each(
        daemon_factory: DaemonFactory, mongo_server: MongoServer, s3_server: S3Server,
        tmp_path: Path) -> None:
    tree = base_config(mongo_server, s3_server, tmp_path, f"n_{uuid.uuid4().hex[:10]}")
    tree["search"] = {"due_scan_s": 0.2}
    store = Store(MongoConfig.model_validate(tree["mongo"]))
    blobs = S3BlobStore(StorageConfig.model_validate(tree["storage"]))
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
