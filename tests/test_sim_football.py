"""The simulated API-Football: scripts, timeline engine, envelope, limits, faults, control API."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

from footyd.sim.football import SHOOTOUT, ManualClock, ScaledClock, SimFootball
from footyd.sim.football_script import (
    SCRIPTS_DIR,
    FixtureScript,
    Script,
    is_scoring,
    load_script,
    many,
    matchday,
    script_path,
)
from tests.plugins.sim import StartSim

KEY = {"x-apisports-key": "test-key"}


async def get(sim: SimFootball, path: str, headers: dict[str, str] | None = None,
              query: dict[str, Any] | None = None, **params: Any
              ) -> tuple[int, dict[str, str], Any]:
    params.update(query or {})
    async with aiohttp.ClientSession() as session, session.get(
        sim.base_url + path, params={k: str(v) for k, v in params.items()},
        headers=KEY if headers is None else headers,
    ) as resp:
        text = await resp.text()
        try:
            body: Any = await resp.json(content_type=None)
        except ValueError:
            body = text
        return resp.status, dict(resp.headers), body


async def item(sim: SimFootball, fid: int) -> dict[str, Any]:
    status, _, body = await get(sim, "/fixtures", id=fid)
    assert status == 200 and body["errors"] == [] and body["results"] == 1
    return body["response"][0]


def goals(it: dict[str, Any]) -> list[tuple[str, str | None, str, int]]:
    return [(e["team"]["name"], e["player"]["name"], e["detail"], e["time"]["elapsed"])
            for e in it["events"] if e["type"] == "Goal"]


async def test_three_two_timeline_revisions(start_sim: StartSim) -> None:
    clock = ManualClock(0)
    sim = await start_sim("three_two_var_recredit", clock=clock)
    at = lambda m: clock.set(10 + m)  # noqa: E731  (kickoff is at sim minute 10)
    at(-5)
    pre = await item(sim, 2002)
    assert pre["fixture"]["status"]["short"] == "NS" and pre["goals"] == {"home": None, "away": None}
    at(11.5)
    assert goals(await item(sim, 2002)) == []
    at(12)
    assert goals(await item(sim, 2002)) == [("Home United", "M. Striker", "Normal Goal", 12)]
    at(21)
    it = await item(sim, 2002)
    unknown = [e for e in it["events"] if e["player"]["name"] == "Unknown"]
    assert unknown and unknown[0]["player"]["id"] == 0
    at(28)  # scorer named later
    assert ("Away City", "J. Late", "Normal Goal", 20) in goals(await item(sim, 2002))
    at(31)
    assert ("Home United", "O. Offside", "Normal Goal", 30) in goals(await item(sim, 2002))
    at(33)  # VAR: the goal disappears, a Var event remains
    it = await item(sim, 2002)
    assert all(p != "O. Offside" for _, p, _, _ in goals(it))
    assert any(e["type"] == "Var" and e["detail"] == "Goal cancelled" for e in it["events"])
    at(45)
    assert ("Home United", "K. Winger", "Normal Goal", 44) in goals(await item(sim, 2002))
    at(50)  # minute revision 44' -> 45'; half time
    it = await item(sim, 2002)
    assert ("Home United", "K. Winger", "Normal Goal", 45) in goals(it)
    assert it["fixture"]["status"] == {"long": "Halftime", "short": "HT", "elapsed": 45,
                                       "extra": None}
    at(71)
    assert ("Away City", "A. Forward", "Normal Goal", 53) in goals(await item(sim, 2002))
    at(96)  # re-credited 25 minutes later to an own goal, same credited side
    it = await item(sim, 2002)
    assert ("Away City", "D. Defender", "Own Goal", 53) in goals(it)
    assert it["goals"] == {"home": 2, "away": 2}
    at(101)
    assert len(goals(await item(sim, 2002))) == 5
    at(102.5)  # flicker: out for a minute ...
    assert len(goals(await item(sim, 2002))) == 4
    at(103.5)  # ... and back
    assert ("Home United", "M. Striker", "Penalty", 83) in goals(await item(sim, 2002))
    at(120)
    final = await item(sim, 2002)
    assert final["fixture"]["status"]["short"] == "FT"
    assert final["goals"] == {"home": 3, "away": 2}
    assert final["teams"]["home"]["winner"] is True
    assert final["score"]["halftime"] == {"home": 2, "away": 1}


async def test_cup_extra_time_and_shootout(start_sim: StartSim) -> None:
    clock = ManualClock(10 + 120)
    sim = await start_sim("cup_et_penalties", clock=clock)
    it = await item(sim, 3003)
    assert it["fixture"]["status"]["short"] == "ET" and it["fixture"]["status"]["elapsed"] == 100
    clock.set(10 + 127)
    assert (await item(sim, 3003))["fixture"]["status"]["short"] == "BT"
    clock.set(10 + 200)
    it = await item(sim, 3003)
    assert it["fixture"]["status"]["short"] == "PEN"
    kicks = [e for e in it["events"] if e["comments"] == SHOOTOUT]
    assert len(kicks) == 9
    assert all(k["type"] == "Goal" and k["time"]["elapsed"] == 120 for k in kicks)
    assert [k["time"]["extra"] for k in kicks] == list(range(1, 10))
    missed = [e for e in it["events"] if e["detail"] == "Missed Penalty" and not e["comments"]]
    assert len(missed) == 1
    assert it["goals"] == {"home": 1, "away": 1}
    assert it["score"]["penalty"] == {"home": 4, "away": 2}
    assert it["teams"]["home"]["winner"] is True
    assert sum(1 for e in it["events"] if is_scoring(e)) == 2


async def test_date_queries_carry_no_events_and_ids_do(start_sim: StartSim) -> None:
    clock = ManualClock(80)
    sim = await start_sim("three_two_var_recredit", clock=clock)
    day = clock.to_datetime(10).date().isoformat()
    _, _, body = await get(sim, "/fixtures", date=day)
    assert body["results"] == 1 and "events" not in body["response"][0]
    assert body["parameters"] == {"date": day} and body["get"] == "fixtures"
    assert body["paging"] == {"current": 1, "total": 1}
    _, _, other = await get(sim, "/fixtures", date="2001-01-01")
    assert other["results"] == 0 and other["response"] == [] and other["errors"] == []
    _, _, by_ids = await get(sim, "/fixtures", ids="2002")
    assert by_ids["response"][0]["events"]


async def test_postponed_moves_kickoff_and_uncovered_stays_ns(start_sim: StartSim) -> None:
    clock = ManualClock(0)
    sim = await start_sim("postponed", clock=clock)
    before = await item(sim, 4004)
    assert before["fixture"]["status"]["short"] == "NS"
    assert before["fixture"]["date"] == clock.to_datetime(60).isoformat()
    clock.set(31)
    after = await item(sim, 4004)
    assert after["fixture"]["status"]["short"] == "PST"
    assert after["fixture"]["date"] == clock.to_datetime(1500).isoformat()
    assert after["fixture"]["timestamp"] == int(clock.to_datetime(1500).timestamp())
    clock.set(100)
    uncovered = await item(sim, 4005)
    assert uncovered["fixture"]["status"]["short"] == "NS" and uncovered["events"] == []


async def test_more_than_20_ids_answer_nothing_without_error(start_sim: StartSim) -> None:
    sim = await start_sim("many_25", clock=ManualClock(30))
    ids = [f.id for f in sim.fixtures]
    _, _, twenty = await get(sim, "/fixtures", ids="-".join(map(str, ids[:20])))
    assert twenty["results"] == 20
    _, _, over = await get(sim, "/fixtures", ids="-".join(map(str, ids[:21])))
    assert (over["results"], over["response"], over["errors"]) == (0, [], [])


async def test_live_filters(start_sim: StartSim) -> None:
    sim = await start_sim([*many(4, kickoff_min=0).fixtures,
                           *load_script(script_path("postponed")).fixtures],
                          clock=ManualClock(20))
    _, _, live = await get(sim, "/fixtures", live="all")
    assert live["results"] == 4 and all("events" in i for i in live["response"])
    league = sim.fixtures[0].league.id
    _, _, some = await get(sim, "/fixtures", live=f"{league}-99999")
    assert {i["league"]["id"] for i in some["response"]} == {league}


async def test_auth_rejects_wrong_key_and_extra_headers(start_sim: StartSim) -> None:
    sim = await start_sim("quiet_0_0")
    for headers in ({}, {"x-apisports-key": "nope"},
                    {"x-apisports-key": "test-key", "x-custom-agent": "1"},
                    {"x-rapidapi-key": "test-key", "x-rapidapi-host": "h"}):
        status, _, body = await get(sim, "/fixtures", headers=headers, id=1001)
        assert status == 200 and "token" in body["errors"] and body["response"] == []
    assert sim.calls == []
    rapid = await start_sim("quiet_0_0", mode="rapidapi")
    status, _, body = await get(rapid, "/fixtures", id=1001, headers={
        "x-rapidapi-key": "test-key", "x-rapidapi-host": "api-football-v1.p.rapidapi.com"})
    assert body["results"] == 1


async def test_plan_limits_and_headers(start_sim: StartSim) -> None:
    sim = await start_sim("quiet_0_0", daily_limit=3, per_minute_limit=2, minute_window_s=600)
    status, headers, _ = await get(sim, "/fixtures", id=1001)
    assert status == 200
    assert (headers["x-ratelimit-requests-limit"], headers["x-ratelimit-requests-remaining"],
            headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]) == ("3", "2", "2", "1")
    await get(sim, "/fixtures", id=1001)
    status, headers, _ = await get(sim, "/fixtures", id=1001)
    assert status == 429 and headers["X-RateLimit-Remaining"] == "0"
    _, _, st = await get(sim, "/status")  # free: not counted
    assert st["response"]["requests"] == {"current": 2, "limit_day": 3}
    sim.minute_window_s = 0.0  # let the minute window pass
    await get(sim, "/fixtures", id=1001)
    status, headers, body = await get(sim, "/fixtures", id=1001)
    assert status == 200 and "requests" in body["errors"] and "day" in body["errors"]["requests"]
    assert "x-ratelimit-requests-remaining" not in {h.lower() for h in headers}
    assert len(sim.calls) == 3 and all(c.path == "/fixtures" for c in sim.calls)


async def test_leagues_current_season(start_sim: StartSim) -> None:
    sim = await start_sim("cup_et_penalties")
    _, _, body = await get(sim, "/leagues", id=45, current="true")
    assert body["response"][0]["seasons"] == [
        {"year": 2025, "start": "2025-08-01", "end": "2026-05-31", "current": True}]
    _, _, none = await get(sim, "/leagues", id=12345, current="true")
    assert none["results"] == 0


async def test_from_to_requires_season(start_sim: StartSim) -> None:
    sim = await start_sim("quiet_0_0")
    day = ManualClock().to_datetime(10).date().isoformat()
    _, _, missing = await get(sim, "/fixtures", query={"from": day, "to": day})
    assert "season" in missing["errors"]
    _, _, ok = await get(sim, "/fixtures", season=2025, league=39,
                          query={"from": day, "to": day})
    assert ok["results"] == 1


@pytest.mark.parametrize(("fault", "want_status"), [
    ("http_500", 500), ("http_499", 499), ("rate_limit_429", 429)])
async def test_injected_status_faults_are_one_shot(
        start_sim: StartSim, fault: str, want_status: int) -> None:
    sim = await start_sim("quiet_0_0")
    sim.inject("/fixtures", fault)
    assert (await get(sim, "/fixtures", id=1001))[0] == want_status
    assert (await get(sim, "/fixtures", id=1001))[0] == 200
    assert [c.counted for c in sim.requests] == [False, True]


async def test_body_faults(start_sim: StartSim) -> None:
    sim = await start_sim("quiet_0_0")
    sim.inject("/fixtures", "malformed_json")
    sim.inject("/fixtures", "errors_200", errors={"bug": "x"})
    sim.inject("/fixtures", "broken_item")
    _, _, body = await get(sim, "/fixtures", id=1001)
    assert isinstance(body, str) and body.startswith('{"get"')
    _, _, body = await get(sim, "/fixtures", id=1001)
    assert body["errors"] == {"bug": "x"} and body["response"] == []
    _, _, body = await get(sim, "/fixtures", id=1001)
    assert body["response"][0]["teams"] is None


async def test_timeout_fault_does_not_block_stop(start_sim: StartSim) -> None:
    sim = await start_sim("quiet_0_0")
    sim.inject("/fixtures", "timeout")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TimeoutError):
            async with session.get(sim.base_url + "/fixtures", params={"id": "1001"},
                                   headers=KEY, timeout=aiohttp.ClientTimeout(total=0.2)):
                pass
    await sim.stop()  # the parked handler is released; pytest-timeout guards a hang
    assert sim.requests[-1].outcome == "timeout"


async def test_http_control_routes(start_sim: StartSim) -> None:
    clock = ManualClock(0)
    sim = await start_sim("three_two_var_recredit", clock=clock)
    async with aiohttp.ClientSession() as session:
        async with session.post(sim.base_url + "/_sim/clock", json={"set": 20}) as r:
            assert (await r.json())["minute"] == 20
        async with session.post(sim.base_url + "/_sim/clock", json={"advance": 5}) as r:
            assert (await r.json())["minute"] == 25
        async with session.post(sim.base_url + "/_sim/inject",
                                json={"route": "/fixtures", "fault": "http_500"}) as r:
            assert r.status == 200
        async with session.post(sim.base_url + "/_sim/inject", json={"fault": "nope"}) as r:
            assert r.status == 400
    assert (await get(sim, "/fixtures", id=2002))[0] == 500
    it = await item(sim, 2002)
    assert it["fixture"]["status"]["elapsed"] == 15
    async with aiohttp.ClientSession() as session, session.get(
            sim.base_url + "/_sim/calls") as r:
        calls = await r.json()
    assert [(c["path"], c["params"]) for c in calls] == [("/fixtures", {"id": "2002"})]


async def test_context_manager_and_scaled_clock() -> None:
    start = datetime(2026, 5, 1, 12, tzinfo=UTC)
    clock = ScaledClock(0.05, start=start)
    assert clock.to_datetime(10) == start + timedelta(seconds=0.5)
    assert clock.now_min() >= 0
    async with SimFootball("quiet_0_0", clock=clock) as sim:
        assert (await item(sim, 1001))["fixture"]["date"] == clock.to_datetime(10).isoformat()
    assert sim._runner is None


async def test_a_held_clock_shows_not_started_until_kick_off() -> None:
    """The demo and the crash run hold the day at minute 0 until the daemon is READY."""
    clock = ScaledClock(0.01, held=True)
    async with SimFootball("quiet_0_0", clock=clock) as sim:
        before = clock.to_datetime(0)
        await asyncio.sleep(0.2)  # 20 sim minutes if the clock ran
        assert clock.now_min() == 0.0
        assert (await item(sim, 1001))["fixture"]["status"]["short"] == "NS"
        clock.kick_off()
        assert clock.to_datetime(0) > before  # minute 0 is the kick-off, not the clock's making
        await asyncio.sleep(0.2)
        assert clock.now_min() >= 20
        assert (await item(sim, 1001))["fixture"]["status"]["short"] != "NS"


def test_shipped_scripts_load() -> None:
    # Other sims keep their own scripts in the same folder: check the match scripts.
    names = ["quiet_0_0", "three_two_var_recredit", "cup_et_penalties", "postponed", "many_25"]
    assert {p.stem for p in SCRIPTS_DIR.glob("*.toml")} >= set(names)
    for name in names:
        assert load_script(script_path(name)).fixtures
    assert len(load_script(script_path("many_25")).fixtures) == 25
    assert len({f.kickoff_min for f in load_script(script_path("many_25")).fixtures}) == 1


def test_matchday_generator_is_seeded_and_staggered() -> None:
    day = matchday(40, 5, seed=7, spacing_min=15)
    assert len(day.fixtures) == 40 and len({f.id for f in day.fixtures}) == 40
    assert len({f.league.id for f in day.fixtures}) == 5
    assert sorted({f.kickoff_min for f in day.fixtures}) == [15.0 * i for i in range(10)]
    assert day == matchday(40, 5, seed=7, spacing_min=15)
    assert day != matchday(40, 5, seed=8, spacing_min=15)


def test_invalid_scripts_are_rejected() -> None:
    base: dict[str, Any] = {"id": 1, "league": {"id": 1, "name": "L", "season": 2025},
                            "home": {"id": 1, "name": "H"}, "away": {"id": 2, "name": "A"}}
    with pytest.raises(ValidationError, match="unknown key"):
        FixtureScript.model_validate({**base, "timeline": [{"at": 1, "cancel": "ghost"}]})
    with pytest.raises(ValidationError, match="exactly one action"):
        FixtureScript.model_validate({**base, "timeline": [{"at": 1}]})
    with pytest.raises(ValidationError):
        FixtureScript.model_validate({**base, "colour": "red"})
    with pytest.raises(ValidationError, match="unique"):
        Script.model_validate({"fixtures": [base, base]})
