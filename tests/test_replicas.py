"""Two footyd replicas on one MongoDB: one polls, the other stands by and takes over."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from footyd.sim.football import ScaledClock
from footyd.sim.football_script import Script
from footyd.sim.net import free_port
from tests.plugins.daemon import DaemonFactory, base_config
from tests.plugins.servers import MongoServer, S3Server
from tests.plugins.sim import StartSim

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` skips it

SPM = 0.25
TTL_S, RENEW_S = 2.0, 0.5


async def test_one_replica_polls_and_a_standby_takes_over_when_it_is_killed(
    daemon_factory: DaemonFactory, start_sim: StartSim, mongo_server: MongoServer,
    s3_server: S3Server, tmp_path: Path,
) -> None:
    timeline: list[dict[str, Any]] = [{"at": 0, "status": "1H"},
                                      {"at": 6, "goal": {"team": "home", "player": "E. Early"}},
                                      {"at": 80, "goal": {"team": "away", "player": "L. Late"}},
                                      {"at": 100, "status": "FT"}]
    sim = await start_sim(Script.model_validate({"fixtures": [{
        "id": 8101, "kickoff_min": 2, "league": {"id": 39, "name": "PL", "season": 2025},
        "home": {"id": 41, "name": "Lead FC"}, "away": {"id": 42, "name": "Standby FC"},
        "timeline": timeline}]}), clock=ScaledClock(SPM))
    tree = base_config(mongo_server, s3_server, tmp_path, f"r_{uuid.uuid4().hex[:10]}")
    tree["api_football"] = {"base_url": sim.base_url, "api_key": sim.key, "timeout_s": 2.0}
    tree["scope"] = {"teams": [41]}
    tree["monitor"] = {"poll_interval_s": SPM, "poll_floor_s": 0.05, "activate_before_s": 0.0,
                       "staging_check_interval_s": 1.0}
    tree["search"] = {"sources": []}
    tree["replicas"] = {"lease_ttl_s": TTL_S, "lease_renew_s": RENEW_S}
    first = await daemon_factory(tree, name="first")
    await first.wait_log("leader_elected")
    # the same config but for what is per host: the health port and the scratch folder
    second_tree = {**tree, "health": {"listen": f"127.0.0.1:{free_port()}"},
                   "download": {**tree["download"], "scratch_dir": str(tmp_path / "scratch2")}}
    second = await daemon_factory(second_tree, name="second")
    await second.wait_log("daemon_started")
    await first.wait_log("goal_confirmed", where=lambda ln: ln.get("scorer") == "E. Early")
    cycles = len(first.events("poll_cycle_done"))
    await first.wait_log("poll_cycle_done", count=cycles + 8)
    # only the leader calls API-Football: every call the simulator saw was one of its cycles
    assert not second.events("poll_cycle_done") and not second.events("leader_elected")
    polled = sum(ln["calls"] for ln in first.events("poll_cycle_done"))
    ingests = sum(1 for c in sim.calls if "date" in c.params or "season" in c.params)
    assert len(sim.calls) - ingests - polled <= 2, "a standby called API-Football"

    first.kill_all()
    killed = time.monotonic()
    elected = await second.wait_log("leader_elected")
    took_s = time.monotonic() - killed
    assert elected["epoch"] == 2 and took_s <= TTL_S + RENEW_S + 2.0, took_s
    await second.wait_log("poll_cycle_done")
    await second.wait_log("goal_confirmed", where=lambda ln: ln.get("scorer") == "L. Late")
    early = [ln for ln in first.events("goal_confirmed") + second.events("goal_confirmed")
             if ln.get("scorer") == "E. Early"]
    assert len(early) == 1  # the new leader did not record the first goal again
