"""Lifecycle moves: guarded by the state they leave, counted once, losers see the winner's state."""

from __future__ import annotations

import asyncio

from footyd import records
from footyd.clients.store import Store
from footyd.metrics import REGISTRY
from footyd.moves import move_clip, move_clips, move_goal


def _count(metric: str, state: str) -> float:
    return REGISTRY.get_sample_value(metric, {"state": state}) or 0.0


async def test_two_racing_moves_of_one_clip_let_exactly_one_win(store: Store) -> None:
    await store.clips.insert_one({"_id": "c1", "goal_id": "g1", "state": records.CLIP_DOWNLOADED})
    before = _count("footyd_clips_total", records.CLIP_KEPT) + _count(
        "footyd_clips_total", records.CLIP_DUPLICATE)
    kept, dup = await asyncio.gather(
        move_clip(store, "c1", from_=records.CLIP_DOWNLOADED, to=records.CLIP_KEPT,
                  set_={"kept_at": 1}),
        move_clip(store, "c1", from_=records.CLIP_DOWNLOADED, to=records.CLIP_DUPLICATE,
                  set_={"duplicate_of": "c0"}))
    assert (kept is None) != (dup is None)  # one winner, and its document comes back
    winner = kept or dup
    assert winner is not None and winner["state"] in (records.CLIP_KEPT, records.CLIP_DUPLICATE)
    after = _count("footyd_clips_total", records.CLIP_KEPT) + _count(
        "footyd_clips_total", records.CLIP_DUPLICATE)
    assert after - before == 1
    assert (await store.clips.find_one({"_id": "c1"}) or {})["state"] == winner["state"]


async def test_where_conditions_unset_and_other_operators_apply_with_the_move(store: Store) -> None:
    await store.clips.insert_one({"_id": "c1", "goal_id": "g1", "state": records.CLIP_FAILED,
                                  "reason": "not_found", "redrives": 1})
    assert await move_clip(store, "c1", from_=records.CLIP_FAILED, to=records.CLIP_DISCOVERED,
                           where={"reason": "forbidden"}) is None  # the condition does not hold
    moved = await move_clip(store, "c1", from_=records.CLIP_FAILED, to=records.CLIP_DISCOVERED,
                            set_={"attempt_ids": []}, unset=("reason",),
                            other={"$inc": {"redrives": 1}})
    assert moved is not None and "reason" not in moved
    assert moved["redrives"] == 2 and moved["attempt_ids"] == []


async def test_bulk_and_goal_moves_leave_items_in_other_states_alone(store: Store) -> None:
    await store.clips.insert_many([
        {"_id": "a", "goal_id": "g1", "source_url": "u/a", "state": records.CLIP_DISCOVERED},
        {"_id": "b", "goal_id": "g1", "source_url": "u/b", "state": records.CLIP_KEPT},
        {"_id": "c", "goal_id": "g2", "source_url": "u/c", "state": records.CLIP_DISCOVERED}])
    assert await move_clips(store, {"goal_id": "g1"}, from_=records.CLIP_DISCOVERED,
                            to=records.CLIP_RETRACTED) == 1
    states = {d["_id"]: d["state"] async for d in store.clips.find({})}
    assert states == {"a": records.CLIP_RETRACTED, "b": records.CLIP_KEPT,
                      "c": records.CLIP_DISCOVERED}
    await store.goals.insert_one({"_id": "g1", "state": records.GOAL_CANCELLED})
    assert not await move_goal(store, "g1", from_=records.GOAL_SEARCHABLE, to=records.GOAL_DONE)
    assert await move_goal(store, "g1", from_=records.GOAL_CANCELLED, to=records.GOAL_SEARCHING,
                           unset=("outcome",))
    assert (await store.goals.find_one({"_id": "g1"}) or {})["state"] == records.GOAL_SEARCHING
