"""What `footyd status` reads from MongoDB: fixtures, goals, clips, failures, the heartbeat."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from footyd import records
from footyd.clients.store import Store
from footyd.clock import aware
from footyd.runtime.claims import COLLECTION as CLAIMS
from footyd.runtime.heartbeat import COLLECTION, DOC_ID, REPLICA_PREFIX
from footyd.runtime.lease import DOC_ID as LEASE_ID

LIST_MAX = 20  # rows per list: status is a glance, not a report
FIXTURE_LIST_MAX = 50
FAILED_GOAL_OUTCOMES = ("sources_failed",)


def failed_goal_filter() -> dict[str, Any]:
    """Goals that failed: state failed, or done because no source could be asked."""
    return {"$or": [{"state": records.GOAL_FAILED},
                    {"state": records.GOAL_DONE, "outcome": {"$in": list(FAILED_GOAL_OUTCOMES)}}]}


def daemon_state(hb: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    """Running or not, from the heartbeat document's age and its stopped mark."""
    if hb is None:
        return {"running": False, "reason": "no daemon has ever written a heartbeat"}
    beat_at = aware(hb.get("beat_at"))
    started_at = aware(hb.get("started_at"))
    age_s = (now - beat_at).total_seconds() if beat_at else None
    info = {k: hb.get(k) for k in ("version", "commit", "host", "pid", "config_hash")}
    info.update(beat_at=beat_at, beat_age_s=round(age_s, 1) if age_s is not None else None,
                started_at=started_at)
    if hb.get("stopped_at") is not None:
        return {"running": False, "reason": "the daemon stopped", **info,
                "stopped_at": aware(hb["stopped_at"])}
    stale_s = float(hb.get("stale_after_s") or 120.0)
    if age_s is None or age_s > stale_s:
        return {"running": False, "reason": f"last heartbeat older than {stale_s:g} s", **info}
    uptime = (now - started_at).total_seconds() if started_at else None
    return {"running": True, **info, "uptime_s": round(uptime, 1) if uptime is not None else None}


async def replicas(store: Store, now: datetime) -> dict[str, Any]:
    """Every replica that beat recently (running or stopped), the pipeline items each holds a
    live claim on, and who holds the leader lease."""
    held = await store.db[CLAIMS].aggregate([
        {"$match": {"claim_expires_at": {"$gt": now}}},
        {"$group": {"_id": "$claimed_by", "n": {"$sum": 1}}}])
    claims = {str(r["_id"]): int(r["n"]) async for r in held}
    rows = []
    async for hb in store.db[COLLECTION].find({"_id": {"$regex": f"^{REPLICA_PREFIX}"}}):
        state = daemon_state(hb, now)
        if state.get("beat_age_s") is not None and state["beat_age_s"] > 86_400:
            continue  # a replica gone for a day is history, not status
        rows.append({"replica": hb.get("replica"), "leader": bool(hb.get("leader")) and
                     state["running"], **{k: state.get(k) for k in (
                         "running", "host", "pid", "version", "uptime_s", "beat_age_s")},
                     "claims": claims.get(str(hb.get("replica")), 0)})
    lease = await store.db[COLLECTION].find_one({"_id": LEASE_ID})
    leader = None
    if lease is not None:
        expires = aware(lease.get("expires_at"))
        leader = {"replica": lease.get("holder"), "epoch": lease.get("epoch"),
                  "expires_at": expires, "lapsed": expires is None or expires <= now}
    return {"replicas": sorted(rows, key=lambda r: (not r["running"], str(r["replica"]))),
            "leader": leader}


async def _counts(store: Store, collection: str, key: str) -> dict[str, int]:
    rows = await store.db[collection].aggregate([{"$group": {"_id": f"${key}", "n": {"$sum": 1}}}])
    return {str(r["_id"]): int(r["n"]) async for r in rows}


async def _fixtures(store: Store) -> dict[str, Any]:
    listed = []
    cursor = store.fixtures.find({"stage": {"$in": ["active", "staging"]}}).sort(
        "kickoff", 1).limit(FIXTURE_LIST_MAX)
    async for fx in cursor:
        score = fx.get("score") or {}
        listed.append({
            "fixture_id": fx["_id"], "stage": fx.get("stage"), "status": fx.get("status"),
            "kickoff": aware(fx.get("kickoff")), "minute": fx.get("elapsed"),
            "home": (fx.get("home") or {}).get("name"), "away": (fx.get("away") or {}).get("name"),
            "score": [score.get("home"), score.get("away")],
        })
    return {"by_stage": await _counts(store, "fixtures", "stage"), "open": listed}


async def _goals(store: Store) -> dict[str, Any]:
    """Goals per state, each with the states of its clips."""
    state_of = {str(g["_id"]): str(g.get("state")) async for g in store.goals.find({}, {"state": 1})}
    by_state: dict[str, dict[str, Any]] = {}
    for state in state_of.values():
        entry = by_state.setdefault(state, {"goals": 0, "clips": {}})
        entry["goals"] += 1
    rows = await store.clips.aggregate(
        [{"$group": {"_id": {"goal_id": "$goal_id", "state": "$state"}, "n": {"$sum": 1}}}])
    async for row in rows:
        goal_state = state_of.get(str(row["_id"].get("goal_id")), "(goal missing)")
        clips = by_state.setdefault(goal_state, {"goals": 0, "clips": {}})["clips"]
        clip_state = str(row["_id"].get("state"))
        clips[clip_state] = clips.get(clip_state, 0) + int(row["n"])
    return by_state


async def _failed(store: Store) -> dict[str, list[dict[str, Any]]]:
    goals = [{"goal_id": g["_id"], "fixture_id": g.get("fixture_id"), "state": g.get("state"),
              "outcome": g.get("outcome"), "at": aware(g.get("done_at")),
              "reason": _goal_reason(g)}
             async for g in store.goals.find(failed_goal_filter()).sort("done_at", -1).limit(LIST_MAX)]
    clips = [{"clip_id": c["_id"], "goal_id": c.get("goal_id"), "reason": c.get("reason"),
              "at": aware(c.get("finished_at")), "url": c.get("source_url")}
             async for c in store.clips.find({"state": records.CLIP_FAILED}).sort(
                 "finished_at", -1).limit(LIST_MAX)]
    return {"goals": goals, "clips": clips}


def _goal_reason(goal: dict[str, Any]) -> str:
    """The last attempt's source errors: why no source could be asked."""
    log = goal.get("search_log") or []
    if not log:
        return str(goal.get("reason") or goal.get("outcome") or "")
    sources = log[-1].get("sources") or {}
    return "; ".join(f"{name}: {s.get('error') or s.get('outcome')}" for name, s in sources.items())


async def status_report(store: Store, now: datetime) -> dict[str, Any]:
    """Everything `footyd status` shows, as plain data."""
    hb = await store.db[COLLECTION].find_one({"_id": DOC_ID})
    return {
        "daemon": daemon_state(hb, now),
        "fixtures": await _fixtures(store),
        "goals": await _goals(store),
        "clips": await _counts(store, "clips", "state"),
        "notifications": await _counts(store, "notifications", "state"),  # webhook deliveries
        "failed": await _failed(store),
        "api_quota": (hb or {}).get("quota"),
        "sources": (hb or {}).get("sources") or {},
        "last_reload": (hb or {}).get("last_reload"),
        **await replicas(store, now),
    }
