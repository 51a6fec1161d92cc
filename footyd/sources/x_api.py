"""Official X API v2 recent search: posts with video since the goal, best mp4 variant each."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import structlog

from footyd.config import XApiConfig
from footyd.config.findings import Finding, SourceVerdict, is_set
from footyd.errors import Permanent, RateLimited, Retryable
from footyd.sources.base import (
    MAX_BITRATE,
    MAX_SIDE_PX,
    MAX_TEXT_CHARS,
    MIN_TWEET_ID_DIGITS,
    Candidate,
    GoalQuery,
    bounded_int,
    bounded_seconds,
    is_fetchable_url,
)
from footyd.sources.guard import Clock, RateLimiter, Sleep, SourceGuard
from footyd.sources.plumbing import HttpSource, read_json_capped, standard_guard
from footyd.sources.query import x_query_string

log = structlog.get_logger(__name__)

RATE_WINDOW_S = 900.0  # X counts requests per 15 minutes
RECENT_MAX_AGE = timedelta(days=7) - timedelta(minutes=1)
START_TIME_MIN_LAG = timedelta(seconds=10)  # start_time must lie in the past
DEFAULT_RETRY_AFTER_S = 60.0
TWEET_FIELDS = "created_at,attachments"
MEDIA_FIELDS = "type,duration_ms,width,height,variants,preview_image_url"
EXPANSIONS = "attachments.media_keys,author_id"


def _rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(raw: Any) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None


def _best_mp4(variants: Any) -> tuple[str, int | None] | None:
    """The video/mp4 variant with the highest bit rate, as (url, bit_rate)."""
    best: tuple[str, int | None] | None = None
    best_rate = -1
    for v in variants if isinstance(variants, list) else []:
        if not isinstance(v, dict) or v.get("content_type") != "video/mp4":
            continue
        url, rate = v.get("url"), bounded_int(v.get("bit_rate"), MAX_BITRATE)
        if not isinstance(url, str) or not is_fetchable_url(url):
            continue
        if (rate or 0) > best_rate:
            best, best_rate = (url, rate), rate or 0
    return best


def recency_priority(query: GoalQuery) -> float:
    """The goal's time in epoch seconds, so newer goals win rate-limit slots (unknown: last)."""
    at = query.goal_at
    if at is None:
        return 0.0
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def _dict(raw: Any) -> dict[str, Any]:
    return raw if isinstance(raw, dict) else {}


def parse_search_response(body: Any, source: str = "x_api") -> list[Candidate]:
    """Turn a recent-search JSON body into candidates (tweets without a video are skipped)."""
    if not isinstance(body, dict):
        raise Retryable(f"{source}: response is not a JSON object")
    tweets = body.get("data") or []
    media_list = _dict(body.get("includes")).get("media") or []
    if not isinstance(tweets, list) or not isinstance(media_list, list):
        raise Retryable(f"{source}: response does not have the documented shape")
    media = {m["media_key"]: m for m in media_list
             if isinstance(m, dict) and isinstance(m.get("media_key"), str)}
    out: list[Candidate] = []
    for tweet in tweets:
        if not isinstance(tweet, dict):
            continue
        tweet_id = tweet.get("id")
        if not isinstance(tweet_id, str) or not tweet_id.isascii() or not tweet_id.isdigit():
            continue
        if not MIN_TWEET_ID_DIGITS <= len(tweet_id) <= 2 * MIN_TWEET_ID_DIGITS:
            log.info("x_api_truncated_id_skipped", tweet_id=tweet_id[:40])
            continue
        keys = _dict(tweet.get("attachments")).get("media_keys")
        videos = [k for k in keys if isinstance(k, str) and k in media
                  and media[k].get("type") == "video"] if isinstance(keys, list) else []
        if not videos:
            continue
        video = media[videos[0]]
        best = _best_mp4(video.get("variants"))
        text = tweet.get("text")
        post_url = f"https://x.com/i/status/{tweet_id}"
        out.append(
            Candidate(
                source=source,
                post_url=post_url,
                key=f"{post_url}#media={videos[0]}",
                media_url=best[0] if best else None,
                posted_at=_parse_time(tweet.get("created_at")),
                text=text[:MAX_TEXT_CHARS] if isinstance(text, str) else "",
                duration_s=bounded_seconds(video.get("duration_ms"), 1000.0),
                width=bounded_int(video.get("width"), MAX_SIDE_PX),
                height=bounded_int(video.get("height"), MAX_SIDE_PX),
                bitrate=best[1] if best else None,
            )
        )
    return out


class XApiSource(HttpSource):
    """Searches X's recent-search endpoint with an app bearer token."""

    def __init__(
        self,
        cfg: XApiConfig,
        *,
        name: str = "x_api",
        session: aiohttp.ClientSession | None = None,
        guard: SourceGuard | None = None,
        max_wait_s: float = 10.0,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.name = name
        self._cfg = cfg
        self._use_session(session)
        self._clock = clock
        self._wall_clock = wall_clock
        self._limiter = RateLimiter(
            cfg.requests_per_15min, RATE_WINDOW_S, max_wait_s=max_wait_s, clock=clock, sleep=sleep
        )
        self.guard = guard or standard_guard(name, self._limiter, clock=clock,
                                             wall_clock=wall_clock)

    async def search(self, query: GoalQuery, since: datetime) -> list[Candidate]:
        """Candidates since `since`; queued behind newer goals when the window is nearly spent."""
        # Clips appear 5-15 min after a goal: a slot spent on an old goal finds little.
        return await self.guard.call(lambda: self._search(query, since),
                                     priority=recency_priority(query))

    def _start_time(self, since: datetime) -> str:
        now = datetime.fromtimestamp(self._wall_clock(), UTC)
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
        return _rfc3339(min(max(since, now - RECENT_MAX_AGE), now - START_TIME_MIN_LAG))

    def _read_rate_headers(self, headers: Mapping[str, str]) -> float | None:
        """Block the limiter until the window resets when it is spent; return seconds to reset."""
        remaining, reset = headers.get("x-rate-limit-remaining"), headers.get("x-rate-limit-reset")
        try:
            reset_in_s = max(0.0, float(reset) - self._wall_clock()) if reset else None
            spent = remaining is not None and int(remaining) <= 0
        except ValueError:
            return None
        if spent and reset_in_s is not None:
            self._limiter.block_until(self._clock() + reset_in_s)
            log.info("x_api_rate_window_spent", reset_in_s=round(reset_in_s, 1))
        return reset_in_s

    async def _search(self, query: GoalQuery, since: datetime) -> list[Candidate]:
        token = self._cfg.bearer_token.get_secret_value() if self._cfg.bearer_token else ""
        if not token:
            raise Permanent("x_api: no bearer token configured")
        params = {
            "query": x_query_string(query),
            "start_time": self._start_time(since),
            "max_results": str(self._cfg.max_results),
            "expansions": EXPANSIONS,
            "tweet.fields": TWEET_FIELDS,
            "media.fields": MEDIA_FIELDS,
        }
        url = self._cfg.base_url.rstrip("/") + "/tweets/search/recent"
        timeout = aiohttp.ClientTimeout(total=self._cfg.timeout_s)
        try:
            async with self._http().get(
                url, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
            ) as resp:
                reset_in_s = self._read_rate_headers(resp.headers)
                if resp.status == 429:
                    retry_s = reset_in_s if reset_in_s is not None else DEFAULT_RETRY_AFTER_S
                    self._limiter.block_until(self._clock() + retry_s)
                    raise RateLimited("x_api: HTTP 429", retry_after_s=retry_s)
                if resp.status in (401, 403):
                    raise Permanent(f"x_api: bearer token rejected (HTTP {resp.status})")
                if resp.status != 200:
                    raise Retryable(f"x_api: HTTP {resp.status}")
                body = await read_json_capped(resp, self.name,
                                              int(self._cfg.max_response_mb * 1024 * 1024))
        except TimeoutError:
            raise Retryable(f"x_api: no answer within {self._cfg.timeout_s} s") from None
        except aiohttp.ClientError as exc:
            raise Retryable(f"x_api: {type(exc).__name__}") from None
        candidates = parse_search_response(body, self.name)
        log.info("x_api_searched", goal_id=query.goal_id, candidates=len(candidates))
        return candidates


def check_config(cfg: XApiConfig) -> SourceVerdict:
    """x_api in search.sources without a bearer token cannot start."""
    if is_set(cfg.bearer_token):
        return SourceVerdict()
    return SourceVerdict(can_search=False, errors=[Finding(
        "sources.x_api.bearer_token", "x_api is in search.sources but has no bearer token",
        "FOOTYD_SOURCES__X_API__BEARER_TOKEN or sources.x_api.bearer_token_file, "
        "or remove x_api from search.sources")])
