"""Ingest + monitor against the simulator over HTTP and the MongoDB stand-in, minute by minute."""

from __future__ import annotations

from typing import Any

from footyd.sim.football_script import load_script, script_path
from footyd.stages.ingest import Scope
from tests.plugins.monitoring import Match, MatchFactory

FAST = {"monitor": {"activate_before_s": 300, "complete_grace_s": 600}}


def by_scorer(goals: list[dict[str, Any]]) -> dict[str | None, dict[str, Any]]:
    return {g["scorer_name"]: g for g in goals}


async def _ingested(match_factory: MatchFactory, name: str, **kw: Any) -> Match:
    m = await match_factory(script_path(name), config=FAST, **kw)
    leagues = tuple({f.league.id for f in load_script(script_path(name)).fixtures})
    report = await m.ingest_day(Scope(leagues=leagues))
    assert report.failed_calls == 0 and report.inserted >= 1
    return m


async def test_normal_match_end_to_end_with_every_revision(match_factory: MatchFactory) -> None:
    m = await _ingested(match_factory, "three_two_var_recredit")
    assert (await m.fixture(2002))["stage"] == "staging"
    await m.at(4)
    assert (await m.fixture(2002))["stage"] == "staging"
    report = await m.at(5)  # kickoff (minute 10) - activate_before_s (5 min)
    assert report.transitions == {2002: "active"}

    await m.play(6, 22)  # h1 appears at 22: seen once, still pending
    (h1,) = await m.goals(2002)
    assert h1["state"] == "pending" and h1["scorer_name"] == "M. Striker"
    await m.at(23)
    (h1,) = await m.goals(2002)
    assert h1["state"] == "confirmed" and len(h1["seen_poll_ids"]) == 2
    assert m.confirmed == [h1["_id"]]

    await m.play(24, 30)  # a1 at 30 with an unknown scorer
    a1 = next(g for g in await m.goals(2002) if g["team_id"] == 51)
    assert a1["scorer_name"] is None and a1["scorer_id"] is None
    await m.play(31, 81)
    a2_before = next(g for g in await m.goals(2002) if g["scorer_name"] == "A. Forward")
    await m.play(82, 140)

    goals = await m.goals(2002)
    live = [g for g in goals if g["state"] != "cancelled"]
    assert len(live) == 5 and len(goals) == 6  # 3-2, plus the VAR-cancelled goal
    (var,) = [g for g in goals if g["state"] == "cancelled"]
    assert var["scorer_name"] == "O. Offside" and var["previous_state"] == "confirmed"
    assert len(var["missing_poll_ids"]) == 3
    assert m.cancelled == [var["_id"]]  # handed on so its clips get retracted
    named = by_scorer(live)
    # unknown scorer named later: same goal, history keeps both
    assert named["J. Late"]["_id"] == a1["_id"]
    assert [h["scorer_name"] for h in named["J. Late"]["scorer_history"]] == [None, "J. Late"]
    # minute revision 44' -> 45' kept the goal
    assert named["K. Winger"]["elapsed"] == 45
    # re-credit to an own goal 25 minutes later kept the id; both scorers recorded
    og = named["D. Defender"]
    assert og["_id"] == a2_before["_id"] and og["detail"] == "Own Goal"
    assert [h["scorer_name"] for h in og["scorer_history"]] == ["A. Forward", "D. Defender"]
    # the flicker (one poll missing) did not cancel h3
    h3 = named["M. Striker"] if named["M. Striker"]["detail"] == "Penalty" else None
    assert h3 is None or h3["state"] == "confirmed"
    assert all(g["state"] == "confirmed" for g in live)
    assert len(set(m.confirmed)) == 6 == len(m.confirmed)  # h_var was confirmed before VAR
    assert (live[-1]["score_home"], live[-1]["score_away"]) == (3, 2)

    fixture = await m.fixture(2002)
    assert fixture["status"] == "FT" and fixture["terminal_since"] is not None
    assert fixture["stage"] == "active"  # goals still searching: not complete
    await m.finish_goals(2002)
    calls_before = len(m.sim.calls)
    report = await m.at(141)
    assert report.transitions == {2002: "completed"}
    assert len(m.sim.calls) == calls_before  # past the grace: completed without polling
    await m.at(142)
    assert (await m.fixture(2002))["stage"] == "completed"


async def test_flicker_is_flagged_and_does_not_cancel(match_factory: MatchFactory) -> None:
    m = await _ingested(match_factory, "three_two_var_recredit")
    await m.play(5, 111)  # h3 at 110, flickers out at 112 for one minute
    await m.play(112, 115)
    h3 = next(g for g in await m.goals(2002) if g["detail"] == "Penalty")
    assert h3["state"] == "confirmed" and h3["missing_poll_ids"] == []


async def test_shootout_kicks_and_missed_penalties_are_not_goals(match_factory: MatchFactory) -> None:
    m = await _ingested(match_factory, "cup_et_penalties")
    await m.play(5, 170)
    goals = await m.goals(3003)
    assert sorted(g["scorer_name"] for g in goals) == ["C. Header", "E. Equaliser"]
    assert all(g["state"] == "confirmed" for g in goals)
    assert (await m.fixture(3003))["status"] == "PEN"


async def test_postponed_goes_back_to_staging_and_is_not_polled(match_factory: MatchFactory) -> None:
    m = await _ingested(match_factory, "postponed")
    await m.play(-50, 35)  # postponed at minute 30
    await m.monitor.check_staging()  # the slow staging cadence sees PST and the new kickoff
    fx = await m.fixture(4004)
    assert fx["status"] == "PST" and fx["stage"] == "staging"
    calls = len(m.sim.calls)
    await m.play(55, 70)  # the original kickoff passes: no activation, no poll
    assert (await m.fixture(4004))["stage"] == "staging"
    polled = [c for c in m.sim.calls[calls:] if "4004" in c.params.get("ids", "")]
    assert polled == []


async def test_early_kickoff_activates_at_once(match_factory: MatchFactory) -> None:
    script = {"fixtures": [{
        "id": 5005, "kickoff_min": 120,
        "league": {"id": 39, "name": "PL", "season": 2025},
        "home": {"id": 1, "name": "Early FC"}, "away": {"id": 2, "name": "Late FC"},
        "timeline": [{"at": -60, "status": "1H"},
                     {"at": -50, "goal": {"team": "home", "player": "E. Bird"}}],
    }]}
    from footyd.sim.football_script import Script

    m = await match_factory(Script.model_validate(script), config=FAST)
    await m.ingest_day(Scope(teams=(1,)))
    m.clock.set(65)
    report = await m.monitor.check_staging()  # kickoff still 55 minutes away, but it is live
    assert report.transitions == {5005: "active"}
    await m.play(66, 75)
    (goal,) = await m.goals(5005)
    assert goal["state"] == "confirmed" and goal["scorer_name"] == "E. Bird"


async def test_abandoned_during_play_completes_after_grace(match_factory: MatchFactory) -> None:
    script = {"fixtures": [{
        "id": 6006, "kickoff_min": 0,
        "league": {"id": 39, "name": "PL", "season": 2025},
        "home": {"id": 3, "name": "Storm FC"}, "away": {"id": 4, "name": "Calm FC"},
        "timeline": [{"at": 0, "status": "1H"},
                     {"at": 10, "goal": {"team": "away", "player": "W. Wind"}},
                     {"at": 30, "status": "ABD"}],
    }]}
    from footyd.sim.football_script import Script

    m = await match_factory(Script.model_validate(script), config=FAST)
    await m.ingest_day(Scope(leagues=(39,)))
    await m.play(-5, 35)
    fx = await m.fixture(6006)
    assert fx["stage"] == "active" and fx["status"] == "ABD"
    await m.play(36, 45)  # grace passed, but the goal is still open
    assert (await m.fixture(6006))["stage"] == "active"
    await m.finish_goals(6006)
    report = await m.at(46)
    assert report.transitions == {6006: "completed"}


async def test_25_live_fixtures_polled_in_two_chunks(match_factory: MatchFactory) -> None:
    m = await _ingested(match_factory, "many_25")
    fixture_ids = {f.id for f in load_script(script_path("many_25")).fixtures}
    await m.play(-5, 1)  # activation
    calls = len(m.sim.calls)
    report = await m.at(30)
    assert report.polled == 25 and report.calls == 2
    new_calls = m.sim.calls[calls:]
    chunks = [c.params["ids"].split("-") for c in new_calls]
    assert sorted(len(c) for c in chunks) == [5, 20]
    assert {int(i) for c in chunks for i in c} == fixture_ids


async def test_a_goal_still_pending_past_the_grace_is_polled_until_it_is_settled(
        match_factory: MatchFactory) -> None:
    # the daemon sees a late goal once, then polls no more until the grace after the final
    # whistle has passed (down, or stretched by quota pacing): that goal must still be settled
    script = {"fixtures": [{
        "id": 6007, "kickoff_min": 0,
        "league": {"id": 39, "name": "PL", "season": 2025},
        "home": {"id": 5, "name": "Late FC"}, "away": {"id": 6, "name": "Early FC"},
        "timeline": [{"at": 0, "status": "1H"},
                     {"at": 89, "goal": {"team": "home", "player": "L. Last"}},
                     {"at": 92, "status": "FT"}],
    }]}
    from footyd.sim.football_script import Script

    m = await match_factory(Script.model_validate(script),
                            config={**FAST, "goals": {"confirm_polls": 3}})
    await m.ingest_day(Scope(leagues=(39,)))
    await m.play(-5, 89)
    await m.at(93)  # final whistle seen: the grace (10 minutes) starts
    (goal,) = await m.goals(6007)
    assert goal["state"] == "pending"  # seen twice, three sightings confirm it
    await m.at(104)  # past the grace
    (goal,) = await m.goals(6007)
    assert goal["state"] == "confirmed"
    assert (await m.fixture(6007))["stage"] == "active"  # its goal's search is still open
