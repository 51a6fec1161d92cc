"""`footyd redrive` and `footyd search`: guarded updates a running daemon's due scan picks up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from footyd import records
from footyd.cli.status import FAILED_GOAL_OUTCOMES, failed_goal_filter
from footyd.clients.store import Store
from footyd.moves import move_clip, move_goal

REDRIVE_MAX = 1000  # items per --failed run; run it again for more


@dataclass(frozen=True)
class Moved:
    """One item a command moved: what it was, what it is now."""

    kind: str  # goal | clip
    item_id: str
    before: str
    after: str
    note: str = ""

    def line(self) -> str:
        return f"{self.kind} {self.item_id}: {self.before} -> {self.after}" + (
            f" ({self.note})" if self.note else "")


def _is_failed_goal(goal: dict[str, Any]) -> bool:
    return goal.get("state") == records.GOAL_FAILED or (
        goal.get("state") == records.GOAL_DONE and goal.get("outcome") in FAILED_GOAL_OUTCOMES)


async def _redrive_clip(store: Store, clip: dict[str, Any], now: datetime) -> Moved | None:
    """A failed clip back to `discovered` with a fresh attempt budget, due now."""
    moved = await move_clip(
        store, clip["_id"], from_=records.CLIP_FAILED, to=records.CLIP_DISCOVERED,
        set_={"attempt_ids": [], "next_attempt_at": now, "redriven_at": now,
              "redriven_reason": clip.get("reason")},
        unset=("reason", "finished_at", "last_error"), other={"$inc": {"redrives": 1}})
    if moved is None:
        return None
    return Moved("clip", str(clip["_id"]), records.CLIP_FAILED, records.CLIP_DISCOVERED,
                 f"goal {clip.get('goal_id')}; was: {clip.get('reason')}")


async def _reopen_goal(store: Store, goal: dict[str, Any], now: datetime, *,
                       fresh_round: bool) -> Moved | None:
    """Back to `searching`, due now: a fresh round of attempts, or just a re-check of its clips."""
    attempts_made = len(goal.get("search_attempt_ids") or [])
    update: dict[str, Any] = {"next_search_at": now, "redriven_at": now}
    if fresh_round:  # budget = scheduled attempts + extra: a full schedule's count is left
        update.update(extra_attempts=attempts_made, search_deferrals=0)
    if not await move_goal(store, goal["_id"], from_=str(goal.get("state")),
                           to=records.GOAL_SEARCHING, where={"outcome": goal.get("outcome")},
                           set_=update, unset=("outcome", "done_at"),
                           other={"$inc": {"redrives": 1}}):
        return None
    note = "fresh round of attempts" if fresh_round else "re-checks its clips, outcome recomputed"
    before = str(goal.get("state")) + (f"/{goal['outcome']}" if goal.get("outcome") else "")
    return Moved("goal", str(goal["_id"]), before, records.GOAL_SEARCHING, note)


async def redrive_goal(store: Store, goal_id: str, now: datetime) -> list[Moved] | None:
    """A failed goal and its failed clips back to retryable states (None: no such goal)."""
    goal = await store.goals.find_one({"_id": goal_id})
    if goal is None:
        return None
    moved: list[Moved] = []
    if goal.get("state") == records.GOAL_CANCELLED:
        return moved  # its clips are retracted on purpose
    async for clip in store.clips.find({"goal_id": goal_id, "state": records.CLIP_FAILED}):
        if (m := await _redrive_clip(store, clip, now)) is not None:
            moved.append(m)
    if _is_failed_goal(goal):
        m = await _reopen_goal(store, goal, now, fresh_round=True)
    elif goal.get("state") == records.GOAL_DONE and moved:
        m = await _reopen_goal(store, goal, now, fresh_round=False)
    else:
        m = None
    return moved + ([m] if m else [])


async def redrive_failed(store: Store, since: datetime | None, now: datetime) -> list[Moved]:
    """Every failed goal (done_at >= since) and failed clip (finished_at >= since)."""
    goal_ids: list[str] = []
    goal_query = failed_goal_filter()
    clip_query: dict[str, Any] = {"state": records.CLIP_FAILED}
    if since is not None:
        goal_query = {"$and": [goal_query, {"done_at": {"$gte": since}}]}
        clip_query["finished_at"] = {"$gte": since}
    async for g in store.goals.find(goal_query, {"_id": 1}).limit(REDRIVE_MAX):
        goal_ids.append(str(g["_id"]))
    async for c in store.clips.find(clip_query, {"goal_id": 1}).limit(REDRIVE_MAX):
        goal_ids.append(str(c["goal_id"]))
    moved: list[Moved] = []
    for goal_id in dict.fromkeys(goal_ids):
        moved.extend(await redrive_goal(store, goal_id, now) or [])
    return moved


async def search_now(store: Store, goal_id: str, now: datetime) -> Moved | str:
    """Grant one extra search attempt, due now; a string says why not."""
    goal = await store.goals.find_one({"_id": goal_id})
    if goal is None:
        return f"goal {goal_id} is not stored"
    state = goal.get("state")
    if state not in (*records.GOAL_SEARCHABLE, records.GOAL_DONE, records.GOAL_FAILED):
        return f"goal {goal_id} is {state}: only confirmed goals are searched"
    if not await move_goal(store, goal_id, from_=str(state), to=records.GOAL_SEARCHING,
                           set_={"next_search_at": now}, unset=("outcome", "done_at"),
                           other={"$inc": {"extra_attempts": 1}}):
        return f"goal {goal_id} changed state concurrently; try again"
    made = len(goal.get("search_attempt_ids") or [])
    return Moved("goal", goal_id, str(state), records.GOAL_SEARCHING,
                 f"one extra attempt (a{made + 1}) due now")
