"""Claims: one replica at a time works a pipeline item (a goal's search or dedup, a clip's
download, a webhook delivery), whichever replica's due scan or hand-off reached it first.

One document per claimed item in `claims` (`_id` = "stage:item", `claimed_by`,
`claim_expires_at`), taken with one guarded upsert: it matches only a claim that is ours or has
expired, so a live claim of another replica makes the upsert collide on `_id` and the take
fails. The holder renews its claims every `claim_ttl_s / 3` and deletes each one when the
handler returns; a replica that dies leaves claims that any replica takes once they expire (or
at once, when a restart on the same host finds their process gone). Handlers stay idempotent:
a claim decides who works an item now, the item's state in MongoDB still decides what is left.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

import structlog
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from footyd.clients.store import Store, StoreError
from footyd.clock import utcnow
from footyd.runtime import tasks
from footyd.runtime.lease import Replica, holder_gone

log = structlog.get_logger(__name__)

COLLECTION = "claims"


def claim_id(stage: str, item_id: str) -> str:
    return f"{stage}:{item_id}"


class Claims:
    """Take, renew and release this replica's claims (the renewal is an owned task)."""

    def __init__(self, store: Store, me: Replica, ttl_s: float, *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._store = store
        self.me = me
        self._ttl_s = ttl_s
        self._clock = clock
        self._held: set[str] = set()
        self._ticker = tasks.Ticker(self._renew_step, lambda: self._ttl_s / 3, "claims-renew")

    @property
    def held(self) -> int:
        return len(self._held)

    @property
    def _coll(self) -> Any:
        return self._store.db[COLLECTION]

    async def __aenter__(self) -> Claims:
        await self._free_dead_here()
        self._ticker.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._ticker.stop()
        if self._held:  # work cut by the drain: free it for the others now, not after the TTL
            try:
                await self._coll.delete_many({"_id": {"$in": sorted(self._held)},
                                              "claimed_by": self.me.id})
            except StoreError as exc:
                log.warning("claims_release_failed", claims=len(self._held),
                            error=type(exc).__name__)
            self._held.clear()

    async def take(self, stage: str, item_id: str) -> bool:
        """Claim an item for this replica; False while another replica's claim is live."""
        cid = claim_id(stage, item_id)
        now = self._clock()
        try:
            await self._coll.find_one_and_update(
                {"_id": cid, "$or": [{"claimed_by": self.me.id}, {"claim_expires_at": {"$lte": now}}]},
                {"$set": {"stage": stage, "item": item_id, "claimed_by": self.me.id,
                          "host": self.me.host, "pid": self.me.pid, "claimed_at": now,
                          "claim_expires_at": now + timedelta(seconds=self._ttl_s)}},
                upsert=True, return_document=ReturnDocument.AFTER)
        except DuplicateKeyError:
            return False
        self._held.add(cid)
        return True

    async def release(self, stage: str, item_id: str) -> None:
        """Free an item's claim (the handler returned); an outage leaves it to expire."""
        cid = claim_id(stage, item_id)
        self._held.discard(cid)  # never renewed again, whatever happens to the delete
        try:
            await self._coll.delete_one({"_id": cid, "claimed_by": self.me.id})
        except StoreError as exc:
            log.warning("claim_release_failed", claim=cid, error=type(exc).__name__)

    async def held_elsewhere(self, stage: str, item_ids: Iterable[str]) -> set[str]:
        """The items among `item_ids` another replica's live claim holds now."""
        ids = [claim_id(stage, i) for i in item_ids]
        if not ids:
            return set()
        cursor = self._coll.find({"_id": {"$in": ids}, "claimed_by": {"$ne": self.me.id},
                                  "claim_expires_at": {"$gt": self._clock()}}, {"item": 1})
        return {str(doc["item"]) async for doc in cursor}

    async def renew(self) -> None:
        """Push the expiry of every claim this replica holds; one it lost is dropped."""
        if not self._held:
            return
        ids = sorted(self._held)
        expires = self._clock() + timedelta(seconds=self._ttl_s)
        await self._coll.update_many({"_id": {"$in": ids}, "claimed_by": self.me.id},
                                     {"$set": {"claim_expires_at": expires}})

    async def _renew_step(self) -> None:
        try:
            await self.renew()
        except StoreError as exc:  # the claims may lapse; the handlers' writes stay idempotent
            log.warning("claims_renew_failed", claims=len(self._held), error=type(exc).__name__)

    async def _free_dead_here(self) -> None:
        """Delete the claims of replicas that ran on this host and are gone (a crash, then this
        restart): their work resumes now rather than after the TTL."""
        try:
            dead = [doc["_id"] async for doc in self._coll.find(
                {"host": self.me.host, "claimed_by": {"$ne": self.me.id}},
                {"claimed_by": 1, "host": 1, "pid": 1}) if holder_gone(_as_holder(doc), self.me)]
            if dead:
                await self._coll.delete_many({"_id": {"$in": dead}})
                log.info("claims_freed", claims=len(dead), reason="holder gone")
        except StoreError as exc:  # they expire on their own
            log.warning("claims_free_failed", error=type(exc).__name__)


def _as_holder(doc: dict[str, Any]) -> dict[str, Any]:
    return {"holder": doc.get("claimed_by"), "host": doc.get("host"), "pid": doc.get("pid")}
