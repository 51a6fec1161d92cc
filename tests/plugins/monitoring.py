"""A match harness: real MongoDB stand-in, the simulator over HTTP, real ingest + monitor stages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from footyd.clients.football import FootballClient
from footyd.clients.store import Store
from footyd.config import Config
from footyd.sim.football import ManualClock, SimFootball
from footyd.stages.ingest import Ingest, IngestReport, Scope
from footyd.stages.monitor import CycleReport, Monitor
from tests.plugins.sim import SimScript, StartSim, api_config_for


@dataclass
class Match:
    """One simulated match day driven minute by minute."""

    sim: SimFootball
    clock: ManualClock
    store: Store
    client: FootballClient
    ingest: Ingest
    monitor: Monitor
    cfg: Config
    confirmed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    restart: Callable[[], Awaitable[None]] | None = None

    def now(self) -> datetime:
        return self.clock.to_datetime(self.clock.now_min())

    async def ingest_day(self, scope: Scope) -> IngestReport:
        return await self.ingest.run(scope, [self.now().date()])

    async def at(self, minute: float) -> CycleReport:
        self.clock.set(minute)
        return await self.monitor.poll_active()

    async def play(self, start: float, end: float, step: float = 1.0) -> list[CycleReport]:
        reports = []
        m = start
        while m <= end:
            reports.append(await self.at(m))
            m += step
        return reports

    async def goals(self, fixture_id: int, **query: Any) -> list[dict[str, Any]]:
        cursor = self.store.goals.find({"fixture_id": fixture_id, **query}).sort("first_seen_order", 1)
        return [d async for d in cursor]

    async def fixture(self, fixture_id: int) -> dict[str, Any]:
        doc = await self.store.fixtures.find_one({"_id": fixture_id})
        assert doc is not None, f"fixture {fixture_id} not stored"
        return doc

    async def finish_goals(self, fixture_id: int) -> None:
        """Play the downstream search stage's part: mark the fixture's live goals done."""
        await self.store.goals.update_many(
            {"fixture_id": fixture_id, "state": {"$in": ["pending", "confirmed", "searching"]}},
            {"$set": {"state": "done"}},
        )


MatchFactory = Callable[..., Awaitable[Match]]


@pytest.fixture
async def match_factory(store: Store, start_sim: StartSim) -> AsyncIterator[MatchFactory]:
    """`await match_factory(script, config={...}, api={...}, sim={...}, then_cancel=...)`."""
    async with AsyncExitStack() as stack:

        async def _make(script: SimScript, *, config: dict[str, Any] | None = None,
                        api: dict[str, Any] | None = None, sim: dict[str, Any] | None = None,
                        start_min: float = -60.0,
                        then_cancel: Callable[[str], Awaitable[object]] | None = None) -> Match:
            clock = ManualClock(start_min)
            simulator = await start_sim(script, clock=clock, **(sim or {}))
            cfg = Config.model_validate({"api_football": {}, **(config or {})})
            api_cfg = api_config_for(simulator, **(api or {}))
            confirmed: list[str] = []
            cancelled: list[str] = []

            async def on_confirmed(goal_id: str) -> bool:
                confirmed.append(goal_id)
                return True

            async def on_cancelled(goal_id: str) -> bool:
                cancelled.append(goal_id)
                if then_cancel is not None:  # e.g. the real retraction of the goal's clips
                    await then_cancel(goal_id)
                return True

            def now() -> datetime:
                return clock.to_datetime(clock.now_min())

            async def build() -> tuple[FootballClient, Monitor, Ingest]:
                client = await stack.enter_async_context(FootballClient(api_cfg, clock=now))
                monitor = Monitor(cfg, store, client, on_confirmed=on_confirmed,
                                  on_cancelled=on_cancelled, clock=now)
                return client, monitor, Ingest(store, client, clock=now)

            client, monitor, ingest = await build()
            match = Match(simulator, clock, store, client, ingest, monitor, cfg, confirmed, cancelled)

            async def restart() -> None:
                """A new process: fresh client and stages on the same MongoDB state."""
                match.client, match.monitor, match.ingest = await build()

            match.restart = restart
            return match

        yield _make
