"""Notify stage: announce goal and clip events to webhooks through a durable MongoDB outbox.

Events are derived here from the states other stages write (no stage calls this one), so an
event can never be lost between a state change and its announcement: the state IS the record.
The due scan first derives new events (goals with `confirmed_at`/`cancelled_at`, clips with
`kept_at`, kept clips later replaced) into `notifications`, one document per (event, webhook)
whose `_id` is derived from both, so a re-derivation after a crash is a DuplicateKey; only then
is the source marked (`notify_marks`). Each delivery is claimed (attempts + 1, next attempt
pushed out by the backoff) before it is sent, so a crash mid-send retries after the backoff and
the receiver dedups by event id. Results are recorded on the notification and on the goal.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from prometheus_client import Counter

from footyd.clients.blobs import BlobStore
from footyd.clients.store import DuplicateKey, Store
from footyd.clients.webhooks import WebhookClient
from footyd.clock import Clock, utcnow
from footyd.config import Config, WebhookConfig
from footyd.errors import Permanent, Retryable
from footyd.metrics import REGISTRY
from footyd.records import CLIP_DUPLICATE, GOAL_CANCELLED, GOAL_PENDING
from footyd.stages.notify_body import render

log = structlog.get_logger(__name__)

NOTIFICATIONS = Counter("footyd_notifications", "Webhook deliveries by outcome.", ["outcome"],
                        registry=REGISTRY)

PENDING, DELIVERED, FAILED, DROPPED = "pending", "delivered", "failed", "dropped"
DERIVE_BATCH = 200  # events derived per scan; the rest come with the next scan
DUE_SCAN_LIMIT = 1000
NEVER = object()  # a goal whose clips are never announced (cancelled before it was confirmed)
LANE_BATCH = 50  # deliveries one handler call sends to its webhook before yielding the lane



def delivery_id(event_id: str, webhook_key: str) -> str:
    """The notification `_id`: one delivery per (event, webhook), a valid field name."""
    return "n" + hashlib.sha256(f"{event_id}|{webhook_key}".encode()).hexdigest()[:24]


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff before attempt `attempt + 1` (attempt counts from 1)."""
    return float(min(max_s, base_s * 2 ** min(attempt - 1, 30)))


@dataclass(frozen=True)
class Event:
    """One thing that happened, with the collection and id of the document it came from."""

    event_id: str
    kind: str
    source: str  # "goals" | "clips"
    source_id: str
    goal_id: str
    occurred_at: datetime


def _goal_facts(goal: dict[str, Any]) -> dict[str, Any]:
    return {k: goal.get(k) for k in (
        "team_id", "team_name", "opponent_name", "minute", "elapsed", "extra", "scorer_name",
        "assist_name", "detail", "score_home", "score_away", "state")} | {"id": goal["_id"]}


def _fixture_facts(fx: dict[str, Any] | None, goal: dict[str, Any]) -> dict[str, Any]:
    if fx is None:
        return {"id": goal.get("fixture_id"), "league_id": goal.get("league_id"),
                "kickoff": goal.get("kickoff")}
    return {"id": fx["_id"], "league_id": fx.get("league_id"), "league_name": fx.get("league_name"),
            "kickoff": fx.get("kickoff"), "status": fx.get("status"), "home": fx.get("home"),
            "away": fx.get("away"), "score": fx.get("score")}


def _clip_facts(clip: dict[str, Any]) -> dict[str, Any]:
    return {k: clip.get(k) for k in ("blob_key", "post_url", "source", "width", "height",
                                     "duration_s", "size_bytes")} | {"id": clip["_id"]}


class NotifyStage:
    """Derives events into the `notifications` outbox and delivers each to its webhook."""

    name = "notify"

    def __init__(self, cfg: Config, store: Store, blobs: BlobStore, client: WebhookClient, *,
                 clock: Clock = utcnow) -> None:
        self._cfg = cfg
        self._workers = cfg.notify.workers
        self._store = store
        self._blobs = blobs
        self._client = client
        self._clock = clock
        self._busy: set[str] = set()  # webhooks with a delivery in flight in this process

    def workers(self) -> int:
        return self._workers  # not hot: a restart changes it

    def apply_config(self, cfg: Config) -> None:
        self._cfg = cfg

    def _hooks(self, kind: str) -> list[WebhookConfig]:
        return [w for w in self._cfg.notify.webhooks if kind in w.events]

    async def due(self, now: datetime, limit: int) -> list[str]:
        """Derive new events into the outbox, then the oldest due delivery of each idle webhook.

        One lane per webhook: a handler sends that webhook's backlog in order, so a hanging
        receiver holds one worker, never the deliveries to the others.
        """
        if not self._cfg.notify.webhooks or limit <= 0:
            return []
        await self.derive(now)
        cursor = self._store.notifications.find(
            {"state": PENDING, "next_attempt_at": {"$lte": now},
             "webhook": {"$nin": sorted(self._busy)}}, {"_id": 1, "webhook": 1}
        ).sort("next_attempt_at", 1).limit(DUE_SCAN_LIMIT)
        lanes: dict[str, str] = {}
        async for doc in cursor:
            lanes.setdefault(doc["webhook"], str(doc["_id"]))
        return list(lanes.values())[:limit]

    async def _events(self, since: datetime) -> AsyncIterator[Event]:
        goals, clips = self._store.goals, self._store.clips
        for kind, field in (("goal_confirmed", "confirmed_at"), ("goal_cancelled", "cancelled_at")):
            query: dict[str, Any] = {field: {"$gte": since}, "notify_marks": {"$ne": kind}}
            if kind == "goal_cancelled":
                # a goal never announced is not "cancelled" to a receiver: it never existed
                query.update(state=GOAL_CANCELLED, confirmed_at={"$ne": None})
            async for g in goals.find(query, {field: 1}).limit(DERIVE_BATCH):
                yield Event(f"{kind}:{g['_id']}", kind, "goals", g["_id"], g["_id"], g[field])
        for kind, field, extra in (
            ("clip_kept", "kept_at", {}),
            # a kept clip that later lost to a better copy: the event is about the new copy
            ("clip_replaced", "deduped_at", {"state": CLIP_DUPLICATE, "kept_at": {"$ne": None}}),
        ):
            found = [c async for c in clips.find(
                {field: {"$gte": since}, "notify_marks": {"$ne": kind}, **extra},
                {field: 1, "goal_id": 1}).limit(DERIVE_BATCH)]
            confirmed = await self._confirmed_at({c["goal_id"] for c in found})
            for c in found:
                confirmed_at = confirmed.get(c["goal_id"], NEVER)
                if confirmed_at is None:
                    continue  # its goal is still pending (searched early): derived once confirmed
                if confirmed_at is NEVER:  # cancelled (or gone) before it was ever confirmed
                    await clips.update_one({"_id": c["_id"]}, {"$addToSet": {"notify_marks": kind}})
                    continue
                yield Event(f"{kind}:{c['_id']}", kind, "clips", c["_id"], c["goal_id"],
                            max(c[field], confirmed_at))

    async def _confirmed_at(self, goal_ids: set[str]) -> dict[str, Any]:
        """Per goal: when it was confirmed, None while pending, NEVER when it never will be."""
        if not goal_ids:
            return {}
        cursor = self._store.goals.find({"_id": {"$in": sorted(goal_ids)}},
                                        {"confirmed_at": 1, "state": 1})
        return {g["_id"]: g.get("confirmed_at") or (None if g.get("state") == GOAL_PENDING else NEVER)
                async for g in cursor}

    async def derive(self, now: datetime) -> int:
        """Write an outbox document per (new event, subscribed webhook); returns events derived."""
        since = now - timedelta(seconds=self._cfg.notify.max_event_age_s)
        derived = 0
        async for ev in self._events(since):
            hooks = self._hooks(ev.kind)
            if hooks:
                facts = await self._facts(ev)
                for hook in hooks:
                    await self._enqueue(ev, hook, facts, now)
            # marked only after every delivery is written: a crash in between re-derives
            await self._store.db[ev.source].update_one(
                {"_id": ev.source_id}, {"$addToSet": {"notify_marks": ev.kind}})
            derived += 1
        return derived

    async def _facts(self, ev: Event) -> dict[str, Any]:
        """The fixture, goal and clip facts frozen into the notification when it is derived."""
        goal = await self._store.goals.find_one({"_id": ev.goal_id}) or {"_id": ev.goal_id}
        fx = await self._store.fixtures.find_one({"_id": goal.get("fixture_id")})
        facts: dict[str, Any] = {"occurred_at": ev.occurred_at, "goal": _goal_facts(goal),
                                 "fixture": _fixture_facts(fx, goal)}
        if ev.source == "clips":
            lean = {"fingerprint": 0}  # a clip's largest field, never a fact
            clip = (await self._store.clips.find_one({"_id": ev.source_id}, lean)
                    or {"_id": ev.source_id})
            if ev.kind == "clip_replaced" and clip.get("duplicate_of"):
                facts["replaced_clip_id"] = clip["_id"]
                clip = (await self._store.clips.find_one({"_id": clip["duplicate_of"]}, lean)
                        or {"_id": clip["duplicate_of"]})
            facts["clip"] = _clip_facts(clip)
        return facts

    async def _enqueue(self, ev: Event, hook: WebhookConfig, facts: dict[str, Any],
                       now: datetime) -> None:
        nid = delivery_id(ev.event_id, hook.key)
        try:
            await self._store.notifications.insert_one({
                "_id": nid, "event_id": ev.event_id, "event": ev.kind, "webhook": hook.key,
                "goal_id": ev.goal_id, "fixture_id": (facts["fixture"] or {}).get("id"),
                "facts": facts, "state": PENDING, "attempts": 0, "next_attempt_at": now,
                "created_at": now})
        except DuplicateKey:
            return  # derived before a crash: the delivery exists already
        await self._record(ev.goal_id, nid, ev.kind, hook.key, PENDING, 0, now)
        log.info("notification_queued", notification_id=nid, event_id=ev.event_id,
                 webhook=hook.key)

    async def _record(self, goal_id: str, nid: str, event: str, webhook: str, state: str,
                      attempts: int, now: datetime, error: str | None = None) -> None:
        await self._store.goals.update_one({"_id": goal_id}, {"$set": {f"notifications.{nid}": {
            "event": event, "webhook": webhook, "state": state, "attempts": attempts, "at": now,
            "error": error}}})

    async def handle(self, nid: str) -> None:
        """Send one due delivery, then the rest of its webhook's due backlog, in order."""
        doc = await self._store.notifications.find_one({"_id": nid}, {"webhook": 1})
        if doc is None or doc["webhook"] in self._busy:
            return  # its lane is busy: the lane's handler or a later scan sends it
        webhook = doc["webhook"]
        self._busy.add(webhook)
        try:
            for _ in range(LANE_BATCH):
                if not await self._send(nid):
                    return  # failed or not due: the backoff decides when the lane resumes
                nxt = await self._store.notifications.find_one(
                    {"state": PENDING, "webhook": webhook,
                     "next_attempt_at": {"$lte": self._clock()}},
                    {"_id": 1}, sort=[("next_attempt_at", 1)])
                if nxt is None:
                    return
                nid = str(nxt["_id"])
        finally:
            self._busy.discard(webhook)

    async def _send(self, nid: str) -> bool:
        """Claim one delivery and send it once; True when it was delivered."""
        now = self._clock()
        nc = self._cfg.notify
        doc = await self._store.notifications.find_one({"_id": nid})
        if doc is None or doc["state"] != PENDING or doc["next_attempt_at"] > now:
            return False
        attempt = int(doc["attempts"]) + 1
        claimed = await self._store.notifications.find_one_and_update(
            {"_id": nid, "state": PENDING, "attempts": doc["attempts"]},
            {"$set": {"attempts": attempt, "last_attempt_at": now, "next_attempt_at": now
                      + timedelta(seconds=backoff_s(attempt, nc.backoff_base_s, nc.backoff_max_s))}})
        if claimed is None:
            return False  # another process claimed it
        with structlog.contextvars.bound_contextvars(notification_id=nid, event_id=doc["event_id"],
                                                     webhook=doc["webhook"], attempt=attempt):
            try:
                return await self._attempt(doc, attempt, now)
            except asyncio.CancelledError:
                # cut by the drain's budget mid-attempt: the receiver may have it or not; due at
                # once for the next start (at least once: receivers dedup on the event id)
                await asyncio.shield(self._store.notifications.update_one(
                    {"_id": nid, "state": PENDING, "attempts": attempt},
                    {"$set": {"next_attempt_at": now, "last_error": "cut by shutdown"}}))
                log.info("notification_cut", reason="shutdown")
                raise

    async def _attempt(self, doc: dict[str, Any], attempt: int, now: datetime) -> bool:
        nid, nc = doc["_id"], self._cfg.notify
        hook = next((w for w in nc.webhooks if w.key == doc["webhook"]), None)
        if hook is None:
            await self._finish(doc, DROPPED, attempt, now, "webhook no longer configured")
            return False
        try:
            clip_url = await self._clip_url(doc["facts"])
            body = render(hook.format, doc["event_id"], doc["event"], doc["facts"], clip_url)
            secret = hook.secret.get_secret_value() if hook.secret else None
            status = await self._client.post(hook.url.get_secret_value(), body,
                                             event_id=doc["event_id"], event=doc["event"],
                                             secret=secret, timeout_s=hook.timeout_s)
        except Permanent as exc:
            await self._finish(doc, FAILED, attempt, now, str(exc))
            return False
        except Retryable as exc:
            if attempt >= nc.max_attempts:
                await self._finish(doc, FAILED, attempt, now, f"{exc} (attempts spent)")
                return False
            update: dict[str, Any] = {"last_error": str(exc)}
            if exc.retry_after_s is not None:  # the receiver asked for a pause: honour it
                update["next_attempt_at"] = now + timedelta(seconds=exc.retry_after_s)
            await self._store.notifications.update_one({"_id": nid, "state": PENDING},
                                                       {"$set": update})
            await self._record(doc["goal_id"], nid, doc["event"], doc["webhook"], PENDING,
                               attempt, now, str(exc))
            NOTIFICATIONS.labels("retry").inc()
            log.warning("notification_retry", error=str(exc))
            return False
        await self._finish(doc, DELIVERED, attempt, now, None)
        log.info("notification_delivered", status=status)
        return True

    async def _clip_url(self, facts: dict[str, Any]) -> str | None:
        """A fresh presigned URL for the clip (S3); None where the store has no URLs."""
        key = (facts.get("clip") or {}).get("blob_key")
        presign = getattr(self._blobs, "presigned_url", None)
        if not key or presign is None:
            return None
        url: str = await presign(key, self._cfg.notify.url_ttl_s)
        return url

    async def _finish(self, doc: dict[str, Any], state: str, attempt: int, now: datetime,
                      error: str | None) -> None:
        stamp = "delivered_at" if state == DELIVERED else "finished_at"
        await self._store.notifications.update_one(
            {"_id": doc["_id"], "state": PENDING},
            {"$set": {"state": state, stamp: now, "last_error": error}})
        await self._record(doc["goal_id"], doc["_id"], doc["event"], doc["webhook"], state,
                           attempt, now, error)
        NOTIFICATIONS.labels(state).inc()
        if state != DELIVERED:
            log.warning("notification_failed", state=state, error=error)
