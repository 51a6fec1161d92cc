"""Writes the monitor's goal decisions (rules.reconcile) to the goals collection."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import structlog
from prometheus_client import Counter

from footyd.clients.football import Fixture
from footyd.clients.store import AFTER, Store
from footyd.fence import UNFENCED, Fence
from footyd.metrics import REGISTRY
from footyd.pipeline import Handoff
from footyd.stages import rules

log = structlog.get_logger(__name__)

GOAL_EVENTS = Counter("footyd_goal_events", "Goal lifecycle events.", ["event"], registry=REGISTRY)



def known_goal(doc: dict[str, Any]) -> rules.KnownGoal:
    return rules.KnownGoal(
        goal_id=doc["_id"],
        team_id=doc["team_id"],
        elapsed=doc["elapsed"],
        extra=doc.get("extra"),
        scorer_id=doc.get("scorer_id"),
        scorer_name=doc.get("scorer_name"),
        detail=doc["detail"],
        state=doc["state"],
        seen_poll_ids=frozenset(doc.get("seen_poll_ids", [])),
        missing_poll_ids=frozenset(doc.get("missing_poll_ids", [])),
        first_seen_order=doc.get("first_seen_order", 0),
        score=(doc.get("score_home"), doc.get("score_away")),
    )


def _event_fields(ev: rules.GoalEvent) -> dict[str, Any]:
    return {
        "elapsed": ev.elapsed,
        "extra": ev.extra,
        "minute": ev.minute,
        "scorer_id": ev.scorer_id,
        "scorer_name": ev.scorer_name,
        "assist_name": ev.assist_name,
        "detail": ev.detail,
        "score_home": ev.score_home,
        "score_away": ev.score_away,
    }


class GoalWriter:
    """Applies GoalChanges for one fixture; confirmed goals are written, then handed off."""

    def __init__(self, store: Store, *, on_confirmed: Handoff, on_cancelled: Handoff,
                 fence: Fence = UNFENCED) -> None:
        self._store = store
        self._fence = fence
        self._on_confirmed = on_confirmed
        self._on_cancelled = on_cancelled

    async def apply(
        self,
        fixture: Fixture,
        changes: Sequence[rules.GoalChange],
        *,
        poll_id: str,
        now: datetime,
        order_base: int,
    ) -> None:
        for offset, change in enumerate(changes):
            if isinstance(change, rules.NewGoal):
                await self._insert(fixture, change, poll_id=poll_id, now=now, order=order_base + offset)
            elif isinstance(change, rules.SeenGoal):
                await self._seen(change, poll_id=poll_id, now=now)
            else:
                await self._missing(change, poll_id=poll_id, now=now)

    async def _insert(
        self, fx: Fixture, change: rules.NewGoal, *, poll_id: str, now: datetime, order: int
    ) -> None:
        ev = change.event
        home = ev.team_id == fx.home_id
        goal_id = f"g{fx.id}-{uuid.uuid4().hex[:10]}"
        doc = {
            "_id": goal_id,
            "fixture_id": fx.id,
            "league_id": fx.league_id,
            "kickoff": fx.kickoff,
            "team_id": ev.team_id,
            "team_name": ev.team_name,
            "opponent_id": fx.away_id if home else fx.home_id,
            "opponent_name": fx.away_name if home else fx.home_name,
            **_event_fields(ev),
            "state": "confirmed" if change.confirmed else "pending",
            "seen_poll_ids": [poll_id],
            "missing_poll_ids": [],
            "first_seen_order": order,
            "first_seen_at": now,
            "confirmed_at": now if change.confirmed else None,
            "scorer_history": [
                {"scorer_id": ev.scorer_id, "scorer_name": ev.scorer_name, "detail": ev.detail, "at": now}
            ],
            "search_attempt_ids": [],
            # due at once: search.before_confirm decides whether a pending goal is searched
            "next_search_at": now,
            "updated_at": now,
        }
        self._fence.check()
        await self._store.goals.insert_one(self._fence.stamp(doc))
        GOAL_EVENTS.labels("seen").inc()
        log.info("goal_seen", fixture_id=fx.id, goal_id=goal_id, team_id=ev.team_id,
                 minute=rules.minute_label(ev.elapsed, ev.extra), scorer=ev.scorer_name,
                 detail=ev.detail)
        if change.confirmed:
            await self._confirmed(goal_id, fx.id, doc)

    async def _seen(self, change: rules.SeenGoal, *, poll_id: str, now: datetime) -> None:
        if not change.needs_write:
            return  # settled and unchanged: no write (its seen ids stop growing once confirmed)
        ev = change.event
        update: dict[str, Any] = {"$addToSet": {"seen_poll_ids": poll_id}, "$set": {"updated_at": now}}
        if change.changes:
            update["$set"].update(_event_fields(ev))
            if {"scorer_id", "scorer_name", "detail"} & change.changes.keys():
                update["$push"] = {"scorer_history": {"scorer_id": ev.scorer_id,
                                                      "scorer_name": ev.scorer_name,
                                                      "detail": ev.detail, "at": now}}
        else:
            # the running score can change when an earlier goal is cancelled
            update["$set"].update({"score_home": ev.score_home, "score_away": ev.score_away})
        if change.reappeared:
            update["$set"]["missing_poll_ids"] = []
        doc = await self._update({"_id": change.goal_id}, update)
        if doc is None:
            return
        fixture_id = doc["fixture_id"]
        if change.changes:
            GOAL_EVENTS.labels("updated").inc()
            log.info("goal_updated", fixture_id=fixture_id, goal_id=change.goal_id,
                     changes={k: [old, new] for k, (old, new) in change.changes.items()})
        if change.reappeared:
            GOAL_EVENTS.labels("reappeared").inc()
            log.info("goal_reappeared", fixture_id=fixture_id, goal_id=change.goal_id)
        if change.confirm:
            confirm: dict[str, Any] = {"state": "confirmed", "confirmed_at": now, "updated_at": now}
            if doc.get("next_search_at") is None:
                confirm["next_search_at"] = now  # parked (searched while pending, attempts spent)
            confirmed = await self._update(
                {"_id": change.goal_id, "state": "pending"}, {"$set": confirm},
                return_document=AFTER,
            )
            if confirmed is not None:
                await self._confirmed(change.goal_id, fixture_id, confirmed)

    async def _update(self, flt: dict[str, Any], update: dict[str, Any], **kwargs: Any
                      ) -> dict[str, Any] | None:
        """One fenced goal write: refused once a newer leader took over (footyd/fence.py)."""
        self._fence.check()
        doc: dict[str, Any] | None = await self._store.goals.find_one_and_update(
            self._fence.guard(flt), self._fence.stamp(update), **kwargs)
        return doc

    async def _confirmed(self, goal_id: str, fixture_id: int, doc: dict[str, Any]) -> None:
        GOAL_EVENTS.labels("confirmed").inc()
        log.info("goal_confirmed", fixture_id=fixture_id, goal_id=goal_id, team_id=doc["team_id"],
                 minute=rules.minute_label(doc["elapsed"], doc.get("extra")),
                 scorer=doc.get("scorer_name"), detail=doc["detail"])
        await self._on_confirmed(goal_id)

    async def _missing(self, change: rules.MissingGoal, *, poll_id: str, now: datetime) -> None:
        doc = await self._update(
            {"_id": change.goal_id},
            {"$addToSet": {"missing_poll_ids": poll_id}, "$set": {"updated_at": now}},
        )
        if doc is None or not change.cancel:
            return
        cancelled = await self._update(
            {"_id": change.goal_id, "state": {"$ne": "cancelled"}},
            {"$set": {"state": "cancelled", "cancelled_at": now, "previous_state": doc["state"],
                      "next_search_at": None, "updated_at": now}},
        )
        if cancelled is not None:
            GOAL_EVENTS.labels("cancelled").inc()
            log.info("goal_cancelled", fixture_id=doc["fixture_id"], goal_id=change.goal_id,
                     missing_polls=change.missing_count, previous_state=doc["state"])
            await self._on_cancelled(change.goal_id)  # the search stage retracts its clips
