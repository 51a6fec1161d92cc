"""Pipeline claims and write fencing on a real MongoDB-wire server."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

import pytest

from footyd.clients.store import Store
from footyd.clock import utcnow
from footyd.fence import FIELD, Fenced
from footyd.pipeline import Pipeline, StageSpec
from footyd.runtime.claims import COLLECTION, Claims, claim_id
from footyd.runtime.lease import Lease, Replica

TTL_S = 3.0


def _claims(store: Store, name: str, pid: int = 10**7, ttl_s: float = TTL_S) -> Claims:
    return Claims(store, Replica(name, f"host-{name}", pid), ttl_s)


async def test_one_replica_at_a_time_holds_an_item_and_an_expired_claim_is_taken_over(
        store: Store) -> None:
    async with _claims(store, "a", ttl_s=TTL_S) as a, _claims(store, "b") as b:
        assert await a.take("dedup", "g1")
        assert await a.take("dedup", "g1")  # its own claim again: a renewal, not a refusal
        assert not await b.take("dedup", "g1")
        assert await b.take("download", "g1")  # another stage's item of the same id is free
        assert await b.held_elsewhere("dedup", ["g1", "g2"]) == {"g1"}
        assert await a.held_elsewhere("dedup", ["g1"]) == set()
        await a.release("dedup", "g1")
        assert await b.take("dedup", "g1")  # released: free at once
        # b dies holding it (no renewals): a takes it once the claim has expired
        await store.db[COLLECTION].update_one({"_id": claim_id("dedup", "g1")},
                                              {"$set": {"claim_expires_at": utcnow()}})
        assert await a.take("dedup", "g1") and not await b.take("dedup", "g1")


async def test_claims_are_renewed_while_held_and_freed_on_close(store: Store) -> None:
    a = _claims(store, "a", ttl_s=3.0)
    async with a:
        assert await a.take("search", "g1")
        first = (await store.db[COLLECTION].find_one({"_id": claim_id("search", "g1")}))
        assert first is not None
        await a.renew()
        later = await store.db[COLLECTION].find_one({"_id": claim_id("search", "g1")})
        assert later is not None and later["claim_expires_at"] > first["claim_expires_at"]
        assert a.held == 1
    # closing (after the drain) frees what the cut handlers held
    assert await store.db[COLLECTION].count_documents({}) == 0


async def test_a_restart_on_the_same_host_frees_its_dead_predecessors_claims(store: Store) -> None:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await proc.wait()
    me = Replica.here()
    late = utcnow() + timedelta(hours=1)
    await store.db[COLLECTION].insert_many([
        {"_id": claim_id("dedup", "g1"), "claimed_by": "crashed", "host": me.host, "pid": proc.pid,
         "claim_expires_at": late},
        {"_id": claim_id("dedup", "g2"), "claimed_by": "elsewhere", "host": "other-host",
         "pid": proc.pid, "claim_expires_at": late}])
    async with Claims(store, me, TTL_S) as claims:
        assert await claims.take("dedup", "g1")
        assert not await claims.take("dedup", "g2")  # a live claim on another host is waited out


async def test_the_pipeline_skips_an_item_another_replica_is_working_on(store: Store) -> None:
    handled: dict[str, list[str]] = {"a": [], "b": []}
    gate = asyncio.Event()
    seen = {"a": asyncio.Event(), "b": asyncio.Event()}  # a began "slow", b handled "free"

    def handler(name: str):  # type: ignore[no-untyped-def]
        async def handle(item_id: str) -> None:
            handled[name].append(item_id)
            if (name, item_id) in (("a", "slow"), ("b", "free")):
                seen[name].set()
            if item_id == "slow":
                await gate.wait()
        return handle

    async def due(_now: object, _limit: int) -> list[str]:
        return ["slow", "free"]

    async with _claims(store, "a") as ca, _claims(store, "b") as cb:
        pa = Pipeline([StageSpec("dedup", handler("a"), 2)], claims=ca)
        pb = Pipeline([StageSpec("dedup", handler("b"), 2, due=due)], claims=cb,
                      scan_interval_s=3600)
        async with pa:
            assert await pa.put("dedup", "slow")
            await asyncio.wait_for(seen["a"].wait(), 10)
            async with pb:  # its first due scan runs at once
                await asyncio.wait_for(seen["b"].wait(), 10)
                await pb.idle()
                # the due scan leaves out what a holds ...
                assert await pb.scan_once() == {"dedup": 1}
                # ... and a hand-off of it is refused at the claim
                assert await pb.put("dedup", "slow")
                await pb.idle()
                assert "slow" not in handled["b"] and handled["b"].count("free") == 2
                gate.set()
                await pa.idle()
    assert handled["a"] == ["slow"]
    assert await store.db[COLLECTION].count_documents({}) == 0  # every claim released


async def test_a_leader_that_lost_the_lease_cannot_overwrite_the_new_leaders_writes(
        store: Store) -> None:
    coll = store.db["fixtures"]
    await coll.insert_one({"_id": 1, "status": "1H"})
    async with Lease(store, 1.0, 0.25, Replica("old", "h-old", 10**7)) as old:
        assert old._ticker.task is not None
        old._ticker.task.cancel()  # frozen: it stops renewing
        stale_filter = old.guard({"_id": 1})
        stale_update = old.stamp({"$set": {"status": "1H-stale"}})
        await asyncio.sleep(1.0)
        new = Lease(store, 1.0, 0.25, Replica("new", "h-new", 10**7))
        await new.tick()
        assert new.held and new.epoch == old.epoch + 1
        await coll.update_one(new.guard({"_id": 1}), new.stamp({"$set": {"status": "2H"}}))
        # the old leader's local check refuses at once ...
        with pytest.raises(Fenced):
            old.check()
        # ... and a write that left before the pause still does not land over the new one
        result = await coll.update_one(stale_filter, stale_update)
        assert result.matched_count == 0
        doc = await coll.find_one({"_id": 1})
        assert doc is not None and doc["status"] == "2H" and doc[FIELD] == new.epoch
        # a document the new leader never wrote takes the old epoch's write (a fencing token
        # is checked where it is stored); the poll that made it was refused by check() above
        await coll.insert_one({"_id": 2, "status": "NS"})
        assert (await coll.update_one(stale_filter | {"_id": 2}, stale_update)).matched_count == 1
