"""The leader lease on a real MongoDB-wire server: one holder, takeover after the TTL, hand-over."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

import pytest
from pydantic import ValidationError

from footyd.clients.store import Store
from footyd.clock import utcnow
from footyd.config.models import ReplicasConfig
from footyd.runtime.lease import COLLECTION, DOC_ID, Lease, Replica

TTL_S, RENEW_S = 1.0, 0.25


def _lease(store: Store, name: str, pid: int = 10**7) -> Lease:
    return Lease(store, TTL_S, RENEW_S, Replica(name, f"host-{name}", pid))


async def _holder(store: Store) -> tuple[str, int]:
    doc = await store.db[COLLECTION].find_one({"_id": DOC_ID})
    assert doc is not None
    return doc["holder"], doc["epoch"]


async def test_one_replica_leads_and_a_standby_takes_over_a_lapsed_lease(store: Store) -> None:
    async with _lease(store, "a") as a, _lease(store, "b") as b:
        assert a.held and not b.held and await _holder(store) == ("a", 1)
        await b.tick()  # a renews on time: b stays standby
        assert not b.held
        # a stops renewing (its host froze): after the TTL, b takes over with a new epoch
        assert a._ticker.task is not None
        a._ticker.task.cancel()
        await asyncio.gather(a._ticker.task, return_exceptions=True)
        await asyncio.sleep(TTL_S)  # the lease's own clock: the TTL has to pass
        assert not a.held  # a stops believing it leads once its last renewal is TTL old
        await b.tick()
        assert b.held and await _holder(store) == ("b", 2)
        await a.tick()  # a wakes up: its renewal carries the old epoch and fails
        assert not a.held and a.epoch == 0
        assert await _holder(store) == ("b", 2)


async def test_a_stopping_leader_hands_over_at_once(store: Store) -> None:
    b = _lease(store, "b")
    async with _lease(store, "a") as a:
        async with b:
            assert a.held and not b.held
        await b.tick()  # b is out: nothing changes
    # a stopped and released: a new replica leads without waiting out the TTL
    c = _lease(store, "c")
    await c.tick()
    assert c.held and await _holder(store) == ("c", 2)


async def test_a_restart_on_the_same_host_takes_its_dead_predecessors_lease(store: Store) -> None:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await proc.wait()  # a pid that was live a moment ago and is gone now
    me = Replica.here()
    await store.db[COLLECTION].insert_one({
        "_id": DOC_ID, "holder": "crashed", "host": me.host, "pid": proc.pid,
        "epoch": 4, "expires_at": utcnow() + timedelta(hours=1)})
    lease = Lease(store, TTL_S, RENEW_S, me)
    await lease.tick()
    assert lease.held and lease.epoch == 5
    # a live holder on another host is waited out
    other = _lease(store, "other")
    await other.tick()
    assert not other.held


def test_a_renewal_slower_than_half_the_ttl_is_refused() -> None:
    with pytest.raises(ValidationError, match="at most half of lease_ttl_s"):
        ReplicasConfig(lease_ttl_s=4.0, lease_renew_s=3.0)
    assert ReplicasConfig().lease_renew_s * 2 <= ReplicasConfig().lease_ttl_s
