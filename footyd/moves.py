"""The clip and goal lifecycle: every state change is one named move (guarded update, counter, log).

A move names the state(s) it leaves and the state it enters; it changes the document only if
the document is still in a state it leaves (plus any `where` conditions), so two actors racing
for one item never both win. A move that found its item elsewhere returns None / False: the
other actor's state stands. `grep -n "move_clip\\|move_goal"` lists every state change the
stages and the operator commands make (the monitor writes goals' pending, confirmed and
cancelled states itself, through `stages/monitor_goals.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import structlog
from prometheus_client import Counter

from footyd import records
from footyd.clients.blobs import BlobStore
from footyd.clients.store import AFTER, Doc, Store
from footyd.metrics import REGISTRY

log = structlog.get_logger(__name__)

States = str | Sequence[str]

CLIP_MOVES = Counter("footyd_clips", "Clip state changes, by the state entered.", ["state"],
                     registry=REGISTRY)
GOAL_MOVES = Counter("footyd_goal_moves", "Goal state changes made by the search stage and "
                     "operator commands, by the state entered.", ["state"], registry=REGISTRY)


def _in(states: States) -> Any:
    return states if isinstance(states, str) else {"$in": list(states)}


def _query(item_id: str, from_: States, where: Mapping[str, Any] | None) -> Doc:
    return {"_id": item_id, "state": _in(from_), **(where or {})}


def _update(to: str, set_: Mapping[str, Any] | None, unset: Iterable[str],
            other: Mapping[str, Any] | None) -> Doc:
    update: Doc = {"$set": {"state": to, **(set_ or {})}, **(other or {})}
    if fields := dict.fromkeys(unset, ""):
        update["$unset"] = fields
    return update


async def move_clip(store: Store, clip_id: str, *, from_: States, to: str,
                    where: Mapping[str, Any] | None = None, set_: Mapping[str, Any] | None = None,
                    unset: Iterable[str] = (), other: Mapping[str, Any] | None = None) -> Doc | None:
    """Move one clip `from_` -> `to`; the moved document, or None if it was elsewhere.

    `other` holds further update operators (`$addToSet`, `$inc`); DuplicateKey passes through.
    """
    moved = await store.clips.find_one_and_update(
        _query(clip_id, from_, where), _update(to, set_, unset, other),
        return_document=AFTER)
    if moved is not None:
        CLIP_MOVES.labels(to).inc()
        log.debug("lifecycle_move", item="clip", item_id=clip_id, to=to)
    return moved


async def move_clips(store: Store, where: Mapping[str, Any], *, from_: States, to: str,
                     set_: Mapping[str, Any] | None = None) -> int:
    """Move every clip matching `where` that is in `from_` to `to`; how many moved."""
    res = await store.clips.update_many({**where, "state": _in(from_)}, _update(to, set_, (), None))
    if res.modified_count:
        CLIP_MOVES.labels(to).inc(res.modified_count)
        log.debug("lifecycle_move", item="clip", items=res.modified_count, to=to)
    return int(res.modified_count)


async def move_goal(store: Store, goal_id: str, *, from_: States, to: str,
                    where: Mapping[str, Any] | None = None, set_: Mapping[str, Any] | None = None,
                    unset: Iterable[str] = (), other: Mapping[str, Any] | None = None) -> bool:
    """Move one goal `from_` -> `to`; False if it was elsewhere (another actor moved it)."""
    res = await store.goals.update_one(_query(goal_id, from_, where),
                                       _update(to, set_, unset, other))
    if res.modified_count:
        GOAL_MOVES.labels(to).inc()
        log.debug("lifecycle_move", item="goal", item_id=goal_id, to=to)
    return bool(res.modified_count)


async def delete_clip_objects(blobs: BlobStore, blob_key: str) -> None:
    """Delete a clip's stored video and the poster beside it (either may be gone already)."""
    await blobs.delete(records.poster_key(blob_key))  # first: a crash between leaves the video,
    await blobs.delete(blob_key)  # whose next deletion takes the poster too
