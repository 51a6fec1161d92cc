"""Quota pacing: how many API calls polling will need for the rest of the UTC day (pure)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MAX_IDS_PER_CALL = 20
MATCH_SPAN = timedelta(hours=2, minutes=30)  # kickoff to final whistle incl. extra time, roughly


@dataclass(frozen=True)
class Window:
    """When a fixture needs polling: from `start` (now for active ones) to `end`."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class PacingDecision:
    interval_s: float
    projected_calls: int
    budget: int
    stretched: bool
    sufficient: bool  # False: even max_interval_s overspends the budget


def end_of_day(now: datetime) -> datetime:
    day = now.astimezone(UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def projected_calls(windows: Sequence[Window], *, now: datetime, interval_s: float,
                    live_shape: bool = False) -> int:
    """Calls needed to poll every window at `interval_s` until midnight: 20 ids a call, or one
    `live=` call a cycle when `live_shape` (the ids= checks around kickoff and full time are in
    the reserve)."""
    horizon = end_of_day(now)
    calls = 0
    t = now
    step = timedelta(seconds=interval_s)
    # windows are few (tens) and steps at most 86400/15: a direct sweep is cheap enough
    while t < horizon:
        live = sum(1 for w in windows if w.start <= t < w.end)
        if live:
            calls += 1 if live_shape else math.ceil(live / MAX_IDS_PER_CALL)
        elif not any(w.start > t for w in windows):
            break
        t += step
    return calls


def choose_interval(
    windows: Sequence[Window],
    *,
    now: datetime,
    base_interval_s: float,
    max_interval_s: float,
    remaining_day: int | None,
    reserve: int,
    other_calls: int = 0,
    live_shape: bool = False,
) -> PacingDecision:
    """The shortest interval >= base whose projected calls fit the day's remaining budget."""
    if remaining_day is None:
        return PacingDecision(base_interval_s, 0, -1, stretched=False, sufficient=True)
    budget = max(0, remaining_day - reserve - other_calls)
    interval = base_interval_s
    while True:
        need = projected_calls(windows, now=now, interval_s=interval, live_shape=live_shape)
        if need <= budget:
            return PacingDecision(interval, need, budget, interval > base_interval_s, True)
        if interval >= max_interval_s:
            return PacingDecision(interval, need, budget, interval > base_interval_s, False)
        interval = min(max_interval_s, interval * 1.25)


def polling_window(kickoff: datetime, now: datetime, *, active: bool) -> Window:
    """The span a fixture is expected to need polling."""
    start = now if active else max(now, kickoff)
    return Window(start=start, end=max(start, kickoff + MATCH_SPAN))
