"""Monitor stage: advance fixtures, poll active ones (cheapest shape), reconcile their goals."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from prometheus_client import Counter, Gauge, Histogram

from footyd.clients.football import MALFORMED_ITEMS, Fixture, FootballClient, MalformedItem
from footyd.clients.store import BadDocument, Store
from footyd.clock import Clock, utcnow
from footyd.config import Config
from footyd.errors import FootydError, MalformedPayload, QuotaExhausted
from footyd.fence import UNFENCED, Fence
from footyd.metrics import REGISTRY
from footyd.pipeline import Handoff
from footyd.records import STAGE_STAMP
from footyd.stages import monitor_plan, pacing, rules
from footyd.stages.monitor_goals import GOAL_EVENTS, GoalWriter, known_goal
from footyd.stages.monitor_plan import Estimates, PollPlan, Tracked, chunks
from footyd.stages.monitor_write import FIXTURE_PROJECTION, FixtureWrites

log = structlog.get_logger(__name__)

POLL_CYCLES = Counter("footyd_poll_cycles", "Monitor poll cycles by outcome.", ["outcome"],
                      registry=REGISTRY)
POLL_SECONDS = Histogram("footyd_poll_cycle_seconds", "Wall time of a monitor poll cycle.",
                         registry=REGISTRY)
POLL_INTERVAL = Gauge("footyd_poll_interval_seconds", "Current interval between active polls.",
                      registry=REGISTRY)
POLL_STRETCHED = Gauge("footyd_poll_interval_stretched",
                       "1 while polling is slowed down to stay inside the daily quota.",
                       registry=REGISTRY)
FIXTURE_ERRORS = Counter("footyd_fixture_errors", "Fixtures whose poll data could not be processed.",
                         registry=REGISTRY)
POLL_CALLS = Counter("footyd_poll_calls", "Monitor API calls by poll shape (ids, live_leagues, "
                     "live_all).", ["shape"], registry=REGISTRY)
FIXTURES = Gauge("footyd_fixtures", "Fixtures per stage.", ["stage"], registry=REGISTRY)
TRANSITIONS = Counter("footyd_fixture_transitions", "Fixture stage transitions.", ["to"],
                      registry=REGISTRY)




@dataclass
class CycleReport:
    """What one poll cycle did (returned for tests, the CLI and benchmarks)."""

    poll_id: str
    polled: int = 0
    calls: int = 0
    failed_calls: int = 0
    fixture_errors: int = 0
    transitions: dict[int, str] = field(default_factory=dict)
    took_s: float = 0.0
    shape: str = "ids"
    writes: int = 0  # fixture write operations (bulk members) this cycle
    bytes_written: int = 0  # BSON bytes of those fixture updates


class Monitor:
    """Polls active fixtures; cycles never overlap; one fixture's bad data never stops the others."""

    def __init__(
        self,
        cfg: Config,
        store: Store,
        client: FootballClient,
        *,
        on_confirmed: Handoff,
        on_cancelled: Handoff,
        set_interval: Callable[[float], None] = lambda _s: None,
        clock: Clock = utcnow,
        fence: Fence = UNFENCED,
    ) -> None:
        self.cfg = cfg
        self._store = store
        self._client = client
        self._fence = fence
        self._goals = GoalWriter(store, on_confirmed=on_confirmed, on_cancelled=on_cancelled,
                                 fence=fence)
        self._set_interval = set_interval
        self._clock = clock
        self._lock = asyncio.Lock()
        self._estimates = Estimates()
        self.interval_s = cfg.monitor.poll_interval_s

    def apply_config(self, cfg: Config) -> None:
        self.cfg = cfg
        if cfg.monitor.poll_interval_s != self.interval_s:
            self.interval_s = cfg.monitor.poll_interval_s
            self._set_interval(self.interval_s)

    def _goal_rules(self) -> rules.GoalRules:
        g = self.cfg.goals
        return rules.GoalRules(confirm_polls=g.confirm_polls, cancel_polls=g.cancel_polls,
                               match_window_min=g.match_window_min)

    # -- the scheduled jobs ------------------------------------------------------------------
    async def poll_active(self) -> CycleReport:
        """Activate due fixtures, poll the active ones, reconcile goals, complete finished ones."""
        async with self._lock:
            started = time.monotonic()
            report = CycleReport(poll_id=uuid.uuid4().hex[:12])
            now = self._clock()
            await self._activate_due(now, report)
            grace = timedelta(seconds=self.cfg.monitor.complete_grace_s)
            tracked: list[Tracked] = []
            late: list[Tracked] = []
            async for doc in self._store.fixtures.find(
                    {"stage": "active"},
                    {"terminal_since": 1, "league_id": 1, "status": 1, "kickoff": 1}):
                since = doc.get("terminal_since")
                item = Tracked(doc["_id"], doc.get("league_id", 0), doc.get("status"), doc.get("kickoff"))
                (tracked if since is None or now - since < grace else late).append(item)
            if late:
                # past its grace a finished fixture is polled only while a goal of it waits for
                # polls to confirm or cancel it: unpolled, it would stay pending (and the fixture
                # active) for good, e.g. after a daemon down across the final whistle
                waiting = set(await self._store.goals.distinct("fixture_id", {
                    "fixture_id": {"$in": [t.id for t in late]}, "state": "pending"}))
                tracked += [t for t in late if t.id in waiting]
            await self._poll_tracked(tracked, report, now)
            await self._complete_finished(now, report)
            report.took_s = time.monotonic() - started
            POLL_SECONDS.observe(report.took_s)
            POLL_CYCLES.labels("ok" if not report.failed_calls else "partial").inc()
            log.info("poll_cycle_done", poll_id=report.poll_id, polled=report.polled,
                     shape=report.shape, calls=report.calls, failed_calls=report.failed_calls,
                     writes=report.writes,
                     fixture_errors=report.fixture_errors, took_s=round(report.took_s, 3))
            await self._pace(now)
            await self._count_stages()
            return report

    async def check_staging(self) -> CycleReport:
        """Poll staged fixtures kicking off within a day: kickoff changes, early starts, PST."""
        async with self._lock:
            report = CycleReport(poll_id=uuid.uuid4().hex[:12])
            now = self._clock()
            horizon = now + timedelta(days=1)
            ids = [d["_id"] async for d in self._store.fixtures.find(
                {"stage": "staging", "kickoff": {"$lte": horizon}}, {"_id": 1})]
            await self._poll(ids, report, now)
            log.info("staging_check_done", polled=report.polled, calls=report.calls,
                     transitions=len(report.transitions))
            return report

    # -- steps -----------------------------------------------------------------------------------
    async def _activate_due(self, now: datetime, report: CycleReport) -> None:
        due = now + timedelta(seconds=self.cfg.monitor.activate_before_s)
        async for doc in self._store.fixtures.find({"stage": "staging", "kickoff": {"$lte": due}}):
            await self._advance(doc, now, report)

    async def _poll(self, ids: Sequence[int], report: CycleReport, now: datetime) -> None:
        """Poll `ids` by `ids=` chunks (the staging check)."""
        for chunk in chunks(ids):
            if not await self._poll_ids(chunk, report, now):
                return

    async def _poll_tracked(self, tracked: list[Tracked], report: CycleReport,
                            now: datetime) -> None:
        """Poll the active fixtures with the cheapest shape; whatever `live` lacks goes by ids."""
        plan = monitor_plan.plan(tracked, self._estimates, now=now,
                                 allow_live=self.cfg.monitor.poll_shape == "auto")
        report.shape = plan.shape
        ids = list(plan.ids)
        if plan.live is not None:
            got = await self._poll_live(plan, report, now)
            if got is None:
                return  # quota spent
            ids += [t.id for t in tracked if t.id in plan.expect_live and t.id not in got]
        for chunk in chunks(ids):
            if not await self._poll_ids(chunk, report, now):
                return

    async def _poll_live(self, plan: PollPlan, report: CycleReport,
                         now: datetime) -> set[int] | None:
        """One `live` call; returns the ids it answered for (None: quota spent)."""
        assert plan.live is not None
        report.calls += 1
        POLL_CALLS.labels(plan.shape).inc()
        leagues = None if plan.live == "all" else [int(x) for x in plan.live.split("-")]
        try:
            page = await self._client.fixtures_live(leagues)
        except QuotaExhausted:
            report.failed_calls += 1
            POLL_CYCLES.labels("quota_paused").inc()
            return None
        except FootydError as exc:
            report.failed_calls += 1
            log.warning("poll_call_failed", shape=plan.shape, error=str(exc),
                        error_type=type(exc).__name__)
            return set()  # every expected fixture is polled by ids this cycle instead
        by_league: dict[int, int] = {}
        for fx in page.items:
            by_league[fx.league_id] = by_league.get(fx.league_id, 0) + 1
        self._estimates.learn(plan.shape, len(page.items) + len(page.malformed),
                              page.size_bytes, by_league if plan.shape == "live_leagues" else None)
        ours = plan.expect_live | plan.ride_along
        wanted = [fx for fx in page.items if fx.id in ours]
        bad = [b for b in page.malformed if b.fixture_id in ours]
        await self._apply(wanted, bad, ours, report, now)
        # a malformed item was answered for: asking again by ids would fail the same way
        return {fx.id for fx in wanted} | {b.fixture_id for b in bad if b.fixture_id is not None}

    async def _poll_ids(self, chunk: list[int], report: CycleReport, now: datetime) -> bool:
        """One `ids=` call; False when the daily quota is spent (stop the cycle)."""
        report.calls += 1
        POLL_CALLS.labels("ids").inc()
        try:
            page = await self._client.fixtures_by_ids(chunk)
        except QuotaExhausted:
            report.failed_calls += 1
            POLL_CYCLES.labels("quota_paused").inc()
            return False  # the client logged it loudly once; nothing more may be sent today
        except FootydError as exc:
            report.failed_calls += 1
            log.warning("poll_call_failed", shape="ids", fixture_ids=chunk, error=str(exc),
                        error_type=type(exc).__name__)
            return True
        self._estimates.learn("ids", len(page.items) + len(page.malformed), page.size_bytes)
        await self._apply(page.items, page.malformed, set(chunk), report, now)
        answered = {fx.id for fx in page.items} | {b.fixture_id for b in page.malformed}
        missing = [i for i in chunk if i not in answered]
        if missing:
            log.info("fixtures_missing_from_poll", fixture_ids=missing)
        return True

    async def _apply(self, items: list[Fixture], malformed: list[MalformedItem],
                     asked: Collection[int], report: CycleReport, now: datetime) -> None:
        """Reconcile one answer: changed fixtures in one bulk write, goals only when they change."""
        for bad in malformed:
            report.fixture_errors += 1
            FIXTURE_ERRORS.inc()
            MALFORMED_ITEMS.labels(bad.kind).inc()
            log.warning("fixture_payload_malformed", fixture_id=bad.fixture_id,
                        reason=bad.kind, detail=bad.reason)
        items = [fx for fx in items if fx.id in asked]
        if not items:
            return
        ids = [fx.id for fx in items]
        docs = {d["_id"]: d async for d in self._store.fixtures.find(
            {"_id": {"$in": ids}}, FIXTURE_PROJECTION)}
        goals: dict[int, list[dict[str, Any]]] = {}
        async for g in self._store.goals.find({"fixture_id": {"$in": ids}}):
            goals.setdefault(g["fixture_id"], []).append(g)
        writes = FixtureWrites(now, keep_raw=self.cfg.monitor.keep_raw)
        advance: list[dict[str, Any]] = []
        for fx in items:
            doc = docs.get(fx.id)
            if doc is None:
                continue  # not ours (deleted meanwhile)
            structlog.contextvars.bind_contextvars(fixture_id=fx.id)
            try:
                report.polled += 1
                merged = writes.add(fx, doc)
                if merged["stage"] == "active" or rules.classify_status(fx.status_short) == "live":
                    await self._reconcile_goals(fx, goals.get(fx.id, []), report.poll_id, now)
                advance.append(merged)
            except (MalformedPayload, KeyError, TypeError, ValueError, OverflowError,
                    RecursionError, BadDocument) as exc:
                # hostile data the parser let through: this fixture alone is skipped
                report.fixture_errors += 1
                FIXTURE_ERRORS.inc()
                MALFORMED_ITEMS.labels("unprocessable").inc()
                log.warning("fixture_processing_failed", fixture_id=fx.id,
                            reason="unprocessable", error=str(exc)[:200], exc_info=True)
            finally:
                structlog.contextvars.unbind_contextvars("fixture_id")
        report.writes += await writes.flush(self._store, self._fence)
        report.bytes_written += writes.bytes
        for merged in advance:
            await self._advance(merged, now, report)

    async def _reconcile_goals(self, fx: Fixture, docs: list[dict[str, Any]], poll_id: str,
                               now: datetime) -> None:
        read = rules.read_goal_events(fx.events, home_id=fx.home_id, away_id=fx.away_id)
        for problem in read.problems:
            log.warning("goal_event_malformed", fixture_id=fx.id, problem=problem)
        if read.unreadable:
            # an unreadable entry may be a known goal: none may count as missing this poll
            GOAL_EVENTS.labels("unreadable").inc(read.unreadable)
            log.warning("goal_events_unreadable", fixture_id=fx.id, unreadable=read.unreadable,
                        action="missing counts held")
        known = [known_goal(d) for d in docs]
        changes = rules.reconcile(known, read.goals, poll_id, self._goal_rules(),
                                  hold_missing=read.unreadable > 0)
        await self._goals.apply(fx, changes, poll_id=poll_id, now=now, order_base=len(docs))

    async def _advance(self, doc: dict[str, Any], now: datetime, report: CycleReport) -> None:
        open_goals = 1  # only a finished fixture's move depends on its goals: count them then
        if rules.classify_status(doc.get("status")) == "finished":
            open_goals = await self._store.goals.count_documents(
                {"fixture_id": doc["_id"], "state": {"$nin": sorted(rules.TERMINAL_GOAL_STATES)}})
        target = rules.next_stage(
            stage=doc["stage"],
            status_short=doc.get("status"),
            kickoff=doc["kickoff"],
            now=now,
            activate_before_s=self.cfg.monitor.activate_before_s,
            terminal_since=doc.get("terminal_since"),
            goals_all_terminal=open_goals == 0,
            complete_grace_s=self.cfg.monitor.complete_grace_s,
        )
        if target is None:
            return
        self._fence.check()
        moved = await self._store.fixtures.find_one_and_update(
            self._fence.guard({"_id": doc["_id"], "stage": doc["stage"]}),
            self._fence.stamp({"$set": {"stage": target, STAGE_STAMP[target]: now, "updated_at": now}}),
        )
        if moved is not None:
            report.transitions[doc["_id"]] = target
            TRANSITIONS.labels(target).inc()
            log.info("fixture_stage_changed", fixture_id=doc["_id"], from_stage=doc["stage"],
                     to_stage=target, status=doc.get("status"))

    async def _complete_finished(self, now: datetime, report: CycleReport) -> None:
        async for doc in self._store.fixtures.find({"stage": "active", "terminal_since": {"$ne": None}}):
            await self._advance(doc, now, report)

    async def _pace(self, now: datetime) -> None:
        windows = []
        async for doc in self._store.fixtures.find(
            {"stage": {"$in": ["staging", "active"]}, "kickoff": {"$lt": pacing.end_of_day(now)}},
            {"stage": 1, "kickoff": 1},
        ):
            windows.append(pacing.polling_window(doc["kickoff"], now, active=doc["stage"] == "active"))
        quota = self._client.quota
        mon = self.cfg.monitor
        decision = pacing.choose_interval(
            windows, now=now, base_interval_s=mon.poll_interval_s,
            max_interval_s=max(mon.max_poll_interval_s, mon.poll_interval_s),
            remaining_day=quota.remaining_day, reserve=self.cfg.api_football.daily_reserve,
            live_shape=mon.poll_shape == "auto",
        )
        POLL_STRETCHED.set(1 if decision.stretched else 0)
        if decision.interval_s != self.interval_s:
            log.warning("poll_interval_changed", interval_s=round(decision.interval_s, 1),
                        base_interval_s=mon.poll_interval_s, projected_calls=decision.projected_calls,
                        budget=decision.budget, remaining_day=quota.remaining_day)
            self.interval_s = decision.interval_s
            self._set_interval(decision.interval_s)
        if not decision.sufficient:
            log.error("quota_budget_insufficient", projected_calls=decision.projected_calls,
                      budget=decision.budget, interval_s=decision.interval_s)
        POLL_INTERVAL.set(self.interval_s)

    async def _count_stages(self) -> None:
        counts = {"staging": 0, "active": 0, "completed": 0}
        async for row in await self._store.fixtures.aggregate(
                [{"$group": {"_id": "$stage", "n": {"$sum": 1}}}]):
            counts[row["_id"]] = row["n"]
        for stage, n in counts.items():
            FIXTURES.labels(stage).set(n)

