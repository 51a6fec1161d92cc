"""Poll shapes: `ids=` chunks or one `live=` call per cycle, chosen by calls then bytes."""

from __future__ import annotations

import pytest

from footyd.metrics import REGISTRY
from footyd.sim.football_script import is_scoring, load_script, matchday, render, script_path
from footyd.stages.ingest import Scope
from tests.plugins.monitoring import MatchFactory

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` skips it

FAST = {"monitor": {"activate_before_s": 300, "complete_grace_s": 600}}
MANY = load_script(script_path("many_25")).fixtures
MANY_LEAGUES = tuple(sorted({f.league.id for f in MANY}))


def _calls(shape: str) -> float:
    return REGISTRY.get_sample_value("footyd_poll_calls_total", {"shape": shape}) or 0.0


async def test_shapes_switch_ids_live_ids_over_a_match_day(match_factory: MatchFactory) -> None:
    m = await match_factory(script_path("many_25"), config=FAST)
    await m.ingest_day(Scope(leagues=MANY_LEAGUES))
    before = {s: _calls(s) for s in ("ids", "live_leagues")}
    pre = await m.play(5, 9)  # active, not kicked off: nothing to expect in a live answer
    assert {r.shape for r in pre} == {"ids"} and all(r.calls == 2 for r in pre)
    first = await m.at(12)  # kicked off: the stored status still says NS, so ids= once more
    assert first.shape == "ids"
    calls = len(m.sim.calls)
    live = await m.play(13, 60)  # all 25 live: one live= call instead of two ids= calls
    assert {r.shape for r in live} == {"live_leagues"}
    assert all(r.calls == 1 and r.polled == 25 for r in live)
    params = {c.params.get("live") for c in m.sim.calls[calls:]}
    assert params == {"-".join(map(str, MANY_LEAGUES))}
    # goals confirmed exactly as the simulator scored them by minute 59
    for fx in MANY:
        scored = sum(1 for e in render(fx, 59 - fx.kickoff_min).events if is_scoring(e))
        goals = await m.goals(fx.id)
        assert sum(g["state"] == "confirmed" for g in goals) == scored, fx.id
    await m.play(100, 200, step=5)  # full time: out of the live answer, checked by ids= in grace
    post = await m.play(201, 205)
    assert {r.shape for r in post} <= {"ids"}
    assert _calls("ids") > before["ids"] and _calls("live_leagues") - before["live_leagues"] >= 49
    for fx in MANY:  # every goal standing at the end is kept; only VAR-cancelled ones are not
        scored = sum(1 for e in render(fx, 200 - fx.kickoff_min).events if is_scoring(e))
        goals = await m.goals(fx.id)
        assert sum(g["state"] != "cancelled" for g in goals) == scored, fx.id


async def test_poll_shape_ids_never_asks_live(match_factory: MatchFactory) -> None:
    m = await match_factory(script_path("many_25"),
                            config={"monitor": {**FAST["monitor"], "poll_shape": "ids"}})
    await m.ingest_day(Scope(leagues=MANY_LEAGUES))
    reports = await m.play(5, 20)
    assert {r.shape for r in reports} == {"ids"}
    assert not any("live" in c.params for c in m.sim.calls)


async def test_fixture_missing_from_live_answer_is_polled_by_ids_and_not_counted_missing(
        match_factory: MatchFactory) -> None:
    m = await match_factory(script_path("three_two_var_recredit"), config=FAST)
    await m.ingest_day(Scope(leagues=(39,)))
    await m.play(5, 25)  # h1 (22') confirmed
    (h1,) = await m.goals(2002)
    assert h1["state"] == "confirmed"
    m.sim.inject("/fixtures", "live_drop", count=None, fixture_id=2002)
    calls = len(m.sim.calls)
    reports = await m.play(26, 29)  # every live answer lacks 2002
    assert all(r.shape == "live_leagues" and r.calls == 2 and r.polled == 1 for r in reports)
    asked = [c.params for c in m.sim.calls[calls:]]
    assert asked == [{"live": "39"}, {"ids": "2002"}] * 4  # followed up in the same cycle
    m.sim.clear_faults()
    (h1,) = await m.goals(2002)
    assert h1["state"] == "confirmed" and h1["missing_poll_ids"] == []


async def test_fixture_absent_from_every_answer_never_cancels_its_goals(
        match_factory: MatchFactory) -> None:
    m = await match_factory(script_path("three_two_var_recredit"), config=FAST)
    await m.ingest_day(Scope(leagues=(39,)))
    await m.play(5, 25)
    m.sim.inject("/fixtures", "vanish", count=None, fixture_id=2002)  # from live and ids answers
    reports = await m.play(26, 35)
    assert all(r.polled == 0 for r in reports)
    m.sim.clear_faults()
    (h1,) = await m.goals(2002)
    assert h1["state"] == "confirmed" and h1["missing_poll_ids"] == []


async def test_quota_running_out_mid_day_stops_polling_until_midnight(
        match_factory: MatchFactory) -> None:
    m = await match_factory(script_path("many_25"), config=FAST, sim={"daily_limit": 40})
    await m.ingest_day(Scope(leagues=MANY_LEAGUES))
    await m.play(5, 60)  # ~2 calls a cycle before kickoff, then 1: spent around minute 40
    assert len(m.sim.calls) == 40
    assert REGISTRY.get_sample_value("footyd_api_quota_exhausted") == 1.0
    sent = len(m.sim.requests)
    cancelled = {g["_id"] async for g in m.store.goals.find({"state": "cancelled"})}
    reports = await m.play(61, 80)
    assert len(m.sim.requests) == sent and all(r.polled == 0 for r in reports)
    # no poll, so nothing can look missing: no goal is cancelled while paused
    assert {g["_id"] async for g in m.store.goals.find({"state": "cancelled"})} == cancelled
    m.sim.reset_quota()
    report = await m.at(12 * 60 + 1)  # 00:01 UTC the next day: polling resumes
    assert report.calls >= 1 and len(m.sim.requests) > sent
    assert REGISTRY.get_sample_value("footyd_api_quota_exhausted") == 0.0


async def test_next_kickoffs_ride_along_on_the_live_call(match_factory: MatchFactory) -> None:
    script = matchday(8, 2, seed=3, spacing_min=15, start_min=10, per_slot=4)
    m = await match_factory(script, config=FAST)
    await m.ingest_day(Scope(leagues=tuple(sorted({f.league.id for f in script.fixtures}))))
    await m.play(5, 19)  # slot 1 (kickoff 10) is live
    second = [f.id for f in script.fixtures if f.kickoff_min == 25]
    calls = len(m.sim.calls)
    waiting = await m.play(21, 24)  # slot 2 active before kickoff: no ids= call of its own
    assert all(r.shape == "live_leagues" and r.calls == 1 for r in waiting)
    assert not any("ids" in c.params for c in m.sim.calls[calls:])
    started = await m.play(26, 28)  # slot 2 kicked off: it came in the same live answer
    assert all(r.calls == 1 and r.polled == 8 for r in started)
    assert {(await m.fixture(fid))["status"] for fid in second} <= {"1H"}
