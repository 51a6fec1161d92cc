"""The daemon's heartbeat document: who runs, since when, quota, source health, last reload."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Any

import structlog

from footyd.build import git_commit, version
from footyd.clients.store import Store, StoreError
from footyd.clock import utcnow
from footyd.runtime import tasks

log = structlog.get_logger(__name__)

COLLECTION = "daemon"
DOC_ID = "heartbeat"  # the leader's (or a lone daemon's): what `footyd status` reports
REPLICA_PREFIX = "replica:"  # one more per replica, for the replica list


def doc_ids(doc: dict[str, Any]) -> list[str]:
    """Where a beat goes: its replica's document, and the main one when it leads."""
    ids = [DOC_ID] if doc.get("leader", True) else []
    if doc.get("replica"):
        ids.append(REPLICA_PREFIX + str(doc["replica"]))
    return ids



class Heartbeat:
    """Writes one document every `interval_s` (an owned task); marks it stopped on exit."""

    def __init__(self, store: Store, interval_s: float, stale_after_s: float,
                 fields: Callable[[], dict[str, Any]], *, clock: Callable[[], datetime] = utcnow
                 ) -> None:
        self._store = store
        self._interval_s = interval_s
        self._fields = fields
        self._clock = clock
        self._ticker = tasks.Ticker(self.beat, lambda: self._interval_s, "heartbeat")
        self._identity = {
            "version": version(), "commit": git_commit(), "host": socket.gethostname(),
            "pid": os.getpid(), "started_at": clock(), "interval_s": interval_s,
            "stale_after_s": stale_after_s,
        }

    async def __aenter__(self) -> Heartbeat:
        await self.beat()
        self._ticker.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._ticker.stop()
        await self.beat(stopped=True)

    async def beat(self, *, stopped: bool = False) -> None:
        """Write the document; a MongoDB outage is logged and the next beat tries again."""
        now = self._clock()
        try:
            doc = {**self._identity, **self._fields(), "beat_at": now,
                   "stopped_at": now if stopped else None}
            for doc_id in doc_ids(doc):
                await self._store.db[COLLECTION].update_one({"_id": doc_id}, {"$set": doc},
                                                            upsert=True)
        except StoreError as exc:
            log.warning("heartbeat_failed", error=type(exc).__name__)
        except Exception:
            log.error("heartbeat_failed", exc_info=True)  # a snapshot bug must not stop beating
