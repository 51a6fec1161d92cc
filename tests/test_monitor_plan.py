"""The poll-shape planner and quota pacing with the live shape (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from footyd.stages import pacing
from footyd.stages.monitor_plan import Estimates, Tracked, plan


def _tracked(n: int, status: str = "2H", leagues: int = 3, start: int = 1) -> list[Tracked]:
    return [Tracked(start + i, 100 + i % leagues, status) for i in range(n)]


def test_thirty_live_fixtures_take_one_live_call_instead_of_two_ids_calls() -> None:
    p = plan(_tracked(30), Estimates())
    assert (p.shape, p.calls, p.live, p.ids) == ("live_leagues", 1, "100-101-102", [])
    assert p.expect_live == frozenset(range(1, 31))


def test_not_kicked_off_fixtures_go_by_ids() -> None:
    p = plan(_tracked(3, status="NS"), Estimates())
    assert (p.shape, p.calls, p.live) == ("ids", 1, None)


def test_equal_calls_are_decided_by_bytes() -> None:
    est = Estimates()
    assert plan(_tracked(5), est).shape == "live_leagues"  # 1 call each; live items are small
    est.live_items_by_league = {100: 400, 101: 400, 102: 400}  # crowded leagues: ids is lighter
    assert plan(_tracked(5), est).shape == "ids"


def test_finished_and_missing_fixtures_ride_along_by_ids() -> None:
    tracked = _tracked(25) + _tracked(3, status="FT", start=100)
    p = plan(tracked, Estimates())
    assert (p.shape, p.calls, p.ids) == ("live_leagues", 2, [100, 101, 102])


def test_fixtures_before_kickoff_ride_along_on_a_live_call() -> None:
    now = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
    soon = [Tracked(50 + i, 200, "NS", now + timedelta(minutes=3)) for i in range(4)]
    late = [Tracked(60, 200, "NS", now - timedelta(minutes=1))]  # kickoff passed, still NS
    p = plan(_tracked(25) + soon + late, Estimates(), now=now)
    assert (p.shape, p.calls, p.ids) == ("live_leagues", 2, [60])
    assert p.ride_along == frozenset(range(50, 54)) and p.live == "100-101-102-200"
    alone = plan(soon, Estimates(), now=now)  # nothing in play: no live call to ride on
    assert (alone.shape, alone.calls) == ("ids", 1)


def test_many_leagues_use_live_all_and_ids_only_when_asked() -> None:
    p = plan(_tracked(30, leagues=25), Estimates())
    assert (p.shape, p.live) == ("live_all", "all")
    assert plan(_tracked(30), Estimates(), allow_live=False).shape == "ids"


def test_pacing_projects_one_call_a_cycle_with_the_live_shape() -> None:
    now = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
    windows = [pacing.Window(now, now + timedelta(hours=2)) for _ in range(30)]
    ids = pacing.projected_calls(windows, now=now, interval_s=60)
    live = pacing.projected_calls(windows, now=now, interval_s=60, live_shape=True)
    assert (ids, live) == (240, 120)
