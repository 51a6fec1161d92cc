"""The video-source contract: goal queries in, candidate clips out, plus a health state."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from footyd.clients.media_http import is_http_url as is_http_url  # re-exported

# Bounds on what a source may hand over: anything outside is dropped at the parser, so a hostile
# answer never reaches MongoDB (int64) or the downloader as an absurd value.
MAX_URL_CHARS = 2048
MAX_TEXT_CHARS = 2000
MAX_SIDE_PX = 100_000
MAX_BITRATE = 10**10
MAX_DURATION_S = 86_400.0


def bounded_int(raw: object, high: int) -> int | None:
    """raw when it is an int (not a bool) in 1..high, else None."""
    return raw if isinstance(raw, int) and not isinstance(raw, bool) and 0 < raw <= high else None


def bounded_seconds(raw: object, scale: float = 1.0) -> float | None:
    """raw / scale as seconds when it is a finite number in 0..MAX_DURATION_S, else None."""
    if not isinstance(raw, int | float) or isinstance(raw, bool):
        return None
    if not 0 <= raw <= MAX_DURATION_S * scale:  # compared before dividing: 10**400 overflows
        return None
    seconds = raw / scale
    return seconds if math.isfinite(seconds) else None


def is_fetchable_url(raw: object) -> bool:
    """An http(s) URL of sane length."""
    return isinstance(raw, str) and len(raw) <= MAX_URL_CHARS and is_http_url(raw)


@dataclass(frozen=True)
class GoalQuery:
    """What a source needs to look for one goal's clips."""

    goal_id: str
    fixture_id: int
    team_name: str
    opponent_name: str
    scorer_name: str | None  # None while the API has not named the scorer
    minute: int
    team_terms: tuple[str, ...]
    scorer_terms: tuple[str, ...]
    goal_at: datetime | None = None  # when the goal was seen: rate-limited sources favour newer
    opponent_terms: tuple[str, ...] = ()  # the opponent's name and aliases (title matching)
    score: tuple[int, int] | None = None  # running (home, away) score after the goal


@dataclass(frozen=True)
class Candidate:
    """One post that may carry a clip of the goal."""

    source: str
    post_url: str
    media_url: str | None
    posted_at: datetime | None
    text: str
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    bitrate: int | None = None
    # The source's stable id of this clip (X: the post plus its media key). Media URLs are often
    # signed and change on every search, so they never identify a clip; None: the post URL does.
    key: str | None = None
    permalink: str | None = None  # the discussion page when post_url is the media link (reddit)


class SourceHealth(StrEnum):
    """Coarse health of a source, exported as a metric and in /readyz."""

    OK = "ok"
    DEGRADED = "degraded"  # the last call failed, the circuit is still closed
    BLOCKED = "blocked"  # the source cannot work as configured (bad token, blocked, missing)
    OPEN_CIRCUIT = "open_circuit"  # too many failures: calls are refused until next_try_at


@dataclass(frozen=True)
class SourceHealthState:
    """A health snapshot: the state, why, and when the source will be tried again."""

    state: SourceHealth
    last_error: str | None = None
    next_try_at: datetime | None = None  # wall-clock UTC


@runtime_checkable
class Source(Protocol):
    """A place to search for goal clips."""

    name: str

    @property
    def health(self) -> SourceHealthState: ...

    async def search(self, query: GoalQuery, since: datetime) -> list[Candidate]: ...

    async def aclose(self) -> None: ...


_STATUS_RE = re.compile(r"/status(?:es)?/(\d+)")
_X_HOSTS = frozenset({"x.com", "twitter.com", "mobile.twitter.com", "mobile.x.com", "www.x.com",
                      "www.twitter.com"})
MIN_TWEET_ID_DIGITS = 18  # snowflake ids are 18-19 digits; shorter ones were truncated


def feed_interval_s(source: object) -> float | None:
    """How often a feed (a source whose one request serves every goal) is read; None: a search.

    A feed's posts are pushed to every searchable goal as they are read (SearchStage.push_feeds)
    instead of waiting for each goal's next attempt.
    """
    value = getattr(source, "feed_interval_s", None)
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def is_truncated_tweet_url(url: str) -> bool:
    """True for an x.com/twitter.com status URL whose id is too short to be real (lesson 24)."""
    parts = urlsplit(url)
    if (parts.hostname or "").lower() not in _X_HOSTS:
        return False
    match = _STATUS_RE.search(parts.path)
    return match is not None and len(match.group(1)) < MIN_TWEET_ID_DIGITS
