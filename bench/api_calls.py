"""API-Football calls footyd spends on a simulated match day, against two naive baselines.

Run from the repository root: `python -m bench.api_calls`. Starts a SecantusDB subprocess
(or uses FOOTYD_BENCH_MONGO_URI) and the simulator on loopback; drives the real ingest and
monitor stages with a manual clock, one poll every 30 s of simulated time for the whole UTC day.
Also times monitor poll cycles with 25 live fixtures. Writes bench/results/api_calls.{json,md}.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import statistics
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from footyd.clients.football import FootballClient
from footyd.clients.store import Store
from footyd.config import ApiFootballConfig, Config, MongoConfig
from footyd.sim.football import ManualClock, SimFootball
from footyd.sim.football_script import many, matchday
from footyd.stages.ingest import Ingest, Scope
from footyd.stages.monitor import Monitor

RESULTS = Path(__file__).parent / "results"
POLL_S = 30.0
STAGING_S = 900.0
SEARCH_DONE_AFTER = timedelta(minutes=10)  # stands in for the search stage finishing a goal


async def _noop(_goal_id: str) -> bool:
    return True


async def _harness(uri: str, script: Any, clock: ManualClock, **sim_kw: Any
                   ) -> tuple[SimFootball, Store, FootballClient, Monitor, Ingest, Config]:
    sim = SimFootball(script, clock=clock, key="bench-key", **sim_kw)
    await sim.start()
    cfg = Config.model_validate({"monitor": {"poll_interval_s": POLL_S}})
    store = Store(MongoConfig.model_validate({"uri": uri, "database": f"bench_{uuid.uuid4().hex[:8]}"}))
    await store.__aenter__()

    def now() -> datetime:
        return clock.to_datetime(clock.now_min())

    client = FootballClient(ApiFootballConfig.model_validate(
        {"base_url": sim.base_url, "api_key": "bench-key", "backoff_base_s": 0.01}), clock=now)
    await client.__aenter__()
    monitor = Monitor(cfg, store, client, on_confirmed=_noop, on_cancelled=_noop, clock=now)
    return sim, store, client, monitor, Ingest(store, client, clock=now), cfg


async def _close(sim: SimFootball, store: Store, client: FootballClient) -> None:
    await client.__aexit__(None, None, None)
    await store.db.client.drop_database(store.db.name)
    await store.__aexit__(None, None, None)
    await sim.stop()


async def match_day(uri: str, n_fixtures: int = 40, n_leagues: int = 4) -> dict[str, Any]:
    """Calls for a whole UTC day of `n_fixtures` staggered over `n_leagues`."""
    script = matchday(n_fixtures, n_leagues, seed=7, spacing_min=15, start_min=60)
    clock = ManualClock(0.0)  # 12:00 UTC; the day ends at minute 720
    sim, store, client, monitor, ingest, _cfg = await _harness(uri, script, clock)
    leagues = tuple(sorted({f.league.id for f in script.fixtures}))
    report = await ingest.run(Scope(leagues=leagues), [clock.to_datetime(0).date()])
    ingest_calls = report.calls
    per_fixture_baseline = 0
    poll_calls = staging_calls = 0
    next_staging = 0.0
    minute = 0.0
    while minute < 720:
        clock.set(minute)
        if minute >= next_staging:
            staging_calls += (await monitor.check_staging()).calls
            next_staging += STAGING_S / 60
        cycle = await monitor.poll_active()
        poll_calls += cycle.calls
        per_fixture_baseline += cycle.polled  # one call per active fixture per poll
        done_before = clock.to_datetime(minute) - SEARCH_DONE_AFTER
        await store.goals.update_many({"state": "confirmed", "confirmed_at": {"$lte": done_before}},
                                      {"$set": {"state": "done"}})
        minute += monitor.interval_s / 60
    stages = {r["_id"]: r["n"] async for r in await store.fixtures.aggregate(
        [{"$group": {"_id": "$stage", "n": {"$sum": 1}}}])}
    goals = await store.goals.count_documents({"state": "done"})
    await _close(sim, store, client)
    footyd_total = ingest_calls + poll_calls + staging_calls
    unchunked = int(24 * 3600 / POLL_S)
    return {
        "fixtures": n_fixtures, "leagues": n_leagues, "poll_interval_s": POLL_S,
        "footyd_calls": footyd_total, "ingest_calls": ingest_calls, "poll_calls": poll_calls,
        "staging_check_calls": staging_calls,
        "baseline_one_call_per_active_fixture_per_poll": per_fixture_baseline + ingest_calls,
        "baseline_unchunked_poll_every_30s_all_day": unchunked,
        "ratio_vs_per_fixture": round((per_fixture_baseline + ingest_calls) / footyd_total, 2),
        "ratio_vs_unchunked": round(unchunked / footyd_total, 2),
        "fixtures_completed": stages.get("completed", 0), "goals_done": goals,
    }


async def cycle_time_25(uri: str, cycles: int = 20) -> dict[str, Any]:
    """Wall time of monitor poll cycles with 25 live fixtures (2 chunked calls each)."""
    script = many(25, seed=25, kickoff_min=10)
    clock = ManualClock(0.0)
    sim, store, client, monitor, ingest, _cfg = await _harness(uri, script, clock)
    leagues = tuple(sorted({f.league.id for f in script.fixtures}))
    await ingest.run(Scope(leagues=leagues), [clock.to_datetime(0).date()])
    clock.set(10)
    await monitor.poll_active()  # activation
    times = []
    for i in range(cycles):
        clock.set(11 + i * 2)
        started = time.perf_counter()
        report = await monitor.poll_active()
        times.append(time.perf_counter() - started)
        assert report.polled == 25 and report.calls == 2
    await _close(sim, store, client)
    return {"live_fixtures": 25, "cycles": cycles, "median_s": round(statistics.median(times), 4),
            "max_s": round(max(times), 4)}


def _write(result: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "api_calls.json").write_text(json.dumps(result, indent=2) + "\n")
    day, cyc = result["match_day"], result["poll_cycle_25"]
    md = f"""# API calls for a simulated match day ({result['date']})

{day['fixtures']} fixtures in {day['leagues']} leagues, staggered kickoffs, polled every {day['poll_interval_s']:g} s.

| who | calls per day | footyd is x cheaper |
|---|---|---|
| footyd (ingest {day['ingest_calls']} + polls {day['poll_calls']} + staging checks {day['staging_check_calls']}) | {day['footyd_calls']} | 1 |
| one call per active fixture per poll | {day['baseline_one_call_per_active_fixture_per_poll']} | {day['ratio_vs_per_fixture']} |
| one unchunked call every 30 s all day | {day['baseline_unchunked_poll_every_30s_all_day']} | {day['ratio_vs_unchunked']} |

Poll cycle wall time with {cyc['live_fixtures']} live fixtures (2 calls, goals reconciled):
median {cyc['median_s']} s, max {cyc['max_s']} s over {cyc['cycles']} cycles ({result['mongo']}).
"""
    (RESULTS / "api_calls.md").write_text(md)
    print(md)


async def main() -> None:
    uri = os.environ.get("FOOTYD_BENCH_MONGO_URI")
    proc = tmp = None
    if not uri:
        from footyd.sim.mongo import start_secantus

        tmp = Path(tempfile.mkdtemp(prefix="bench-secantus-"))
        proc, uri = start_secantus(tmp)
    try:
        result = {
            "date": datetime.now().date().isoformat(),
            "mongo": "real MongoDB" if os.environ.get("FOOTYD_BENCH_MONGO_URI")
            else "SecantusDB stand-in, one request at a time: cycle times are pessimistic",
            "match_day": await match_day(uri),
            "poll_cycle_25": await cycle_time_25(uri),
        }
        _write(result)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
