"""The monitor under API faults, quota limits and restarts: keeps going, no bogus goals."""

from __future__ import annotations

from footyd.metrics import REGISTRY
from footyd.sim.football_script import load_script, script_path
from footyd.stages.ingest import Scope
from tests.plugins.monitoring import Match, MatchFactory

FAST = {"monitor": {"activate_before_s": 300, "complete_grace_s": 600}}
MANY_LEAGUES = tuple(sorted({f.league.id for f in load_script(script_path("many_25")).fixtures}))
EXPECTED = {"M. Striker", "J. Late", "K. Winger", "D. Defender"}  # + h3 (M. Striker again)


async def _match(match_factory: MatchFactory, name: str = "three_two_var_recredit",
                 **kw: object) -> Match:
    m = await match_factory(script_path(name), config=FAST, **kw)
    await m.ingest_day(Scope(leagues=(39,)))
    return m


async def _final_goals(m: Match) -> tuple[list[str], list[str]]:
    goals = await m.goals(2002)
    live = sorted(g["scorer_name"] for g in goals if g["state"] != "cancelled")
    cancelled = sorted(g["scorer_name"] for g in goals if g["state"] == "cancelled")
    return live, cancelled


async def test_transient_faults_neither_create_nor_cancel_goals(match_factory: MatchFactory) -> None:
    m = await _match(match_factory, api={"timeout_s": 0.3, "max_retries": 1})
    await m.play(5, 49)
    # every kind of failure, each lasting long enough to cancel goals if failed polls counted
    for minute, fault in enumerate(["http_500", "http_499", "malformed_json", "errors_200",
                                    "timeout", "rate_limit_429"], start=50):
        m.sim.inject("/fixtures", fault, count=None)
        report = await m.at(minute)
        # a failed live= call is followed by ids= (which fails too here)
        assert report.failed_calls == report.calls >= 1 and report.polled == 0, fault
        m.sim.clear_faults()
    m.sim.inject("/fixtures", "rate_limit_429", count=1)  # one 429, then success: retried
    report = await m.at(56)
    assert report.failed_calls == 0 and report.polled == 1
    await m.play(57, 140)
    live, cancelled = await _final_goals(m)
    assert cancelled == ["O. Offside"]
    assert sorted(set(live)) == sorted(EXPECTED) and len(live) == 5


async def test_daily_quota_exhaustion_pauses_until_midnight(match_factory: MatchFactory) -> None:
    m = await _match(match_factory)
    await m.play(5, 20)
    m.sim.inject("/fixtures", "daily_exhausted", count=None)
    report = await m.at(21)
    assert report.failed_calls == 1
    assert REGISTRY.get_sample_value("footyd_api_quota_exhausted") == 1.0
    m.sim.clear_faults()
    calls = len(m.sim.requests)
    await m.play(22, 60)
    assert len(m.sim.requests) == calls  # nothing sent before the reset
    goals = await m.goals(2002)
    assert all(g["state"] != "cancelled" for g in goals)  # no poll happened: nothing missing
    await m.at(12 * 60 + 1)  # 00:01 UTC the next day (the manual clock starts at 12:00)
    assert len(m.sim.requests) > calls
    assert REGISTRY.get_sample_value("footyd_api_quota_exhausted") == 0.0


async def test_broken_fixture_payload_does_not_affect_the_others(match_factory: MatchFactory) -> None:
    m = await match_factory(script_path("many_25"), config=FAST)
    await m.ingest_day(Scope(leagues=MANY_LEAGUES))
    await m.play(-5, 20)
    m.sim.inject("/fixtures", "broken_item", count=1, index=3)
    report = await m.at(21)
    assert report.fixture_errors == 1 and report.polled == 24
    polled_now = await m.store.fixtures.count_documents({"last_polled_at": m.now()})
    assert polled_now == 24


async def test_restart_mid_match_resumes_counts_without_duplicates(match_factory: MatchFactory) -> None:
    m = await _match(match_factory)
    await m.play(5, 22)  # h1 appears at 22: seen once, pending
    (h1,) = await m.goals(2002)
    assert h1["state"] == "pending" and len(h1["seen_poll_ids"]) == 1
    assert m.restart is not None
    await m.restart()  # new client and monitor, same MongoDB: what a daemon restart does
    await m.play(23, 140)
    goals = await m.goals(2002)
    assert len(goals) == 6 and h1["_id"] in {g["_id"] for g in goals}
    h1 = next(g for g in goals if g["_id"] == h1["_id"])
    # counting carried on across the restart: confirmed by the first poll after it
    assert h1["state"] == "confirmed" and len(h1["seen_poll_ids"]) == 2
    live, cancelled = await _final_goals(m)
    assert cancelled == ["O. Offside"] and len(live) == 5


async def test_quota_pacing_stretches_the_interval(match_factory: MatchFactory) -> None:
    m = await match_factory(script_path("many_25"), config=FAST, sim={"daily_limit": 400})
    await m.ingest_day(Scope(leagues=MANY_LEAGUES))
    await m.play(-5, 0)
    # 25 fixtures = 2 calls a poll; 2.5 h at 30 s = 600 calls > 400 - 100 reserve
    assert m.monitor.interval_s > 30
    assert REGISTRY.get_sample_value("footyd_poll_interval_stretched") == 1.0
    assert REGISTRY.get_sample_value("footyd_poll_interval_seconds") == m.monitor.interval_s
