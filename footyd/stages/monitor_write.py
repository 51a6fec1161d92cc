"""The monitor's fixture writes: only what changed, one bulk write per answer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from footyd.clients.football import Fixture
from footyd.clients.store import Store, UpdateMany, UpdateOne, bson_size
from footyd.fence import Fence
from footyd.records import fixture_fields, poll_hash, raw_json
from footyd.stages import rules

# what the monitor reads back before deciding (the stored hash stands for everything else)
FIXTURE_PROJECTION = {"stage": 1, "kickoff": 1, "status": 1, "terminal_since": 1,
                      "poll_hash": 1}


class FixtureWrites:
    """Collects one answer's fixture updates; unchanged fixtures only get `last_polled_at`."""

    def __init__(self, now: datetime, *, keep_raw: bool) -> None:
        self._now = now
        self._keep_raw = keep_raw
        self._ops: list[tuple[dict[str, Any], dict[str, Any]]] = []  # filter, update
        self._unchanged: list[int] = []
        self.bytes = 0

    def add(self, fx: Fixture, doc: dict[str, Any]) -> dict[str, Any]:
        """Queue `fx`'s update if its used fields or events changed; return the doc as updated."""
        fields = fixture_fields(fx)
        finished = rules.classify_status(fx.status_short) == "finished"
        terminal_since = (doc.get("terminal_since") or self._now) if finished else None
        digest = poll_hash(fields, fx.events)
        merged = {**doc, **fields, "terminal_since": terminal_since}
        if (digest == doc.get("poll_hash") and terminal_since == doc.get("terminal_since")
                and not self._keep_raw):
            self._unchanged.append(fx.id)
            return merged
        values = {**fields, "poll_hash": digest, "terminal_since": terminal_since,
                  "last_polled_at": self._now, "updated_at": self._now}
        if self._keep_raw:
            values["api_raw"] = raw_json(fx.raw)
        update = {"$set": values}
        self.bytes += bson_size(update)
        self._ops.append(({"_id": fx.id}, update))
        return merged

    async def flush(self, store: Store, fence: Fence) -> int:
        """One fenced bulk write for the answer; returns the number of write operations in it."""
        ops: list[UpdateOne | UpdateMany] = [UpdateOne(fence.guard(flt), fence.stamp(update))
                                             for flt, update in self._ops]
        if self._unchanged:
            touch = {"$set": {"last_polled_at": self._now}}
            self.bytes += bson_size(touch) + 10 * len(self._unchanged)
            ops.append(UpdateMany(fence.guard({"_id": {"$in": self._unchanged}}), fence.stamp(touch)))
        if ops:
            fence.check()
            await store.fixtures.bulk_write(ops, ordered=False)
        return len(ops)
