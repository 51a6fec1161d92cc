"""A user's own search endpoint: GET {base}/search?q=&since=&limit= -> JSON list of posts."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from footyd.config import SearchServiceConfig
from footyd.config.findings import SourceVerdict
from footyd.errors import Permanent, RateLimited, Retryable
from footyd.sources.base import (
    MAX_BITRATE,
    MAX_DURATION_S,
    MAX_SIDE_PX,
    MAX_TEXT_CHARS,
    MAX_URL_CHARS,
    Candidate,
    GoalQuery,
    is_http_url,
    is_truncated_tweet_url,
)
from footyd.sources.guard import CircuitBreaker, Clock, RateLimiter, Sleep, SourceGuard
from footyd.sources.plumbing import HttpSource, read_json_capped
from footyd.sources.query import x_query_string

log = structlog.get_logger(__name__)

DEFAULT_RETRY_AFTER_S = 60.0


class SearchItem(BaseModel):
    """One item of the endpoint's answer, validated at the boundary."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    post_url: str = Field(max_length=MAX_URL_CHARS)
    media_url: str | None = Field(None, max_length=MAX_URL_CHARS)
    posted_at: datetime | None = None
    text: str = ""
    duration_s: float | None = Field(None, ge=0, le=MAX_DURATION_S, allow_inf_nan=False)
    width: int | None = Field(None, gt=0, le=MAX_SIDE_PX)
    height: int | None = Field(None, gt=0, le=MAX_SIDE_PX)
    bitrate: int | None = Field(None, gt=0, le=MAX_BITRATE)

    @field_validator("text")
    @classmethod
    def _short(cls, v: str) -> str:
        return v[:MAX_TEXT_CHARS]

    @field_validator("post_url", "media_url")
    @classmethod
    def _http_only(cls, v: str | None) -> str | None:
        if v is not None and not is_http_url(v):
            raise ValueError("only absolute http/https URLs are accepted")
        return v

    @field_validator("post_url")
    @classmethod
    def _not_truncated(cls, v: str) -> str:
        if is_truncated_tweet_url(v):
            raise ValueError("tweet id shorter than 18 digits (truncated link)")
        return v

    @field_validator("posted_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        return v.replace(tzinfo=UTC) if v is not None and v.tzinfo is None else v


def parse_items(body: Any, source: str, limit: int) -> list[Candidate]:
    """Validate each item; bad items are logged and skipped, never the whole answer."""
    if not isinstance(body, list):
        raise Retryable(f"{source}: response is not a JSON list")
    out: list[Candidate] = []
    seen: set[str] = set()
    for index, raw in enumerate(body):
        try:
            item = SearchItem.model_validate(raw)
        except ValidationError as exc:
            fields = sorted({".".join(str(p) for p in e["loc"]) or "(item)" for e in exc.errors()})
            log.warning("source_item_skipped", source=source, index=index, fields=fields)
            continue
        if item.post_url in seen:
            continue
        seen.add(item.post_url)
        out.append(Candidate(source=source, **item.model_dump()))
        if len(out) >= limit:
            break
    return out


class SearchServiceSource(HttpSource):
    """Client of the search_service HTTP contract (also the simulator's `fake` source)."""

    def __init__(
        self,
        base_url: str,
        *,
        name: str = "search_service",
        token: SecretStr | None = None,
        limit: int = 50,
        timeout_s: float = 15.0,
        requests_per_min: int | None = 30,
        max_response_mb: float = 16.0,
        max_wait_s: float = 10.0,
        session: aiohttp.ClientSession | None = None,
        guard: SourceGuard | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.name = name
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._limit = limit
        self._timeout_s = timeout_s
        self._max_bytes = int(max_response_mb * 1024 * 1024)
        self._use_session(session)
        self._clock = clock
        limiter = None
        if requests_per_min is not None:
            limiter = RateLimiter(requests_per_min, 60.0, max_wait_s=max_wait_s, clock=clock,
                                  sleep=sleep)
        self._limiter = limiter
        self.guard = guard or SourceGuard(
            name,
            breaker=CircuitBreaker(failure_threshold=3, base_backoff_s=15.0, max_backoff_s=600.0,
                                   clock=clock),
            limiter=limiter,
        )

    @classmethod
    def from_config(cls, cfg: SearchServiceConfig, **kwargs: Any) -> SearchServiceSource:
        """Build from the [sources.search_service] section."""
        return cls(cfg.base_url, token=cfg.token, limit=cfg.limit, timeout_s=cfg.timeout_s,
                   requests_per_min=cfg.requests_per_min, max_response_mb=cfg.max_response_mb,
                   **kwargs)

    def _params(self, query: GoalQuery, since: datetime) -> dict[str, str]:
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
        return {
            "q": x_query_string(query, operators=()),
            "since": since.astimezone(UTC).isoformat(),
            "limit": str(self._limit),
            # Not in the minimal contract; lets a service (and the simulator) match exactly.
            "fixture_id": str(query.fixture_id),
            "goal_id": query.goal_id,
            "minute": str(query.minute),
        }

    async def _search(self, query: GoalQuery, since: datetime) -> list[Candidate]:
        headers = {}
        if self._token is not None and self._token.get_secret_value():
            headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        timeout = aiohttp.ClientTimeout(total=self._timeout_s)
        try:
            async with self._http().get(
                self._base_url + "/search", params=self._params(query, since), headers=headers,
                timeout=timeout,
            ) as resp:
                if resp.status == 429:
                    retry_s = _retry_after(resp.headers.get("Retry-After"))
                    if self._limiter is not None:
                        self._limiter.block_until(self._clock() + retry_s)
                    raise RateLimited(f"{self.name}: HTTP 429", retry_after_s=retry_s)
                if resp.status in (401, 403):
                    raise Permanent(f"{self.name}: token rejected (HTTP {resp.status})")
                if resp.status in (404, 405):
                    raise Permanent(f"{self.name}: no /search endpoint (HTTP {resp.status})")
                if resp.status != 200:
                    raise Retryable(f"{self.name}: HTTP {resp.status}")
                body = await read_json_capped(resp, self.name, self._max_bytes)
        except TimeoutError:
            raise Retryable(f"{self.name}: no answer within {self._timeout_s} s") from None
        except aiohttp.ClientError as exc:
            raise Retryable(f"{self.name}: {type(exc).__name__}") from None
        candidates = parse_items(body, self.name, self._limit)
        log.info("source_searched", source=self.name, goal_id=query.goal_id,
                 candidates=len(candidates))
        return candidates


def _retry_after(raw: str | None) -> float:
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_RETRY_AFTER_S
    except ValueError:
        return DEFAULT_RETRY_AFTER_S


def check_config(cfg: SearchServiceConfig) -> SourceVerdict:
    """Nothing to check beyond the section's own validation."""
    return SourceVerdict()
