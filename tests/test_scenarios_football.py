"""The real daemon (subprocess) against the simulator in real time: restarts and scope reloads."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

from footyd.clients.store import Store
from footyd.config import MongoConfig
from footyd.errors import ExitCode
from footyd.sim.football import ScaledClock, SimFootball
from footyd.sim.football_script import Script
from tests.plugins.daemon import DaemonFactory, base_config
from tests.plugins.servers import MongoServer, S3Server
from tests.plugins.sim import StartSim

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` skips it

SPM = 0.25  # real seconds per match minute


def _fixture(fid: int, home: int, away: int, goals: list[tuple[float, str, str]],
             kickoff_min: float = 4) -> dict[str, Any]:
    timeline: list[dict[str, Any]] = [{"at": 0, "status": "1H"}]
    timeline += [{"at": at, "goal": {"team": side, "player": who}} for at, side, who in goals]
    timeline.append({"at": 60, "status": "FT"})
    return {"id": fid, "kickoff_min": kickoff_min,
            "league": {"id": 39, "name": "Premier League", "season": 2025},
            "home": {"id": home, "name": f"Team {home}"}, "away": {"id": away, "name": f"Team {away}"},
            "timeline": timeline}


@pytest.fixture
def tree(mongo_server: MongoServer, s3_server: S3Server, tmp_path: Path) -> dict[str, Any]:
    return base_config(mongo_server, s3_server, tmp_path, f"s_{uuid.uuid4().hex[:10]}")


def _daemon_tree(tree: dict[str, Any], sim: SimFootball, teams: list[int]) -> dict[str, Any]:
    tree["api_football"] = {"base_url": sim.base_url, "api_key": sim.key, "backoff_base_s": 0.05,
                            "timeout_s": 2.0}
    tree["scope"] = {"teams": teams}
    tree["monitor"] = {"poll_interval_s": SPM, "poll_floor_s": 0.05,
                       "staging_check_interval_s": 1.0, "activate_before_s": 0.0,
                       "complete_grace_s": 5.0}
    tree["search"] = {"sources": []}
    return tree


async def _goals(mongo: MongoServer, database: str, fixture_id: int) -> list[dict[str, Any]]:
    cfg = MongoConfig.model_validate({"uri": mongo.uri, "database": database})
    async with Store(cfg) as store:
        return [g async for g in store.goals.find({"fixture_id": fixture_id})]


async def test_sigkill_mid_match_then_restart_keeps_goals_unique(
    daemon_factory: DaemonFactory, start_sim: StartSim, tree: dict[str, Any],
    mongo_server: MongoServer,
) -> None:
    goals = [(5, "home", "A. One"), (20, "away", "B. Two"), (35, "home", "C. Three"),
             (50, "away", "D. Four")]
    sim = await start_sim(Script.model_validate({"fixtures": [_fixture(7001, 11, 12, goals)]}),
                          clock=ScaledClock(SPM))
    cfg = _daemon_tree(tree, sim, [11])
    first = await daemon_factory(cfg, name="first")
    await first.wait_log("goal_confirmed", where=lambda ln: ln.get("scorer") == "B. Two")
    first.kill_all()  # no drain, no goodbye
    assert await first.wait_exit() == -signal.SIGKILL

    second = await daemon_factory(cfg, name="second")
    last = await second.wait_log("goal_confirmed", where=lambda ln: ln.get("scorer") == "D. Four")
    assert last["fixture_id"] == 7001
    second.send(signal.SIGTERM)
    assert await second.wait_exit() == ExitCode.OK, second.tail()

    stored = await _goals(mongo_server, cfg["mongo"]["database"], 7001)
    assert sorted(g["scorer_name"] for g in stored) == ["A. One", "B. Two", "C. Three", "D. Four"]
    assert all(g["state"] in ("confirmed", "searching", "done") for g in stored)
    # the first goals were seen by both processes: one document each, counts carried on
    first_ids = {ln["goal_id"] for ln in first.events("goal_confirmed")}
    assert {g["_id"] for g in stored} >= first_ids
    assert not [ln for ln in second.events("goal_confirmed") if ln["goal_id"] in first_ids]


async def test_sighup_adding_a_team_starts_tracking_it(
    daemon_factory: DaemonFactory, start_sim: StartSim, tree: dict[str, Any],
) -> None:
    script = Script.model_validate({"fixtures": [
        _fixture(7101, 21, 22, [(6, "home", "T. Tracked")]),
        _fixture(7102, 23, 24, [(12, "away", "L. Later")], kickoff_min=8),
    ]})
    sim = await start_sim(script, clock=ScaledClock(SPM))
    cfg = _daemon_tree(tree, sim, [21])
    proc = await daemon_factory(cfg)
    await proc.wait_log("fixture_ingested", where=lambda ln: ln.get("fixture_id") == 7101)
    assert not proc.events("fixture_ingested") or all(
        ln["fixture_id"] != 7102 for ln in proc.events("fixture_ingested"))
    cfg["scope"]["teams"] = [21, 23]
    from tests.plugins.daemon import write_toml

    write_toml(proc.config_path, cfg)
    proc.send(signal.SIGHUP)
    reloaded = await proc.wait_log("config_reloaded")
    assert reloaded["changed"] == ["scope.teams"]
    await proc.wait_log("fixture_ingested", where=lambda ln: ln.get("fixture_id") == 7102)
    confirmed = await proc.wait_log("goal_confirmed", where=lambda ln: ln.get("fixture_id") == 7102)
    assert confirmed["scorer"] == "L. Later"
    proc.send(signal.SIGTERM)
    assert await proc.wait_exit() == ExitCode.OK, proc.tail()
