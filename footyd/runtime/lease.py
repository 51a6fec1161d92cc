"""Leader lease: the work that must happen once (ingest, polling, staging checks, feeds,
retention) runs on the one replica holding the lease document; the others stand by.

One document (`daemon/leader`: holder, epoch, expires_at) in MongoDB, the coordination engine:
the holder renews it every `lease_renew_s`; any replica takes it over once it has gone
`lease_ttl_s` without renewal, which raises `epoch`. A holder that cannot renew stops leading
when its own last renewal is `lease_ttl_s` old (measured on its monotonic clock), so two
replicas never both believe they lead for longer than the clocks' skew.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

import structlog
from prometheus_client import Counter, Gauge
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from footyd.clients.store import Store, StoreError
from footyd.clock import utcnow
from footyd.fence import Fenced, epoch_guard, epoch_stamp
from footyd.metrics import REGISTRY
from footyd.runtime import tasks

log = structlog.get_logger(__name__)

COLLECTION = "daemon"
DOC_ID = "leader"
LEADER = Gauge("footyd_leader", "1 while this replica holds the leader lease.", registry=REGISTRY)
LEADER_CHANGES = Counter("footyd_leader_changes", "Times this replica took or lost the lease.",
                         ["change"], registry=REGISTRY)


@dataclass(frozen=True)
class Replica:
    """Who this process is, unique among live replicas (a restart is a new replica)."""

    id: str
    host: str
    pid: int

    @classmethod
    def here(cls) -> Replica:
        host, pid = socket.gethostname(), os.getpid()
        return cls(f"{host}-{pid}-{secrets.token_hex(3)}", host, pid)


def holder_gone(doc: dict[str, Any], me: Replica) -> bool:
    """The holder ran on this host and its process is gone (a restart after a crash): its
    lease need not be waited out. Same host and same pid means it was us before (a container's
    pid 1), so it is gone too."""
    if doc.get("host") != me.host or doc.get("holder") == me.id:
        return False
    pid = doc.get("pid")
    if not isinstance(pid, int) or pid == me.pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


class Lease:
    """Hold, renew and hand over the leader lease (an owned task); `held` says whether to lead."""

    def __init__(self, store: Store, ttl_s: float, renew_s: float, me: Replica, *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._renew_s = renew_s
        self.me = me
        self._clock = clock
        self.epoch = 0
        self._valid_until = 0.0  # monotonic: leading past this without a renewal is unsafe
        self._ticker = tasks.Ticker(self.tick, lambda: self._renew_s, "leader-lease")
        self.on_elected: Callable[[], None] | None = None  # called when this replica takes over

    @property
    def held(self) -> bool:
        return self.epoch > 0 and time.monotonic() < self._valid_until

    # -- the Fence protocol (footyd/fence.py) for the writes made while leading ------------------
    def check(self) -> None:
        if not self.held:
            raise Fenced(f"replica {self.me.id} does not hold the leader lease (epoch {self.epoch})")

    def guard(self, flt: dict[str, Any]) -> dict[str, Any]:
        return epoch_guard(flt, self.epoch)

    def stamp(self, update: dict[str, Any]) -> dict[str, Any]:
        return epoch_stamp(update, self.epoch)

    async def __aenter__(self) -> Lease:
        await self.tick()
        self._ticker.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._ticker.stop()
        if self.held:  # hand over at once rather than after the TTL
            try:
                await self._coll.update_one({"_id": DOC_ID, "holder": self.me.id, "epoch": self.epoch},
                                            {"$set": {"expires_at": self._clock()}})
            except StoreError as exc:
                log.warning("leader_release_failed", error=type(exc).__name__)
        self._lose("stopped")

    @property
    def _coll(self) -> Any:
        return self._store.db[COLLECTION]

    async def tick(self) -> None:
        """Renew the lease, or take it over when it lapsed; a MongoDB outage is logged."""
        started = time.monotonic()
        try:
            epoch = await self._renew() if self.epoch else 0
            epoch = epoch or await self._take()
        except StoreError as exc:
            log.warning("leader_lease_failed", error=type(exc).__name__)
            if self.epoch and not self.held:
                self._lose("lease not renewed within its TTL")
            return
        if epoch:
            elected = epoch != self.epoch
            self.epoch = epoch
            self._valid_until = started + self._ttl_s
            LEADER.set(1)
            if elected:
                log.info("leader_elected", replica=self.me.id, epoch=epoch)
                LEADER_CHANGES.labels("took").inc()
                if self.on_elected is not None:
                    self.on_elected()
        elif self.epoch:
            self._lose("another replica holds the lease")

    def _lose(self, why: str) -> None:
        if self.epoch:
            log.warning("leader_lost", replica=self.me.id, epoch=self.epoch, reason=why)
            LEADER_CHANGES.labels("lost").inc()
        self.epoch = 0
        LEADER.set(0)

    def _fields(self, now: datetime) -> dict[str, Any]:
        return {"holder": self.me.id, "host": self.me.host, "pid": self.me.pid,
                "expires_at": now + timedelta(seconds=self._ttl_s), "renewed_at": now}

    async def _renew(self) -> int:
        now = self._clock()
        result = await self._coll.update_one({"_id": DOC_ID, "holder": self.me.id, "epoch": self.epoch},
                                             {"$set": self._fields(now)})
        return self.epoch if result.matched_count else 0

    async def _take(self) -> int:
        """Take a lapsed (or missing, or crashed-here) lease; its new epoch, or 0."""
        now = self._clock()
        doc = await self._coll.find_one({"_id": DOC_ID})
        if doc is None:
            try:
                await self._coll.insert_one({"_id": DOC_ID, "epoch": 1, **self._fields(now)})
                return 1
            except DuplicateKeyError:  # another replica was quicker
                return 0
        lapsed = doc.get("expires_at") is None or doc["expires_at"] <= now or holder_gone(doc, self.me)
        if not lapsed:
            return 0
        taken = await self._coll.find_one_and_update(
            {"_id": DOC_ID, "epoch": doc.get("epoch", 0), "holder": doc.get("holder")},
            {"$set": self._fields(now), "$inc": {"epoch": 1}},
            return_document=ReturnDocument.AFTER)
        return int(taken["epoch"]) if taken is not None else 0
