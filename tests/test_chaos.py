"""Short crash runs: the real daemon (one, then two and three replicas on one MongoDB) SIGKILLed
at chosen moments of a match day loses nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.chaos_parts import ChaosPlan
from bench.chaos_run import ChaosRun

# `pytest -m "not slow"` skips them; a whole day of several daemons on a loaded 2-core machine
# can take past the suite's 120 s default
pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

# fixed so CI is repeatable; FOOTYD_CHAOS_SEED=N replays another (`python -m bench.chaos` picks one)
SEED = int(os.environ.get("FOOTYD_CHAOS_SEED", "20261204"))
# several footyd on one MongoDB (the runs below share this file so they never overlap on a worker)
REPLICA_TTL_S = 5.0


async def test_a_match_day_with_kills_and_outages_ends_as_written(tmp_path: Path) -> None:
    # the demo's whole day (a VAR cancel, a re-credit, extra time and a shootout, a goal's clips
    # from two sources) at 4x: five kills, MongoDB restarted once, S3 refusing for 8 s
    plan = ChaosPlan(seed=SEED, kills=5, minute_s=0.25, s3_outage_s=8.0, fixtures=(),
                     aim_s=10.0, converge_s=120.0)
    result = await ChaosRun(plan, tmp_path / "chaos").run()
    rerun = f"rerun: FOOTYD_CHAOS_SEED={SEED} python -m pytest tests/test_chaos.py"
    print(result.text())
    assert result.ok, f"{result.text()}\n{rerun}"
    assert len(result.kills) == plan.kills
    # kills landed inside the steps they were aimed at (a missed one still kills, idle). On a
    # loaded CI machine each start and aim takes longer and the later kills can come after the
    # day's last step (seen: 1 of 5 in flight, kills up to 42 s past the day's end), so one is
    # the floor here; `python -m bench.chaos` reports how many, 9 of 10 on a quiet machine
    assert sum(k.in_flight for k in result.kills) >= 1, f"{result.text()}\n{rerun}"
    assert "page_event_after_mongo_restart_s" in result.facts  # the page went on after it
    assert "s3_outage" in result.facts and "mongo_restart" in result.facts

async def test_three_replicas_share_a_match_day_and_survive_their_leader_and_a_worker_killed(
        tmp_path: Path) -> None:
    # the crash run's day with three footyd on one MongoDB: the leader, a
    # replica mid-download and one mid-dedup are SIGKILLed, each started again as systemd would
    plan = ChaosPlan(seed=SEED, kills=3, minute_s=0.25, s3_outage_s=0.0, fixtures=(),
                     aim_s=10.0, converge_s=120.0, replicas=3, lease_ttl_s=REPLICA_TTL_S)
    result = await ChaosRun(plan, tmp_path / "replicas").run()
    rerun = f"rerun: FOOTYD_CHAOS_SEED={SEED} python -m pytest {__file__}"
    print(result.text())
    # each goal once, each clip kept once, no object lost or orphaned, every webhook event
    # delivered, API calls within one daemon's budget for the day, the page equal to MongoDB
    assert result.ok, f"{result.text()}\n{rerun}"
    facts = result.facts
    # the pipeline's work spread: every replica ran dedup for some goal
    assert all(n > 0 for n in facts["dedup_runs_by_replica"]), result.text()
    # another replica polled within the TTL plus a poll interval of each leader kill
    poll_s = facts["poll_s"]
    assert facts["failover_s"] and all(s <= REPLICA_TTL_S + poll_s + 1.0 for s in facts["failover_s"])


async def test_two_replicas_through_a_match_do_everything_once(tmp_path: Path) -> None:
    # no kills: one replica leads all along, the other stands by and may claim pipeline work;
    # every webhook event arrives exactly once and every goal, clip and object is as one daemon
    # would leave them
    # a long lease: nobody is killed here, and with 5 s a loaded CI machine once stalled the
    # leader past its lease (elections [1, 1], handled correctly, but not "one leads all along")
    plan = ChaosPlan(seed=SEED, kills=0, minute_s=0.25, s3_outage_s=0.0, fixtures=(7002,),
                     converge_s=120.0, replicas=2, lease_ttl_s=15.0)
    result = await ChaosRun(plan, tmp_path / "two").run()
    print(result.text())
    assert result.ok, result.text()
    facts = result.facts
    assert sum(facts["elections_by_replica"]) == 1, result.text()
    assert sorted(facts["poll_cycles_by_replica"])[0] == 0, result.text()  # the standby never polled
    # no spread asserted here: the leader hands its goals on in-process at once, so with this
    # day's two goals and no backlog the standby may find nothing left to claim (seen in CI:
    # dedup runs [8, 0]); the three-replica day asserts the spread
