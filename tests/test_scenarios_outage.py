"""MongoDB dies for a while under the running daemon: it keeps running, says so, and catches up."""

from __future__ import annotations

import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from footyd.errors import ExitCode
from footyd.sim.football import ScaledClock
from footyd.sim.football_script import Script
from footyd.sim.mongo import start_secantus
from tests.plugins.daemon import DaemonFactory, base_config, free_port
from tests.plugins.servers import MongoServer, S3Server
from tests.plugins.sim import StartSim

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` skips it

SPM = 0.25


async def _readyz(listen: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"http://{listen}/readyz") as resp:
        return resp.status


async def test_mongo_outage_mid_match_is_survived(
    daemon_factory: DaemonFactory, start_sim: StartSim, mongo_server: MongoServer,
    s3_server: S3Server, tmp_path: Path,
) -> None:
    port = free_port()
    db_proc, uri = start_secantus(tmp_path, port=port)
    procs: list[subprocess.Popen[bytes]] = [db_proc]
    try:
        timeline: list[dict[str, Any]] = [{"at": 0, "status": "1H"},
                                          {"at": 4, "goal": {"team": "home", "player": "E. Early"}},
                                          {"at": 70, "goal": {"team": "away", "player": "L. Late"}},
                                          {"at": 90, "status": "FT"}]
        sim = await start_sim(Script.model_validate({"fixtures": [{
            "id": 8001, "kickoff_min": 2, "league": {"id": 39, "name": "PL", "season": 2025},
            "home": {"id": 31, "name": "Up FC"}, "away": {"id": 32, "name": "Down FC"},
            "timeline": timeline}]}), clock=ScaledClock(SPM))
        tree = base_config(mongo_server, s3_server, tmp_path, f"o_{uuid.uuid4().hex[:10]}")
        tree["mongo"] = {"uri": uri, "database": "outage", "server_selection_timeout_s": 1.0}
        tree["api_football"] = {"base_url": sim.base_url, "api_key": sim.key, "timeout_s": 2.0}
        tree["scope"] = {"teams": [31]}
        tree["monitor"] = {"poll_interval_s": SPM, "poll_floor_s": 0.05,
                           "activate_before_s": 0.0, "staging_check_interval_s": 1.0}
        tree["search"] = {"sources": []}
        proc = await daemon_factory(tree)
        await proc.wait_log("goal_confirmed", where=lambda ln: ln.get("scorer") == "E. Early")

        db_proc.send_signal(signal.SIGTERM)  # MongoDB goes away
        db_proc.wait(timeout=30)
        failed = await proc.wait_log("job_failed")
        assert failed["job"] == "monitor_poll" and "exception" in failed
        assert await _readyz(tree["health"]["listen"]) == 503
        assert proc.proc is not None and proc.proc.returncode is None  # still running

        db_proc, _ = start_secantus(tmp_path, port=port)  # back, same data
        procs.append(db_proc)
        late = await proc.wait_log("goal_confirmed", where=lambda ln: ln.get("scorer") == "L. Late")
        assert late["fixture_id"] == 8001
        assert await _readyz(tree["health"]["listen"]) == 200
        early = [ln for ln in proc.events("goal_confirmed") if ln.get("scorer") == "E. Early"]
        assert len(early) == 1  # the goal seen before the outage was not created again
        proc.send(signal.SIGTERM)
        assert await proc.wait_exit() == ExitCode.OK, proc.tail()
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=30)
