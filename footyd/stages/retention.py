"""Retention: delete completed fixtures older than `retention.days` with everything they own.

Crash-safe by order: the old fixtures are marked `retiring_at` first; then, per fixture, every
blob (those the clips name plus whatever is listed under the fixture's key prefix), then its
notifications, clips and goals, and the fixture document last. A crash anywhere leaves the
marked fixture in place, and the next run (daily, or `footyd retention`) finishes it first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from prometheus_client import Counter

from footyd.clients.blobs import BlobStore
from footyd.clients.store import Store
from footyd.clock import Clock, utcnow
from footyd.config import Config
from footyd.fence import UNFENCED, Fence
from footyd.metrics import REGISTRY

log = structlog.get_logger(__name__)

RETENTION_DELETED = Counter("footyd_retention_deleted", "What retention deleted, by kind.",
                            ["kind"], registry=REGISTRY)



@dataclass
class RetentionReport:
    """What a run deleted (or, on a dry run, would delete)."""

    dry_run: bool
    cutoff: str | None
    fixtures: list[int] = field(default_factory=list)
    resumed: list[int] = field(default_factory=list)  # marked by a run that did not finish
    goals: int = 0
    clips: int = 0
    notifications: int = 0
    objects: int = 0
    stale_uploads: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Retention:
    """Runs one retention pass over MongoDB and the blob store."""

    def __init__(self, cfg: Config, store: Store, blobs: BlobStore, *,
                 clock: Clock = utcnow, fence: Fence = UNFENCED) -> None:
        self._cfg = cfg
        self._fence = fence
        self._store = store
        self._blobs = blobs
        self._clock = clock

    async def run(self, *, dry_run: bool = False) -> RetentionReport:
        """Finish fixtures a crashed run marked, then retire those past the cutoff."""
        days = self._cfg.retention.days
        now = self._clock()
        cutoff = None if days is None else now - timedelta(days=days)
        report = RetentionReport(dry_run=dry_run, cutoff=cutoff.isoformat() if cutoff else None)
        fixtures = self._store.fixtures
        report.resumed = sorted(await fixtures.distinct("_id", {"retiring_at": {"$exists": True}}))
        if cutoff is not None:
            old = {"stage": "completed", "kickoff": {"$lt": cutoff},
                   "retiring_at": {"$exists": False}}
            report.fixtures = sorted(await fixtures.distinct("_id", old))
            if not dry_run and report.fixtures:
                self._fence.check()
                # marked first: from here on the fixture is going, whatever happens to this run
                await fixtures.update_many({**old, "_id": {"$in": report.fixtures}},
                                           {"$set": {"retiring_at": now}})
            report.stale_uploads = await self._blobs.abort_stale_uploads(
                self._cfg.retention.stale_upload_s, dry_run=dry_run)
        for fixture_id in report.resumed + report.fixtures:
            await self._retire(fixture_id, report, dry_run=dry_run)
        if report.fixtures or report.resumed or report.stale_uploads:
            log.info("retention_done", **report.as_dict())
        if not dry_run:
            for kind in ("goals", "clips", "notifications", "objects", "stale_uploads"):
                RETENTION_DELETED.labels(kind).inc(getattr(report, kind))
            RETENTION_DELETED.labels("fixtures").inc(len(report.fixtures) + len(report.resumed))
        return report

    async def _retire(self, fixture_id: int, report: RetentionReport, *, dry_run: bool) -> None:
        st = self._store
        goal_ids = await st.goals.distinct("_id", {"fixture_id": fixture_id})
        owned = {"$or": [{"fixture_id": fixture_id}, {"goal_id": {"$in": goal_ids}}]}
        keys = {doc["blob_key"] async for doc in st.clips.find(owned, {"blob_key": 1})
                if doc.get("blob_key")}
        # the trailing slash keeps fixture 12 from listing fixture 123's objects
        keys.update(await self._blobs.list_keys(self._blobs.key_for(str(fixture_id)) + "/"))
        report.objects += len(keys)
        if dry_run:
            report.notifications += await st.notifications.count_documents(owned)
            report.clips += await st.clips.count_documents(owned)
            report.goals += len(goal_ids)
            return
        self._fence.check()  # a paused ex-leader stops here; the new leader resumes the marked
        for key in sorted(keys):
            await self._blobs.delete(key)
        report.notifications += (await st.notifications.delete_many(owned)).deleted_count
        report.clips += (await st.clips.delete_many(owned)).deleted_count
        report.goals += (await st.goals.delete_many({"fixture_id": fixture_id})).deleted_count
        await st.fixtures.delete_one({"_id": fixture_id, "retiring_at": {"$exists": True}})
        log.info("fixture_retired", fixture_id=fixture_id, objects=len(keys))
