"""Search stage: runs a goal's search attempts, records candidate clips, retracts on cancel.

Write order (a SIGKILL at any instant loses nothing and duplicates nothing):
1. Sources are queried (no writes).
2. Each new candidate is inserted as a clip tagged `search_attempt` = "a{k}"; the unique index
   (goal_id, source_url) makes a re-insert a DuplicateKey, i.e. "already seen".
3. The attempt is recorded in ONE guarded update ($addToSet "a{k}", $push search_log, state,
   next_search_at), only if the goal is still searchable and "a{k}" is not yet recorded.
4. Only then are the attempt's still-"discovered" clips handed to download.
A crash between 2 and 3 re-runs attempt k later: its candidates are duplicates, and the clips
tagged "a{k}" are re-read from MongoDB, so the rerun records and hands off the same clips. A crash
between 3 and 4 leaves discovered clips with next_attempt_at <= now: download's due scan finds them.
Retraction (search_retract.py) deletes a blob before writing the clip's "retracted" state.

Search from the first sighting (`search.before_confirm`, default on): a pending goal is searched
like a confirmed one, but its attempts keep it `pending` (the monitor alone confirms), and when its
schedule is spent before confirmation it is parked (next_search_at = None) for the monitor to
wake. Its clips are downloaded and deduplicated; the page, the feed and webhooks show nothing of
a goal until it is confirmed, and a goal cancelled first is retracted like any cancelled goal.

Feeds push, searches pull: a feed source (one request serves every goal, e.g. the Reddit
listing) is also read every `feed_interval_s` by `push_feeds`, which matches the posts against
every searchable goal at once and inserts new ones tagged `search_attempt` = "feed" (same unique
index, same write-then-hand-off order; download's due scan finds any whose hand-off a crash lost).
No attempt is spent, so a post reaches download one feed interval after it is read, not one
attempt interval. A goal cancelled meanwhile has its pushed clips retracted as in step 3.

A deferred attempt (no source answered, at least one said "rate limited", the rest unavailable)
is not spent: one guarded update ($inc search_deferrals, $push search_log {deferred: true},
next_search_at soon) replaces step 3, only while "a{k}" is unrecorded and no clip is tagged "a{k}"
(a crashed earlier run's clips make the rerun record the attempt as usual). After
`search.attempts` deferrals a goal's attempts are spent normally, so it cannot search forever.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from prometheus_client import Counter

from footyd import records
from footyd.clients.blobs import BlobStore
from footyd.clients.store import DuplicateKey, Store
from footyd.clock import Clock, utcnow
from footyd.config import Config
from footyd.errors import FootydError, Permanent, RateLimited
from footyd.media.filters import rejection
from footyd.metrics import REGISTRY
from footyd.moves import move_clips, move_goal
from footyd.pipeline import Handoff
from footyd.sources import (
    Candidate,
    GoalQuery,
    Source,
    SourceUnavailable,
    build_query,
    feed_interval_s,
)
from footyd.stages.search_retract import retract_goal
from footyd.stages.search_rules import (
    ANSWERED,
    EPOCH,
    SourceResult,
    aware,
    deferral_s,
    goal_outcome,
    newest_first,
    next_attempt_at,
    source_url,
)

log = structlog.get_logger(__name__)

FEED_ATTEMPT = "feed"  # the search_attempt tag of clips a feed pushed (no attempt is spent)
FEED_MAX_GOALS = 500  # goals one feed pass matches against (newest first)
DONE_RECHECK_MAX_S = 30.0  # attempts spent, clips still in flight: look again this soon
TEXT_MAX_CHARS = 1000
ERROR_MAX_CHARS = 300

SEARCH_ATTEMPTS = Counter(
    "footyd_search_attempts",
    "Search attempts by outcome (new_clips, no_new_clips, sources_failed, deferred).",
    ["outcome"], registry=REGISTRY,
)
GOALS_DONE = Counter(
    "footyd_goals_done", "Goals whose search ended, by outcome.", ["outcome"], registry=REGISTRY
)
FEED_CLIPS = Counter(
    "footyd_feed_clips", "Clips a feed source pushed to a goal between its attempts.",
    registry=REGISTRY,
)
SEARCH_CANDIDATES = Counter(
    "footyd_search_candidates", "Candidates seen by search: new, seen (skipped) or filtered.",
    ["result"], registry=REGISTRY,
)



def _attempt_move(goal: dict[str, Any]) -> dict[str, Any]:
    """An attempt leaves a pending goal pending (only the monitor confirms); else it is searching."""
    if goal.get("state") == records.GOAL_PENDING:
        return {"from_": records.GOAL_PENDING, "to": records.GOAL_PENDING}
    return {"from_": records.GOAL_SEARCHABLE, "to": records.GOAL_SEARCHING}


def _running_score(doc: dict[str, Any]) -> tuple[int, int] | None:
    """The (home, away) score right after the goal, when the goal record has it."""
    home, away = doc.get("score_home"), doc.get("score_away")
    if type(home) is int and type(away) is int:  # bool is not a score
        return (home, away)
    return None


class SearchStage:
    """Implements footyd.stages.base.Stage for goals (item id = goal id)."""

    name = "search"

    def __init__(
        self,
        cfg: Config,
        store: Store,
        blobs: BlobStore,
        sources: Sequence[Source],
        *,
        to_download: Handoff,
        clock: Clock = utcnow,
    ) -> None:
        self._cfg = cfg
        self._store = store
        self._blobs = blobs
        self._sources = list(sources)
        self._to_download = to_download
        self._clock = clock

    @property
    def feed_interval_s(self) -> float | None:
        """How often push_feeds should run (the fastest feed's interval); None without feeds, or
        with `search.feeds_push = false` (feeds are then read only by attempts)."""
        if not self._cfg.search.feeds_push:
            return None
        intervals = [i for i in map(feed_interval_s, self._sources) if i is not None]
        return min(intervals) if intervals else None

    async def push_feeds(self) -> int:
        """Match every feed's current posts against each searchable goal; new clips go to download.

        A feed reads its listing at most once per interval however many goals ask, so this costs
        one request per feed whatever the number of goals. Returns the clips pushed.
        """
        feeds = [s for s in self._sources if feed_interval_s(s) is not None]
        if not feeds:
            return 0
        feeds = [s for s in feeds if await self._refresh_feed(s)]
        if not feeds:
            return 0
        cursor = self._store.goals.find({"state": {"$in": self._searchable()}}).sort(
            "first_seen_at", -1).limit(FEED_MAX_GOALS)
        pushed = 0
        async for goal in cursor:
            with structlog.contextvars.bound_contextvars(goal_id=goal["_id"]):
                pushed += await self._push_goal(goal, feeds)
        return pushed

    async def _refresh_feed(self, source: Source) -> bool:
        """Read a feed now, so this pass sees what was posted since the last one."""
        refresh = getattr(source, "refresh_feed", None)
        if refresh is None:
            return True
        try:
            await asyncio.wait_for(refresh(), self._cfg.search.source_timeout_s)
        except Exception as exc:  # one feed failing skips this pass for it; attempts go on
            log.info("feed_refresh_failed", source=source.name, error=f"{type(exc).__name__}: {exc}"[
                :ERROR_MAX_CHARS])
            return False
        return True

    async def _push_goal(self, goal: dict[str, Any], feeds: Sequence[Source]) -> int:
        now = self._clock()
        first_seen = aware(goal.get("first_seen_at")) or now
        since = first_seen - timedelta(seconds=self._cfg.search.window_margin_s)
        query = self._query(goal)
        results = await asyncio.gather(*(self._run_source(s, query, since) for s in feeds))
        candidates = newest_first(results)
        if not candidates:
            return 0
        _seen, new_ids = await self._insert_candidates(goal, FEED_ATTEMPT, candidates, now)
        if not new_ids:
            return 0
        current = await self._store.goals.find_one({"_id": goal["_id"]}, {"state": 1})
        if current is None or current.get("state") not in self._searchable():
            await self._attempt_lost(goal["_id"], FEED_ATTEMPT, now)  # cancelled meanwhile
            return 0
        FEED_CLIPS.inc(len(new_ids))
        log.info("feed_clips_pushed", clips=len(new_ids),
                 sources=sorted({c.source for c in candidates}))
        for clip_id in new_ids:
            if not await self._to_download(clip_id):
                log.info("clip_handoff_refused", clip_id=clip_id)  # download's due scan has it
        return len(new_ids)

    @property
    def sources(self) -> list[Source]:
        """The sources each attempt asks (their health is shown by `footyd status`)."""
        return list(self._sources)

    def workers(self) -> int:
        return self._cfg.search.workers

    def _searchable(self) -> list[str]:
        """The goal states searched now: pending ones too with `search.before_confirm`."""
        early = [records.GOAL_PENDING] if self._cfg.search.before_confirm else []
        return [*early, *records.GOAL_SEARCHABLE]

    def apply_config(self, cfg: Config) -> None:
        """Cadence, aliases, filters and on_cancel are read per use, so all of them are hot."""
        self._cfg = cfg

    async def due(self, now: datetime, limit: int) -> list[str]:
        """Searchable goals whose next search is due, plus cancelled unretracted ones; newest first."""
        goals = self._store.goals
        fields = {"first_seen_at": 1}
        found: list[dict[str, Any]] = []
        for query in (
            {"state": {"$in": self._searchable()}, "next_search_at": {"$lte": now}},
            {"state": records.GOAL_CANCELLED, "retracted_at": None},
        ):
            cursor = goals.find(query, fields).sort("first_seen_at", -1).limit(limit)
            found.extend([doc async for doc in cursor])
        found.sort(key=lambda d: aware(d.get("first_seen_at")) or EPOCH, reverse=True)
        return [str(d["_id"]) for d in found[:limit]]

    async def handle(self, goal_id: str) -> None:
        """Retract a cancelled goal, run one due attempt, or close a goal whose attempts are spent."""
        doc = await self._store.goals.find_one({"_id": goal_id})
        if doc is None:
            return
        with structlog.contextvars.bound_contextvars(goal_id=goal_id,
                                                     fixture_id=doc.get("fixture_id")):
            now = self._clock()
            state = doc.get("state")
            if state == records.GOAL_CANCELLED:
                if doc.get("retracted_at") is None:
                    await retract_goal(self._store, self._blobs, doc, now,
                                       delete=self._cfg.goals.on_cancel == "delete")
                return
            if state not in self._searchable():
                return
            next_at = aware(doc.get("next_search_at"))
            if next_at is not None and next_at > now:
                return
            # extra_attempts: granted by `footyd search` / `footyd redrive`
            budget = len(self._cfg.search.attempt_offsets_s()) + int(doc.get("extra_attempts") or 0)
            if len(doc.get("search_attempt_ids") or []) < budget:
                await self._attempt(doc, now)
            elif state == records.GOAL_PENDING:
                await self._park(doc)
            else:
                await self._finish(doc, now)

    # -- one attempt ------------------------------------------------------------------------

    def _query(self, doc: dict[str, Any]) -> GoalQuery:
        return build_query(
            goal_id=doc["_id"],
            fixture_id=int(doc["fixture_id"]),
            team_name=str(doc.get("team_name") or ""),
            opponent_name=str(doc.get("opponent_name") or ""),
            scorer_name=doc.get("scorer_name"),
            minute=int(doc.get("minute") or doc.get("elapsed") or 0),
            aliases=self._cfg.search.team_aliases,
            team_id=doc.get("team_id"),
            goal_at=aware(doc.get("first_seen_at")),
            opponent_id=doc.get("opponent_id"),
            score=_running_score(doc),
        )

    async def _run_source(self, source: Source, query: GoalQuery, since: datetime) -> SourceResult:
        """One source, every expected failure turned into an outcome (never raised)."""
        try:
            # an outer bound per source call: a hung source must never hold the attempt hostage
            timeout_s = self._cfg.search.source_timeout_s
            found = await asyncio.wait_for(source.search(query, since), timeout_s)
        except TimeoutError:
            return SourceResult(source.name, "error",
                                error=f"no answer within {timeout_s:g} s")
        except (SourceUnavailable, Permanent) as exc:
            return SourceResult(source.name, "unavailable", error=str(exc)[:ERROR_MAX_CHARS])
        except RateLimited as exc:
            return SourceResult(source.name, "rate_limited", error=str(exc)[:ERROR_MAX_CHARS],
                                retry_after_s=exc.retry_after_s)
        except FootydError as exc:
            return SourceResult(source.name, "error", error=str(exc)[:ERROR_MAX_CHARS])
        except Exception as exc:
            # A bug in one source must not stop the others from being asked.
            log.error("source_search_crashed", source=source.name, exc_info=True)
            return SourceResult(source.name, "error", error=type(exc).__name__)
        return SourceResult(source.name, "ok" if found else "empty", tuple(found))

    def _clip_doc(self, goal: dict[str, Any], c: Candidate, attempt_id: str,
                  now: datetime) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "_id": "c" + uuid.uuid4().hex[:16],
            "goal_id": goal["_id"],
            "fixture_id": goal["fixture_id"],
            "source": c.source,
            "source_url": source_url(c),
            "post_url": c.post_url,
            "media_url": c.media_url,
            "posted_at": aware(c.posted_at),
            "text": c.text[:TEXT_MAX_CHARS],
            "hint_duration_s": c.duration_s,
            "hint_width": c.width,
            "hint_height": c.height,
            "hint_bitrate": c.bitrate,
            "state": records.CLIP_DISCOVERED,
            "attempt_ids": [],
            "next_attempt_at": now,
            "created_at": now,
            "search_attempt": attempt_id,  # lets a rerun of this attempt find what it inserted
        }
        if c.permalink is not None:
            doc["permalink"] = c.permalink
        reason = rejection(self._cfg.download, duration_s=c.duration_s, width=c.width,
                           height=c.height)
        if reason is not None:
            doc.update(state=records.CLIP_REJECTED, reason=f"filtered: {reason}",
                       next_attempt_at=None, rejected_at=now)
        return doc

    async def _insert_candidates(self, goal: dict[str, Any], attempt_id: str,
                                 candidates: Sequence[Candidate], now: datetime
                                 ) -> tuple[int, list[str]]:
        """Insert unseen candidates (capped per attempt): how many were already seen, and the
        ids of the new ones still to download (not filtered)."""
        clips = self._store.clips
        urls = list(dict.fromkeys(source_url(c) for c in candidates))
        seen_urls = {d["source_url"] async for d in clips.find(
            {"goal_id": goal["_id"], "source_url": {"$in": urls}}, {"source_url": 1})}
        seen = inserted = 0
        new_ids: list[str] = []
        for c in candidates:
            url = source_url(c)
            if url in seen_urls:
                seen += 1
                continue
            if inserted >= self._cfg.search.max_candidates_per_attempt:
                break
            seen_urls.add(url)
            doc = self._clip_doc(goal, c, attempt_id, now)
            try:
                await clips.insert_one(doc)
            except DuplicateKey:
                seen += 1
                continue
            inserted += 1
            if doc["state"] == records.CLIP_DISCOVERED:
                new_ids.append(doc["_id"])
        return seen, new_ids

    async def _attempt(self, goal: dict[str, Any], now: datetime) -> None:
        cfg = self._cfg.search
        goal_id = goal["_id"]
        attempt_id = f"a{len(goal.get('search_attempt_ids') or []) + 1}"
        query = self._query(goal)
        first_seen = aware(goal.get("first_seen_at")) or now
        since = first_seen - timedelta(seconds=cfg.window_margin_s)
        results = await asyncio.gather(*(self._run_source(s, query, since) for s in self._sources))
        candidates = newest_first(results)
        seen, _new = await self._insert_candidates(goal, attempt_id, candidates, now)
        mine = [d async for d in self._store.clips.find(
            {"goal_id": goal_id, "search_attempt": attempt_id}, {"state": 1})]
        retry_s = deferral_s(results, cfg.interval_s)
        if retry_s is not None and not mine:
            if int(goal.get("search_deferrals") or 0) < cfg.attempts:
                await self._defer(goal, attempt_id, results, retry_s, now)
                return
            log.info("goal_search_deferrals_spent", attempt=attempt_id)  # spent like any other
        new_ids = [d["_id"] for d in mine if d["state"] == records.CLIP_DISCOVERED]
        filtered = sum(1 for d in mine if d["state"] == records.CLIP_REJECTED)
        entry = {
            "attempt": attempt_id,
            "at": now,
            "sources": {r.source: r.to_doc() for r in results},
            "candidates": len(candidates),
            "new_clips": len(mine) - filtered,
            "filtered": filtered,
            "seen": seen,
        }
        attempts_done = len(goal.get("search_attempt_ids") or []) + 1
        written = await move_goal(
            self._store, goal_id, **_attempt_move(goal),
            where={"search_attempt_ids": {"$ne": attempt_id}},
            set_={"next_search_at": next_attempt_at(cfg, first_seen, done=attempts_done, now=now)},
            other={"$addToSet": {"search_attempt_ids": attempt_id},
                   "$push": {"search_log": entry}})
        if not written:
            await self._attempt_lost(goal_id, attempt_id, now)
            return
        answered = any(r.outcome in ANSWERED for r in results)
        outcome = "new_clips" if new_ids else ("no_new_clips" if answered else "sources_failed")
        SEARCH_ATTEMPTS.labels(outcome).inc()
        SEARCH_CANDIDATES.labels("new").inc(len(new_ids))
        SEARCH_CANDIDATES.labels("filtered").inc(filtered)
        SEARCH_CANDIDATES.labels("seen").inc(seen)
        log.info("goal_search_attempt", attempt=attempt_id, outcome=outcome,
                 candidates=len(candidates), new_clips=len(new_ids), filtered=filtered, seen=seen,
                 sources={r.source: r.outcome for r in results})
        for clip_id in new_ids:
            if not await self._to_download(clip_id):
                log.info("clip_handoff_refused", clip_id=clip_id)  # download's due scan has it

    async def _defer(self, goal: dict[str, Any], attempt_id: str,
                     results: Sequence[SourceResult], retry_s: float, now: datetime) -> None:
        """Put a rate-limited attempt off without spending it."""
        deferrals = int(goal.get("search_deferrals") or 0)
        entry = {"attempt": attempt_id, "at": now, "deferred": True, "retry_in_s": retry_s,
                 "sources": {r.source: r.to_doc() for r in results},
                 "candidates": 0, "new_clips": 0, "filtered": 0, "seen": 0}
        written = await move_goal(
            self._store, goal["_id"], **_attempt_move(goal),
            # the count read is the count written over: a concurrent run defers once, not twice
            where={"search_attempt_ids": {"$ne": attempt_id},
                   "search_deferrals": {"$in": [deferrals] if deferrals else [0, None]}},
            set_={"next_search_at": now + timedelta(seconds=retry_s)},
            other={"$inc": {"search_deferrals": 1}, "$push": {"search_log": entry}})
        if not written:
            log.info("goal_search_deferral_dropped", attempt=attempt_id)  # cancelled or raced
            return
        SEARCH_ATTEMPTS.labels("deferred").inc()
        log.info("goal_search_deferred", attempt=attempt_id, retry_in_s=retry_s,
                 deferrals=deferrals + 1, sources={r.source: r.outcome for r in results})

    async def _attempt_lost(self, goal_id: str, attempt_id: str, now: datetime) -> None:
        """The goal left the searchable states (cancelled) mid-attempt: its new clips go too."""
        goal = await self._store.goals.find_one({"_id": goal_id}, {"state": 1})
        state = goal.get("state") if goal else None
        log.info("goal_search_attempt_dropped", attempt=attempt_id, state=state)
        if state in self._searchable():
            return  # another run recorded this attempt and handed its clips on
        await move_clips(
            self._store, {"goal_id": goal_id, "search_attempt": attempt_id},
            from_=records.CLIP_DISCOVERED, to=records.CLIP_RETRACTED,
            set_={"reason": "goal cancelled", "retracted_at": now,
                  "previous_state": records.CLIP_DISCOVERED, "blob_deleted": False})

    # -- end of search ----------------------------------------------------------------------

    async def _park(self, goal: dict[str, Any]) -> None:
        """Schedule spent while pending: wait for the monitor (confirm wakes it, cancel retracts)."""
        parked = await self._store.goals.update_one(
            {"_id": goal["_id"], "state": records.GOAL_PENDING},
            {"$set": {"next_search_at": None}})
        if parked.modified_count:
            log.info("goal_search_parked", attempts=len(goal.get("search_attempt_ids") or []))

    async def _finish(self, goal: dict[str, Any], now: datetime) -> None:
        goal_id = goal["_id"]
        states = [d["state"] async for d in self._store.clips.find({"goal_id": goal_id},
                                                                   {"state": 1})]
        open_clips = sum(1 for s in states if s not in records.CLIP_TERMINAL)
        guard = {"_id": goal_id, "state": {"$in": list(records.GOAL_SEARCHABLE)}}
        if open_clips:
            recheck_s = min(self._cfg.search.interval_s, DONE_RECHECK_MAX_S)
            await self._store.goals.update_one(
                guard, {"$set": {"next_search_at": now + timedelta(seconds=recheck_s)}})
            log.debug("goal_waiting_for_clips", open_clips=open_clips)
            return
        outcome = goal_outcome(states, goal.get("search_log") or [])
        if await move_goal(self._store, goal_id, from_=records.GOAL_SEARCHABLE, to=records.GOAL_DONE,
                           set_={"done_at": now, "outcome": outcome, "next_search_at": None}):
            GOALS_DONE.labels(outcome).inc()
            log.info("goal_search_done", outcome=outcome, clips=len(states),
                     kept=states.count(records.CLIP_KEPT))
