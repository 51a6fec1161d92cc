"""One side of bench/scale.py: drive the monitor of whichever footyd is on PYTHONPATH.

Run by bench/scale.py in a subprocess, once with the current tree and once with the commit
before issue 11, against the same simulator (realistic payloads) and MongoDB. Uses only APIs
both versions have. Counts writes with a pymongo command listener. Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
import uuid
from datetime import datetime
from typing import Any

import aiohttp
import bson
from pymongo import monitoring

POLL_MIN = 0.5  # cycles 30 s apart (the default poll interval): elapsed changes every other one
WRITE_COMMANDS = {"insert": "documents", "update": "updates", "delete": "deletes",
                  "findAndModify": None}


class Writes(monitoring.CommandListener):
    """Counts write operations and their encoded bytes (the commands' payloads)."""

    def __init__(self) -> None:
        self.ops = 0
        self.bytes = 0
        self.round_trips = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.round_trips += 1
        name = event.command_name
        if name not in WRITE_COMMANDS:
            return
        key = WRITE_COMMANDS[name]
        members = event.command.get(key) if key else None
        self.ops += len(members) if members is not None else 1
        if members is not None:
            self.bytes += sum(len(bson.encode(m)) for m in members)
        else:
            self.bytes += len(bson.encode({k: v for k, v in event.command.items()
                                           if k in ("query", "update")}))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def main(base_url: str, uri: str, n: int, cycles: int, leagues: list[int]) -> None:
    writes = Writes()
    monitoring.register(writes)
    from footyd.clients.football import FootballClient
    from footyd.clients.store import Store
    from footyd.config import ApiFootballConfig, Config, MongoConfig
    from footyd.sim.football import ManualClock
    from footyd.stages.ingest import Ingest, Scope
    from footyd.stages.monitor import Monitor

    clock = ManualClock(0.0)

    def now() -> datetime:
        return clock.to_datetime(clock.now_min())

    async def at(http: aiohttp.ClientSession, minute: float) -> None:
        clock.set(minute)
        async with http.post(f"{base_url}/_sim/clock", json={"set": minute}) as resp:
            resp.raise_for_status()

    async def done(_goal_id: str) -> bool:
        return True

    cfg = Config.model_validate({"monitor": {"activate_before_s": 300}})
    store = Store(MongoConfig.model_validate({"uri": uri, "database": f"scale_{uuid.uuid4().hex[:8]}"}))
    await store.__aenter__()
    api = ApiFootballConfig.model_validate({"base_url": base_url, "api_key": "bench-key",
                                            "backoff_base_s": 0.01, "timeout_s": 60})
    async with aiohttp.ClientSession() as http, FootballClient(api, clock=now) as client:
        monitor = Monitor(cfg, store, client, on_confirmed=done, on_cancelled=done, clock=now)
        await at(http, 0)
        await Ingest(store, client, clock=now).run(Scope(leagues=tuple(leagues)), [now().date()])
        await at(http, 10)
        await monitor.poll_active()  # activation
        await at(http, 11)
        await monitor.poll_active()  # first poll after kickoff: statuses become live
        times: list[float] = []
        ops: list[int] = []
        sizes: list[int] = []
        trips: list[int] = []
        polled: list[int] = []
        calls: list[int] = []
        for i in range(cycles):
            await at(http, 12 + i * POLL_MIN)
            w0, b0, r0 = writes.ops, writes.bytes, writes.round_trips
            started = time.perf_counter()
            report = await monitor.poll_active()
            times.append(time.perf_counter() - started)
            ops.append(writes.ops - w0)
            sizes.append(writes.bytes - b0)
            trips.append(writes.round_trips - r0)
            polled.append(report.polled)
            calls.append(report.calls)
    await store.db.client.drop_database(store.db.name)
    await store.__aexit__(None, None, None)
    out: dict[str, Any] = {
        "fixtures": n, "cycles": cycles, "cycle_s_median": round(statistics.median(times), 3),
        "cycle_s_max": round(max(times), 3), "writes_per_cycle": statistics.median(ops),
        "bytes_written_per_cycle": int(statistics.median(sizes)),
        "db_round_trips_per_cycle": statistics.median(trips),
        "api_calls_per_cycle": statistics.median(calls), "polled_per_cycle": min(polled)}
    print(json.dumps(out))


if __name__ == "__main__":
    url, mongo_uri, count, n_cycles, league_ids = sys.argv[1:6]
    asyncio.run(main(url, mongo_uri, int(count), int(n_cycles),
                     [int(x) for x in league_ids.split(",")]))
