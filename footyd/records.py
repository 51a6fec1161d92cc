"""Document shapes shared by stages (stages never import each other)."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the API client (aiohttp) is not needed to shape a document
    from footyd.clients.football import Fixture

STAGE_STAMP = {"active": "activated_at", "completed": "completed_at", "staging": "staged_at"}


def fixture_fields(fx: Fixture) -> dict[str, Any]:
    """The fixture document fields derived from an API item (ingest and monitor)."""
    return {
        "kickoff": fx.kickoff,
        "status": fx.status_short,
        "status_long": fx.status_long,
        "elapsed": fx.elapsed,
        "league_id": fx.league_id,
        "league_name": fx.league_name,
        "season": fx.season,
        "home": {"id": fx.home_id, "name": fx.home_name},
        "away": {"id": fx.away_id, "name": fx.away_name},
        "score": {"home": fx.goals_home, "away": fx.goals_away,
                  **({"penalty": {"home": fx.penalties_home, "away": fx.penalties_away}}
                     if fx.penalties_home is not None and fx.penalties_away is not None else {})},
    }


def poll_hash(fields: dict[str, Any], events: list[dict[str, Any]]) -> str:
    """Digest of what a poll told us about a fixture (its used fields and its events)."""
    text = json.dumps([fields, events], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def raw_json(raw: Any, max_chars: int = 1_000_000) -> str | None:
    """An API item as JSON text for `monitor.keep_raw` (text: BSON cannot hold every JSON)."""
    try:
        text = json.dumps(raw, separators=(",", ":"))
    except (ValueError, TypeError, RecursionError):
        return None
    return text if len(text) <= max_chars else None


# Goal states (goals.state). The monitor writes pending/confirmed/cancelled; search owns the rest.
GOAL_PENDING = "pending"
GOAL_CONFIRMED = "confirmed"  # written by the monitor, then the id is put on the search queue
GOAL_SEARCHING = "searching"  # at least one search attempt started
GOAL_DONE = "done"  # attempts spent and every clip terminal; `outcome` says what happened
GOAL_CANCELLED = "cancelled"  # VAR: stop searching, retract clips (then `retracted_at` is set)
GOAL_FAILED = "failed"
GOAL_SEARCHABLE = (GOAL_CONFIRMED, GOAL_SEARCHING)

# Clip states (clips.state), one document per (goal_id, source_url).
CLIP_DISCOVERED = "discovered"  # found by a source; download pending (retry: next_attempt_at)
CLIP_DOWNLOADED = "downloaded"  # validated and stored in the blob store; dedup pending
CLIP_KEPT = "kept"  # best copy of a distinct clip of its goal
CLIP_DUPLICATE = "duplicate"  # lost to `duplicate_of`; blob held (`blob_held`) until the goal ends
CLIP_REJECTED = "rejected"  # filtered or invalid media (`reason`); nothing stored
CLIP_FAILED = "failed"  # could not be fetched (`reason`: not_found, forbidden, attempts spent ...)
CLIP_RETRACTED = "retracted"  # its goal was cancelled; blob deleted or kept by goals.on_cancel
CLIP_TERMINAL = (CLIP_KEPT, CLIP_DUPLICATE, CLIP_REJECTED, CLIP_FAILED, CLIP_RETRACTED)
CLIP_HOLDS_BLOB = (CLIP_DOWNLOADED, CLIP_KEPT)
# a duplicate keeps its blob while its goal may still regroup (it can be kept again), released
# by dedup once the goal is done or failed: a filter for "some clip still needs this object"
HOLDS_BLOB = {"$or": [{"state": {"$in": list(CLIP_HOLDS_BLOB)}},
                      {"state": CLIP_DUPLICATE, "blob_held": True}]}


def holds_blob(doc: dict[str, Any]) -> bool:
    """Whether this clip document still needs its blob (see HOLDS_BLOB)."""
    return doc.get("state") in CLIP_HOLDS_BLOB or (
        doc.get("state") == CLIP_DUPLICATE and bool(doc.get("blob_held")))


def clip_key(fixture_id: int, goal_id: str, sha256: str) -> str:
    """The content-addressed blob key (relative to storage.prefix): re-uploads overwrite."""
    return f"{fixture_id}/{goal_id}/{sha256[:16]}.mp4"


def poster_key(blob_key: str) -> str:
    """Where a clip's poster JPEG is stored: beside its video, deleted with it."""
    return blob_key.removesuffix(".mp4") + ".jpg"
