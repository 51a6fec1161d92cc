"""Ingest stage: fetch the tracked scope's fixtures for today + days_ahead and upsert them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import structlog
from prometheus_client import Counter

from footyd.clients.football import MALFORMED_ITEMS, Fixture, FixturesPage, FootballClient
from footyd.clients.store import BadDocument, DuplicateKey, Store
from footyd.clock import Clock
from footyd.errors import FootydError
from footyd.fence import UNFENCED, Fence
from footyd.metrics import REGISTRY
from footyd.records import fixture_fields
from footyd.stages import rules

log = structlog.get_logger(__name__)

INGESTED = Counter("footyd_ingested_fixtures", "Fixtures upserted by ingest, by result.",
                   ["result"], registry=REGISTRY)



@dataclass(frozen=True)
class Scope:
    teams: tuple[int, ...] = ()
    leagues: tuple[int, ...] = ()
    season: int | None = None

    @property
    def empty(self) -> bool:
        return not self.teams and not self.leagues

    def covers(self, fx: Fixture) -> bool:
        return (fx.league_id in self.leagues or fx.home_id in self.teams
                or fx.away_id in self.teams)


@dataclass
class IngestReport:
    days: list[date]
    plan: str = ""
    calls: int = 0  # calls of the plan (one per page asked for)
    failed_calls: int = 0
    requests: int = 0  # HTTP requests sent for them, retries included (the quota they cost)
    inserted: int = 0
    updated: int = 0
    skipped_completed: int = 0
    malformed: int = 0
    fixture_ids: list[int] = field(default_factory=list)


def initial_stage(status_short: str) -> rules.StageName:
    """The stage a newly seen fixture starts in (the monitor advances it from there)."""
    return "active" if rules.classify_status(status_short) == "live" else "staging"


class Ingest:
    """Chooses the request shape that costs the fewest calls for the scope, then upserts."""

    def __init__(self, store: Store, client: FootballClient, *, clock: Clock,
                 fence: Fence = UNFENCED) -> None:
        self._store = store
        self._fence = fence
        self._client = client
        self._clock = clock
        self._lock = asyncio.Lock()
        self._seasons: dict[int, int] = {}

    async def run(self, scope: Scope, days: Sequence[date]) -> IngestReport:
        """Ingest the given UTC days for the scope; one failed call never stops the others."""
        async with self._lock:
            report = IngestReport(days=list(days))
            sent_before = self._client.quota.calls_made
            if scope.empty or not days:
                log.info("ingest_skipped", reason="empty scope" if scope.empty else "no days")
                return report
            by_date = len(days)
            by_scope = len(scope.teams) * len(days) + len(scope.leagues) + sum(
                1 for lg in scope.leagues if scope.season is None and lg not in self._seasons)
            if by_date <= by_scope:
                report.plan = "by_date"
                for day in days:
                    await self._fetch(report, scope, self._client.fixtures_by_date(day))
            else:
                report.plan = "by_scope"
                await self._by_scope(report, scope, days)
            report.requests = self._client.quota.calls_made - sent_before
            log.info("ingest_done", plan=report.plan, days=[d.isoformat() for d in days],
                     calls=report.calls, failed_calls=report.failed_calls,
                     requests=report.requests,
                     inserted=report.inserted, updated=report.updated,
                     skipped_completed=report.skipped_completed, malformed=report.malformed)
            return report

    async def _by_scope(self, report: IngestReport, scope: Scope, days: Sequence[date]) -> None:
        for league in scope.leagues:
            season = scope.season or self._seasons.get(league)
            if season is None:
                report.calls += 1
                try:
                    season = self._seasons[league] = await self._client.current_season(league)
                except FootydError as exc:
                    report.failed_calls += 1
                    log.warning("season_lookup_failed", league_id=league, error=str(exc))
                    continue
            await self._fetch(report, scope, self._client.fixtures_between(
                min(days), max(days), league=league, season=season))
        for team in scope.teams:
            for day in days:
                await self._fetch(report, scope, self._client.fixtures_by_date(day, team=team))

    async def _fetch(self, report: IngestReport, scope: Scope, call: Awaitable[FixturesPage]) -> None:
        report.calls += 1
        try:
            page = await call
        except FootydError as exc:
            report.failed_calls += 1
            log.warning("ingest_call_failed", error=str(exc), error_type=type(exc).__name__)
            return
        for bad in page.malformed:
            report.malformed += 1
            MALFORMED_ITEMS.labels(bad.kind).inc()
            log.warning("fixture_payload_malformed", fixture_id=bad.fixture_id,
                        reason=bad.kind, detail=bad.reason)
        for fx in page.items:
            if scope.covers(fx) and min(report.days) <= fx.kickoff.date() <= max(report.days):
                await self._upsert(report, fx)

    async def _upsert(self, report: IngestReport, fx: Fixture) -> None:
        now = self._clock()
        self._fence.check()  # a day listing is not worth a write once another replica leads
        try:
            result = await self._store.fixtures.update_one(
                {"_id": fx.id, "stage": {"$ne": "completed"}},
                {
                    "$set": {**fixture_fields(fx), "ingested_at": now, "updated_at": now},
                    "$setOnInsert": {"stage": initial_stage(fx.status_short),
                                     "created_at": now, "terminal_since": None},
                },
                upsert=True,
            )
        except (OverflowError, RecursionError, BadDocument) as exc:
            report.malformed += 1  # hostile data the parser let through: this item alone
            MALFORMED_ITEMS.labels("unprocessable").inc()
            log.warning("fixture_payload_malformed", fixture_id=fx.id, reason="unprocessable",
                        detail=str(exc)[:200])
            return
        except DuplicateKey:
            report.skipped_completed += 1  # completed fixtures never move back
            INGESTED.labels("completed").inc()
            return
        report.fixture_ids.append(fx.id)
        if result.upserted_id is not None:
            report.inserted += 1
            INGESTED.labels("inserted").inc()
            log.info("fixture_ingested", fixture_id=fx.id, kickoff=fx.kickoff.isoformat(),
                     status=fx.status_short, home=fx.home_name, away=fx.away_name)
        else:
            report.updated += 1
            INGESTED.labels("updated").inc()


def ingest_days(now: datetime, days_ahead: int) -> list[date]:
    """Today (UTC) plus days_ahead."""
    today = now.astimezone(UTC).date()
    return [today + timedelta(days=i) for i in range(days_ahead + 1)]
