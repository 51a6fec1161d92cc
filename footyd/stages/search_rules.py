"""Pure rules of the search stage: merging source answers, deferral, and the goal's outcome."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from footyd import records
from footyd.clock import aware
from footyd.config import SearchConfig
from footyd.sources import Candidate

ANSWERED = ("ok", "empty")
DEFERRABLE = frozenset({"rate_limited", "unavailable"})
DEFER_MIN_S = 5.0  # never retry a rate-limited attempt sooner than this
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SourceResult:
    """What one source answered in one attempt."""

    source: str
    outcome: str  # ok, empty, error, unavailable, rate_limited
    candidates: tuple[Candidate, ...] = ()
    error: str | None = None
    retry_after_s: float | None = None  # rate_limited only: when the source expects a slot

    def to_doc(self) -> dict[str, Any]:
        """The search_log entry for this source."""
        doc: dict[str, Any] = {"outcome": self.outcome, "candidates": len(self.candidates),
                               "error": self.error}
        if self.retry_after_s is not None:
            doc["retry_after_s"] = round(self.retry_after_s, 1)
        return doc


def newest_first(results: Sequence[SourceResult]) -> list[Candidate]:
    """All candidates, newest post first (undated last; ties keep the configured source order)."""
    merged = [c for r in results for c in r.candidates]
    return sorted(merged, key=lambda c: aware(c.posted_at) or EPOCH, reverse=True)


def deferral_s(results: Sequence[SourceResult], interval_s: float) -> float | None:
    """Seconds to put the attempt off when rate limits alone kept every source from answering.

    None when the attempt counts (a source answered or failed otherwise). The delay is the
    smallest retry_after_s reported (interval_s when none was), clamped to [5 s, interval_s].
    """
    outcomes = {r.outcome for r in results}
    if "rate_limited" not in outcomes or not outcomes <= DEFERRABLE:
        return None
    hints = [r.retry_after_s for r in results
             if r.outcome == "rate_limited" and r.retry_after_s is not None]
    retry_s = min(hints) if hints else interval_s
    return min(interval_s, max(DEFER_MIN_S, retry_s))


def next_attempt_at(cfg: SearchConfig, first_seen: datetime, *, done: int, now: datetime) -> datetime:
    """When the attempt after `done` attempts runs: on the schedule, counted from the goal's
    first sighting, never sooner than half the densest step from now (a late attempt does not
    make the next one follow at once); past the schedule (extra attempts), interval_s from now."""
    offsets = cfg.attempt_offsets_s()
    if not cfg.schedule or done >= len(offsets):
        return now + timedelta(seconds=cfg.interval_s)
    gap_s = min(every for _, every in cfg.schedule) / 2
    return max(first_seen + timedelta(seconds=offsets[done]), now + timedelta(seconds=gap_s))


def source_url(c: Candidate) -> str:
    """What a clip is known by (one clip per goal and value): the source's key, else the post URL.

    Never the media URL: signed CDN URLs rotate, and each new signature would be a "new" clip.
    """
    return c.key or c.post_url


def goal_outcome(states: Sequence[str], search_log: Sequence[dict[str, Any]]) -> str:
    """Why a goal's search ended; "nothing posted" is kept apart from "we could not ask" (lesson 22)."""
    if records.CLIP_KEPT in states:
        return "clips_kept"
    if states or any(entry.get("candidates", 0) > 0 for entry in search_log):
        return "all_rejected"
    search_log = [entry for entry in search_log if not entry.get("deferred")]  # not attempts
    answered = [
        any(s.get("outcome") in ANSWERED for s in (entry.get("sources") or {}).values())
        for entry in search_log
    ]
    if answered and all(answered):
        return "no_clips_found"
    if not any(answered):
        return "sources_failed"
    return "sources_partial"  # some attempts could not ask any source: "nothing" is not certain
