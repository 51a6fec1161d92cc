"""The cheapest poll shape for one monitor cycle: `ids=` chunks or one `live=` call (pure)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from footyd.stages import rules

MAX_IDS = 20  # upstream answers nothing for more
MAX_LIVE_LEAGUES = 20  # beyond this, `live=all` (the URL stays short)
ShapeName = Literal["ids", "live_leagues", "live_all"]

# Starting byte estimates per item, replaced by what the answers weigh: an `ids` item carries
# lineups, statistics and players; a `live` item only events.
IDS_ITEM_BYTES = 26_000
LIVE_ITEM_BYTES = 4_000
LIVE_ALL_ITEMS = 150  # a busy Saturday worldwide


@dataclass(frozen=True)
class Tracked:
    """A fixture the cycle must poll, with what the last poll said about it."""

    id: int
    league_id: int
    status: str | None
    kickoff: datetime | None = None

    @property
    def expect_live(self) -> bool:
        return rules.classify_status(self.status) == "live"

    def before_kickoff(self, now: datetime | None) -> bool:
        """Not started and not due yet: nothing but an early kickoff can change soon."""
        return (now is not None and self.kickoff is not None and self.kickoff > now
                and rules.classify_status(self.status) == "scheduled")


@dataclass
class Estimates:
    """Answer sizes learned from earlier cycles (exponential moving averages)."""

    ids_item_bytes: float = IDS_ITEM_BYTES
    live_item_bytes: float = LIVE_ITEM_BYTES
    live_all_items: float = LIVE_ALL_ITEMS
    live_items_by_league: dict[int, int] = field(default_factory=dict)

    def learn(self, shape: ShapeName, items: int, size_bytes: int,
              by_league: dict[int, int] | None = None) -> None:
        """Fold one answer in: its bytes per item, and for `live` how many items came back."""
        if items > 0 and size_bytes > 0:
            per = size_bytes / items
            if shape == "ids":
                self.ids_item_bytes = 0.7 * self.ids_item_bytes + 0.3 * per
            else:
                self.live_item_bytes = 0.7 * self.live_item_bytes + 0.3 * per
        if shape == "live_all":
            self.live_all_items = float(items)
        if by_league is not None:
            self.live_items_by_league.update(by_league)


@dataclass(frozen=True)
class PollPlan:
    """What to ask: one `live` call (None: none) and the ids to poll by `ids=` chunks.

    `expect_live` are the fixtures the live answer should hold; any it lacks is polled by `ids=`
    in the same cycle (never counted as "goals missing" from the live answer alone).
    """

    shape: ShapeName
    live: str | None
    ids: list[int]
    expect_live: frozenset[int]
    calls: int
    est_bytes: int
    ride_along: frozenset[int] = frozenset()  # not kicked off: taken from the answer if there


def chunks(ids: Sequence[int], size: int = MAX_IDS) -> list[list[int]]:
    return [list(ids[i:i + size]) for i in range(0, len(ids), size)]


def _ids_plan(tracked: Sequence[Tracked], est: Estimates) -> PollPlan:
    ids = [t.id for t in tracked]
    return PollPlan("ids", None, ids, frozenset(), math.ceil(len(ids) / MAX_IDS),
                    int(len(ids) * est.ids_item_bytes))


def _live_plan(tracked: Sequence[Tracked], est: Estimates, now: datetime | None
               ) -> PollPlan | None:
    live = [t for t in tracked if t.expect_live]
    if not live:
        return None
    # fixtures before their kickoff need no ids= call of their own while a live= call is made
    # anyway: a kickoff shows in the answer; a postponement is seen by ids= once kickoff passes
    ride = [t for t in tracked if not t.expect_live and t.before_kickoff(now)]
    riders = {t.id for t in ride}
    rest = [t.id for t in tracked if not t.expect_live and t.id not in riders]
    leagues = sorted({t.league_id for t in live + ride})
    calls = 1 + math.ceil(len(rest) / MAX_IDS)
    rest_bytes = len(rest) * est.ids_item_bytes
    if len(leagues) <= MAX_LIVE_LEAGUES:
        per_league = {lg: sum(1 for t in live if t.league_id == lg) for lg in leagues}
        items = sum(max(per_league[lg], est.live_items_by_league.get(lg, 0)) for lg in leagues)
        return PollPlan("live_leagues", "-".join(map(str, leagues)), rest,
                        frozenset(t.id for t in live), calls,
                        int(items * est.live_item_bytes + rest_bytes), frozenset(riders))
    items_all = max(est.live_all_items, len(live))
    return PollPlan("live_all", "all", rest, frozenset(t.id for t in live), calls,
                    int(items_all * est.live_item_bytes + rest_bytes), frozenset(riders))


def plan(tracked: Iterable[Tracked], est: Estimates, *, allow_live: bool = True,
         now: datetime | None = None) -> PollPlan:
    """The plan with the fewest calls, then the fewest bytes; `ids` when they tie."""
    tracked = list(tracked)
    options = [_ids_plan(tracked, est)]
    live = _live_plan(tracked, est, now) if allow_live else None
    if live is not None:
        options.append(live)
    return min(options, key=lambda p: (p.calls, p.est_bytes))
