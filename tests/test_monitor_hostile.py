"""Hostile API items against the real monitor: one bad item or event never hurts the others."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from footyd.clients.blobs import LocalBlobStore
from footyd.config import StorageConfig
from footyd.metrics import REGISTRY
from footyd.sim.football_script import is_scoring, load_script, render, script_path
from footyd.stages.ingest import Scope
from footyd.stages.search_retract import retract_goal
from tests.plugins.monitoring import Match, MatchFactory

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` skips it

FAST = {"monitor": {"activate_before_s": 300, "complete_grace_s": 600}}
MANY = load_script(script_path("many_25")).fixtures
MANY_LEAGUES = tuple(sorted({f.league.id for f in MANY}))


def _malformed(reason: str) -> float:
    return REGISTRY.get_sample_value("footyd_api_malformed_items_total", {"reason": reason}) or 0.0


def _scored_by(minute: float) -> dict[int, int]:
    """Goals each many_25 fixture has scored by sim minute `minute` (the simulator's truth)."""
    return {fx.id: sum(1 for e in render(fx, minute - fx.kickoff_min).events if is_scoring(e))
            for fx in MANY}


@pytest.mark.parametrize(("fault", "reason"), [
    ("item_huge_timestamp", "bad_date"),
    ("item_huge_number", "out_of_range"),
    ("item_deep", "too_deep"),
])
async def test_one_hostile_item_never_stops_the_other_24(
        match_factory: MatchFactory, fault: str, reason: str) -> None:
    m = await match_factory(script_path("many_25"), config=FAST)
    await m.ingest_day(Scope(leagues=MANY_LEAGUES))
    await m.play(-5, 9)  # activation: all 25 active before kickoff
    bad_id = MANY[3].id
    m.sim.inject("/fixtures", fault, count=None, fixture_id=bad_id)  # every answer from now on
    before = _malformed(reason)
    reports = await m.play(10, 60)
    for report in reports:  # every cycle polled the other 24
        assert report.polled == 24 and report.fixture_errors == 1 and report.failed_calls == 0
    assert _malformed(reason) - before == len(reports)
    # the others' goals were seen and confirmed, exactly as the simulator scored them
    truth = _scored_by(59)  # confirmed by the poll after a goal appears
    for fid, scored in truth.items():
        if fid == bad_id:
            continue
        goals = await m.goals(fid)
        assert sum(g["state"] == "confirmed" for g in goals) == scored, fid
    assert sum(truth.values()) > 0
    # quota pacing still ran after the bad item
    assert REGISTRY.get_sample_value("footyd_poll_interval_seconds") == m.monitor.interval_s
    # completion still runs: play to full time and past the grace with goals finished
    await m.play(100, 140, step=5)
    for fx in MANY:
        await m.finish_goals(fx.id)
    await m.play(150, 151)
    stages = {d["_id"]: d["stage"] async for d in m.store.fixtures.find({}, {"stage": 1})}
    assert [fid for fid, st in stages.items() if st != "completed"] == [bad_id]


@pytest.mark.parametrize("fault", ["event_null_minute", "event_unknown_detail", "event_no_team"])
async def test_unreadable_goal_event_never_cancels_the_goal_or_its_clips(
        match_factory: MatchFactory, tmp_path: Path, fault: str) -> None:
    blobs = LocalBlobStore(StorageConfig(kind="local", local_dir=tmp_path / "clips"))
    await blobs.__aenter__()
    holder: dict[str, Match] = {}

    async def retract(goal_id: str) -> None:  # what the search stage does on a cancellation
        m = holder["m"]
        goal = await m.store.goals.find_one({"_id": goal_id})
        assert goal is not None
        await retract_goal(m.store, blobs, goal, m.now(), delete=True)

    config: dict[str, Any] = {**FAST, "goals": {"on_cancel": "delete", "cancel_polls": 3}}
    m = holder["m"] = await match_factory(script_path("three_two_var_recredit"), config=config,
                                          then_cancel=retract)
    await m.ingest_day(Scope(leagues=(39,)))
    await m.play(5, 25)
    (h1,) = await m.goals(2002)  # M. Striker, 22'
    assert h1["state"] == "confirmed"
    src = tmp_path / "clip.mp4"
    src.write_bytes(b"\x00" * 64)
    key = blobs.key_for("2002", h1["_id"], "kept.mp4")
    await blobs.put_file(key, src, content_type="video/mp4", metadata={})
    await m.store.clips.insert_one({"_id": "c1", "goal_id": h1["_id"], "source_url": "u1",
                                    "state": "kept", "blob_key": key, "updated_at": m.now()})
    unreadable = REGISTRY.get_sample_value("footyd_goal_events_total",
                                           {"event": "unreadable"}) or 0.0

    # h1's event is unreadable from now on (the first Goal event of the fixture)
    m.sim.inject("/fixtures", fault, count=None, fixture_id=2002)
    await m.play(26, 40)  # 15 polls, cancel_polls is 3
    h1 = await m.store.goals.find_one({"_id": h1["_id"]})
    assert h1 is not None
    assert h1["state"] == "confirmed" and h1["missing_poll_ids"] == []
    assert m.cancelled == []
    clip = await m.store.clips.find_one({"_id": "c1"})
    assert clip is not None and clip["state"] == "kept"
    assert await blobs.exists(key)
    after = REGISTRY.get_sample_value("footyd_goal_events_total", {"event": "unreadable"})
    assert after == unreadable + 15  # logged and counted on every poll

    m.sim.clear_faults()  # readable again: matched as before, nothing was lost
    await m.play(41, 42)
    h1 = await m.store.goals.find_one({"_id": h1["_id"]})
    assert h1 is not None and h1["state"] == "confirmed" and h1["missing_poll_ids"] == []
    assert len(await m.goals(2002, scorer_name="M. Striker")) == 1  # no duplicate goal
