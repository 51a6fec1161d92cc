"""JSON views of fixture, goal and clip documents (pure: what the API and the stream send)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from footyd import records
from footyd.stages import rules

Doc = dict[str, Any]
View = dict[str, Any]

GOAL_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
# ASCII only: str.isdigit() and \d accept digits like "²" that int() or dates then refuse
FIXTURE_ID_RE = re.compile(r"[0-9]{1,16}")
DAY_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
EVENT_ID_RE = re.compile(r"[0-9a-f]{1,32}-[0-9]{1,18}")
MIN_DAY, MAX_DAY = date(1970, 1, 1), date(9998, 12, 31)  # a day and its end fit a datetime
MAX_FIXTURE_ID = 2**53  # what a JavaScript number holds exactly

# The order clips are listed in: what a viewer wants first.
CLIP_ORDER = {
    records.CLIP_KEPT: 0,
    records.CLIP_DUPLICATE: 1,
    records.CLIP_REJECTED: 2,
    records.CLIP_FAILED: 3,
    records.CLIP_DOWNLOADED: 4,
    records.CLIP_DISCOVERED: 5,
    records.CLIP_RETRACTED: 6,
}
# Fields never needed by a view; left out of every query (the raw API snapshot is large).
HEAVY_FIELDS = {"api": 0, "api_raw": 0, "fingerprint": 0, "text": 0, "scorer_history": 0,
                "seen_poll_ids": 0, "missing_poll_ids": 0}


class BadParam(ValueError):
    """A request parameter does not have the documented shape (answered with 400)."""


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return None


def num(value: Any) -> float | int | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def text(value: Any, limit: int = 300) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _team(value: Any) -> View:
    value = value if isinstance(value, dict) else {}
    return {"id": num(value.get("id")), "name": text(value.get("name"))}


def http_url(value: Any) -> str | None:
    """Only http(s) links reach the page (the values come from the internet)."""
    if isinstance(value, str) and value.startswith(("https://", "http://")):
        return value[:2000]
    return None


def fixture_view(doc: Doc) -> View:
    """A fixture with score, status, minute and stage."""
    raw_score = doc.get("score")
    score: Doc = raw_score if isinstance(raw_score, dict) else {}
    return {
        "id": doc["_id"],
        "kickoff": _iso(doc.get("kickoff")),
        "status": text(doc.get("status")),
        "status_long": text(doc.get("status_long")),
        "minute": num(doc.get("elapsed")),
        "stage": text(doc.get("stage")),
        "league": {"id": num(doc.get("league_id")), "name": text(doc.get("league_name"))},
        "home": _team(doc.get("home")),
        "away": _team(doc.get("away")),
        "score": {"home": num(score.get("home")), "away": num(score.get("away")),
                  "penalty": _penalty(score.get("penalty"))},
    }


def _penalty(raw: Any) -> dict[str, Any] | None:
    """The shootout score, when the fixture had one."""
    if not isinstance(raw, dict):
        return None
    home, away = num(raw.get("home")), num(raw.get("away"))
    return {"home": home, "away": away} if home is not None and away is not None else None


def goal_view(doc: Doc) -> View:
    """A goal with scorer, minute, running score and state."""
    elapsed = num(doc.get("elapsed"))
    extra = num(doc.get("extra"))
    minute = rules.minute_label(int(elapsed), int(extra) if extra else None) if elapsed is not None else None
    return {
        "id": doc["_id"],
        "fixture_id": doc.get("fixture_id"),
        "team": {"id": num(doc.get("team_id")), "name": text(doc.get("team_name"))},
        "scorer": text(doc.get("scorer_name")),
        "assist": text(doc.get("assist_name")),
        "detail": text(doc.get("detail")),
        "minute": minute,
        "elapsed": elapsed,
        "extra": extra,
        "score": {"home": num(doc.get("score_home")), "away": num(doc.get("score_away"))},
        "state": text(doc.get("state")),
        "outcome": text(doc.get("outcome")),
        "first_seen_at": _iso(doc.get("first_seen_at")),
        "confirmed_at": _iso(doc.get("confirmed_at")),
        "cancelled_at": _iso(doc.get("cancelled_at")),
    }


def clip_view(doc: Doc) -> View:
    """A clip candidate; `video_url` only while its bytes are stored."""
    state = text(doc.get("state"))
    has_video = state in records.CLIP_HOLDS_BLOB and isinstance(doc.get("blob_key"), str)
    return {
        "id": doc["_id"],
        "goal_id": doc.get("goal_id"),
        "fixture_id": doc.get("fixture_id"),
        "state": state,
        "reason": text(doc.get("reason"), 500),
        "duplicate_of": text(doc.get("duplicate_of")),
        "source": text(doc.get("source")),
        "post_url": http_url(doc.get("post_url")),
        "posted_at": _iso(doc.get("posted_at")),
        "width": num(doc.get("width")),
        "height": num(doc.get("height")),
        "duration_s": num(doc.get("duration_s")),
        "size_bytes": num(doc.get("size_bytes")),
        "codec": text(doc.get("codec")),
        "video_url": f"/api/clips/{doc['_id']}/video" if has_video else None,
    }


def sort_clips(views: Iterable[View]) -> list[View]:
    """Kept first (largest first), then duplicates, rejected, failed, then in-flight ones."""
    return sorted(views, key=lambda v: (CLIP_ORDER.get(v["state"] or "", 9),
                                        -(v["height"] or 0), str(v["id"])))


def clip_counts(views: Iterable[View]) -> dict[str, int]:
    """How many clips are in each state (every state present, zero when none)."""
    counts = Counter(v["state"] for v in views)
    return {state: counts.get(state, 0) for state in CLIP_ORDER}


def parse_day(raw: str | None, now: datetime) -> tuple[date, datetime, datetime]:
    """The UTC day asked for (`YYYY-MM-DD`, default today) and its [start, end) bounds."""
    if raw is None:
        day = now.astimezone(UTC).date()
    else:
        try:
            if not DAY_RE.fullmatch(raw):
                raise ValueError(raw)
            day = date.fromisoformat(raw)
        except ValueError:
            raise BadParam("date must be YYYY-MM-DD") from None
    if not MIN_DAY <= day <= MAX_DAY:
        raise BadParam(f"date must be between {MIN_DAY} and {MAX_DAY}")
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return day, start, start + timedelta(days=1)


def parse_fixture_id(raw: str) -> int:
    """A fixture id from a path: a positive integer."""
    if not FIXTURE_ID_RE.fullmatch(raw) or not 0 < int(raw) < MAX_FIXTURE_ID:
        raise BadParam("fixture id must be a positive integer")
    return int(raw)


def parse_int_param(raw: str | None, what: str) -> int | None:
    """An optional id in a query string (team, league): a positive integer."""
    if raw is None or raw == "":
        return None
    if not FIXTURE_ID_RE.fullmatch(raw) or not 0 < int(raw) < MAX_FIXTURE_ID:
        raise BadParam(f"{what} must be a positive integer")
    return int(raw)


def parse_event_id(raw: str) -> str:
    """A stream resume point (`Last-Event-ID`): `<epoch hex>-<seq>` in ASCII, bounded."""
    if not EVENT_ID_RE.fullmatch(raw):
        raise BadParam("Last-Event-ID is malformed")
    return raw


def parse_doc_id(raw: str, what: str) -> str:
    """A goal or clip id from a path: short, no path characters."""
    if not GOAL_ID_RE.fullmatch(raw):
        raise BadParam(f"{what} id is malformed")
    return raw
