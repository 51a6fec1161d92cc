"""The API-Football v3 seam: the only module that talks to API-Football (aiohttp)."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from types import TracebackType
from typing import Any, NamedTuple

import aiohttp
import structlog
from prometheus_client import Counter, Gauge, Histogram
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from footyd.clients.football_parse import (
    MAX_DEPTH,
    ApiStatus,
    Fixture,
    FixturesPage,
    MalformedItem,
    decode_body,
    header_int,
    parse_current_season,
    parse_fixture,
    parse_page,
    parse_status,
    short_repr,
)
from footyd.clients.retry_after import retry_after_s
from footyd.clock import utcnow
from footyd.config import ApiFootballConfig
from footyd.errors import (
    ApiError,
    ConfigError,
    MalformedPayload,
    QuotaExhausted,
    RateLimited,
    Retryable,
    outcome_label,
)
from footyd.metrics import REGISTRY

__all__ = ["MALFORMED_ITEMS", "MAX_IDS", "ApiStatus", "Fixture", "FixturesPage", "FootballClient",
           "MalformedItem", "QuotaState", "next_utc_midnight", "parse_fixture", "parse_page", "utcnow"]

log = structlog.get_logger(__name__)

MAX_IDS = 20
BACKOFF_MAX_S = 60.0

API_REQUESTS = Counter("footyd_api_requests", "API-Football requests by endpoint and outcome.",
                       ["endpoint", "outcome"], registry=REGISTRY)
API_SECONDS = Histogram("footyd_api_request_seconds", "API-Football request duration.",
                        ["endpoint"], registry=REGISTRY)
API_QUOTA_REMAINING = Gauge("footyd_api_quota_remaining", "API-Football calls left per window.",
                            ["window"], registry=REGISTRY)
API_QUOTA_LIMIT = Gauge("footyd_api_quota_limit", "API-Football calls allowed per window.",
                        ["window"], registry=REGISTRY)
# counted by the stage that asked for the item (a live=all answer holds others' fixtures too)
MALFORMED_ITEMS = Counter("footyd_api_malformed_items",
                          "API-Football fixture items skipped as malformed, by reason.",
                          ["reason"], registry=REGISTRY)
API_QUOTA_EXHAUSTED = Gauge("footyd_api_quota_exhausted",
                            "1 while the daily API-Football quota is spent.", registry=REGISTRY)



def next_utc_midnight(now: datetime) -> datetime:
    """The next 00:00 UTC after `now` (when the daily quota resets)."""
    day = now.astimezone(UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


class Answer(NamedTuple):
    """One call's envelope `response`, whether too-deep JSON was pruned, and the body size."""

    response: Any
    pruned: bool
    size_bytes: int


@dataclass(frozen=True)
class QuotaState:
    limit_day: int | None
    remaining_day: int | None
    limit_minute: int | None
    remaining_minute: int | None
    paused_until: datetime | None
    calls_made: int



class _MinuteLimiter:
    """Client-side sliding window: at most `limit` requests per `window_s`, counted to completion."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.limit: int | None = None
        self._done: deque[float] = deque()
        self._pending = 0
        self._cond: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    async def acquire(self) -> None:
        cond = self._condition()
        async with cond:
            while True:
                now = time.monotonic()
                while self._done and self._done[0] <= now - self.window_s:
                    self._done.popleft()
                if self.limit is None or len(self._done) + self._pending < self.limit:
                    self._pending += 1
                    return
                wait_s = self._done[0] + self.window_s - now if self._done else None
                try:
                    await asyncio.wait_for(cond.wait(), wait_s)
                except TimeoutError:
                    pass

    async def release(self) -> None:
        cond = self._condition()
        async with cond:
            self._pending -= 1
            # Completion time, not send time: the server counts arrivals, which come later.
            self._done.append(time.monotonic())
            cond.notify_all()

    def saturate(self) -> None:
        """The server says the window is full: treat it so until our oldest entry expires."""
        if self.limit is not None:
            now = time.monotonic()
            while len(self._done) + self._pending < self.limit:
                self._done.append(now)


class FootballClient:
    """Async API-Football client: quota-aware, rate-limited, retrying, per-item tolerant."""

    def __init__(self, cfg: ApiFootballConfig, *, clock: Callable[[], datetime] = utcnow,
                 minute_window_s: float = 60.0) -> None:
        self._cfg = cfg
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._limiter = _MinuteLimiter(minute_window_s)
        self._limit_day: int | None = None
        self._remaining_day: int | None = None
        self._limit_minute: int | None = None
        self._remaining_minute: int | None = None
        self._paused_until: datetime | None = None
        self._calls = 0
        self.update_config(cfg)

    async def __aenter__(self) -> FootballClient:
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def update_config(self, cfg: ApiFootballConfig) -> None:
        """Apply a reloaded config (key, limits, timeouts, retries) to the next requests."""
        self._cfg = cfg
        known = [x for x in (cfg.per_minute_limit, self._limit_minute) if x]
        self._limiter.limit = min(known) if known else None

    @property
    def quota(self) -> QuotaState:
        return QuotaState(self._limit_day or self._cfg.daily_limit, self._remaining_day,
                          self._limiter.limit, self._remaining_minute, self._paused_until,
                          self._calls)

    # -------------------------------------------------------------- public calls

    async def status(self) -> ApiStatus:
        """GET /status: plan and today's usage (free; allowed while the quota is paused)."""
        st = parse_status((await self._request("status", {}, free=True)).response)
        self._limit_day = st.limit_day
        self._remaining_day = max(0, st.limit_day - st.requests_current)
        return st

    async def current_season(self, league_id: int) -> int:
        """The season in progress for a league (GET /leagues?id=X&current=true)."""
        answer = await self._request("leagues", {"id": str(league_id), "current": "true"})
        return parse_current_season(answer.response, league_id)

    async def fixtures_by_ids(self, ids: Sequence[int]) -> FixturesPage:
        """Fixtures with their events, 1 to 20 ids (upstream answers nothing beyond 20)."""
        if not ids or len(ids) > MAX_IDS:
            raise ValueError(f"fixtures_by_ids takes 1 to {MAX_IDS} ids, got {len(ids)}")
        return await self._page({"ids": "-".join(map(str, ids))})

    async def fixtures_live(self, leagues: Sequence[int] | None = None) -> FixturesPage:
        """Fixtures in play (live=all or live=39-140), with events."""
        live = "-".join(map(str, leagues)) if leagues else "all"
        return await self._page({"live": live})

    async def fixtures_by_date(self, day: date, *, league: int | None = None,
                               season: int | None = None, team: int | None = None
                               ) -> FixturesPage:
        """Fixtures on one UTC day (no events)."""
        return await self._page({"date": day.isoformat(), **self._scope(league, season, team)})

    async def fixtures_between(self, start: date, end: date, *, league: int | None = None,
                               season: int | None = None, team: int | None = None
                               ) -> FixturesPage:
        """Fixtures from `start` to `end` inclusive (the API requires a season)."""
        if season is None:
            raise ValueError("fixtures_between needs a season")
        if start > end:
            raise ValueError(f"start {start} is after end {end}")
        params = {"from": start.isoformat(), "to": end.isoformat(),
                  **self._scope(league, season, team)}
        return await self._page(params)

    async def _page(self, params: dict[str, str]) -> FixturesPage:
        answer = await self._request("fixtures", params)
        page = parse_page(answer.response, pruned=answer.pruned)
        return FixturesPage(page.items, page.malformed, answer.size_bytes)

    @staticmethod
    def _scope(league: int | None, season: int | None, team: int | None) -> dict[str, str]:
        given = {"league": league, "season": season, "team": team}
        return {k: str(v) for k, v in given.items() if v is not None}

    # -------------------------------------------------------------- plumbing

    def _secret(self) -> str:
        key = self._cfg.api_key.get_secret_value() if self._cfg.api_key else ""
        if not key:
            raise ConfigError(["api_football.api_key: missing (set it, FOOTYD_API_FOOTBALL__API_KEY"
                               " or api_key_file)"])
        return key

    def _scrub(self, text: str) -> str:
        key = self._cfg.api_key.get_secret_value() if self._cfg.api_key else ""
        return text.replace(key, "***") if key else text

    def _headers(self, key: str) -> dict[str, str]:
        if self._cfg.mode == "rapidapi":
            return {"x-rapidapi-key": key, "x-rapidapi-host": self._cfg.rapidapi_host}
        return {"x-apisports-key": key}

    def _check_paused(self, endpoint: str) -> None:
        if self._paused_until is None:
            return
        if self._clock() >= self._paused_until:
            log.info("api_quota_reset", was_paused_until=self._paused_until.isoformat())
            self._paused_until = None
            API_QUOTA_EXHAUSTED.set(0)
            return
        API_REQUESTS.labels(endpoint, "refused").inc()
        raise QuotaExhausted(
            f"API-Football daily quota spent; paused until {self._paused_until.isoformat()}",
            reset_at=self._paused_until)

    def _exhaust(self) -> datetime:
        reset_at = next_utc_midnight(self._clock())
        if self._paused_until != reset_at:
            log.error("api_quota_exhausted", reset_at=reset_at.isoformat(),
                      limit_day=self._limit_day, calls_made=self._calls)
        self._paused_until = reset_at
        self._remaining_day = 0
        API_QUOTA_EXHAUSTED.set(1)
        return reset_at

    def _read_headers(self, status: int, headers: Mapping[str, str]) -> None:
        limit_day = header_int(headers, "x-ratelimit-requests-limit")
        remaining_day = header_int(headers, "x-ratelimit-requests-remaining")
        limit_minute = header_int(headers, "X-RateLimit-Limit")
        remaining_minute = header_int(headers, "X-RateLimit-Remaining")
        if limit_day is not None:
            self._limit_day = limit_day
            API_QUOTA_LIMIT.labels("day").set(limit_day)
        if remaining_day is not None:
            self._remaining_day = remaining_day
            API_QUOTA_REMAINING.labels("day").set(remaining_day)
            if remaining_day <= 0:
                self._exhaust()
        if limit_minute is not None and limit_minute != self._limit_minute:
            self._limit_minute = limit_minute
            API_QUOTA_LIMIT.labels("minute").set(limit_minute)
            self.update_config(self._cfg)
        if remaining_minute is not None:
            self._remaining_minute = remaining_minute
            API_QUOTA_REMAINING.labels("minute").set(remaining_minute)
            if remaining_minute <= 0 and status == 200:
                # Someone else shares the key (or our count drifted): wait out the window.
                self._limiter.saturate()

    def _wait_s(self, state: RetryCallState) -> float:
        base = self._cfg.backoff_base_s
        delay = min(BACKOFF_MAX_S, base * 2 ** (state.attempt_number - 1))
        delay += random.uniform(0, base)  # jitter: several clients must not retry in step
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Retryable) and exc.retry_after_s:
            delay = max(delay, min(BACKOFF_MAX_S, exc.retry_after_s))
        return delay

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("api_retry", attempt=state.attempt_number, error=str(exc),
                    wait_s=round(state.upcoming_sleep, 3))

    async def _request(self, endpoint: str, params: dict[str, str], *, free: bool = False
                       ) -> Answer:
        """One logical call: retries transient failures; returns the envelope's `response`.

        The flag says whether too-deep nesting was pruned from it (see `decode_body`).
        """
        if self._session is None:
            raise RuntimeError("FootballClient must be used as 'async with FootballClient(...)'")
        key = self._secret()
        retrying = AsyncRetrying(stop=stop_after_attempt(self._cfg.max_retries + 1),
                                 wait=self._wait_s, retry=retry_if_exception_type(Retryable),
                                 before_sleep=self._before_sleep, reraise=True)
        async for attempt in retrying:
            with attempt:
                if not free:  # a concurrent call may have spent the quota meanwhile
                    self._check_paused(endpoint)
                return await self._attempt(endpoint, params, key)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def _attempt(self, endpoint: str, params: dict[str, str], key: str) -> Answer:
        assert self._session is not None
        url = f"{self._cfg.base_url.rstrip('/')}/{endpoint}"
        timeout_s = self._cfg.timeout_s
        await self._limiter.acquire()
        started, outcome = time.monotonic(), "ok"
        try:
            self._calls += 1
            try:
                async with self._session.get(
                    url, params=params, headers=self._headers(key),
                    timeout=aiohttp.ClientTimeout(total=timeout_s),
                ) as resp:
                    status, headers = resp.status, resp.headers
                    body = await self._read_capped(endpoint, resp)
            except TimeoutError as exc:
                outcome = "timeout"
                raise Retryable(f"API-Football /{endpoint}: no answer within {timeout_s} s") from exc
            except aiohttp.ClientError as exc:
                outcome = "network"
                raise Retryable(self._scrub(
                    f"API-Football /{endpoint}: {type(exc).__name__}: {exc}")) from exc
            self._read_headers(status, headers)
            response, pruned = self._handle(endpoint, status, headers, body)
            return Answer(response, pruned, len(body))
        except Exception as exc:
            outcome = outcome if outcome != "ok" else outcome_label(exc)
            raise
        finally:
            await self._limiter.release()
            API_SECONDS.labels(endpoint).observe(time.monotonic() - started)
            API_REQUESTS.labels(endpoint, outcome).inc()

    async def _read_capped(self, endpoint: str, resp: aiohttp.ClientResponse) -> bytes:
        """The body, refused (MalformedPayload) past `max_response_mb`: nothing more is read."""
        cap = int(self._cfg.max_response_mb * 1024 * 1024)
        declared = resp.content_length
        if declared is not None and declared > cap:
            raise self._too_large(endpoint, declared, cap)
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > cap:
                raise self._too_large(endpoint, size, cap)
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _too_large(endpoint: str, size: int, cap: int) -> MalformedPayload:
        log.warning("api_response_too_large", endpoint=endpoint, size_bytes=size, cap_bytes=cap)
        return MalformedPayload(f"API-Football /{endpoint}: response body over {cap} bytes",
                                kind="too_large")

    def _handle(self, endpoint: str, status: int, headers: Mapping[str, str], body: bytes
                ) -> tuple[Any, bool]:
        if status == 429:
            retry_after = retry_after_s(headers.get("Retry-After"), max_s=BACKOFF_MAX_S)
            log.warning("api_rate_limited", endpoint=endpoint, retry_after_s=retry_after)
            raise RateLimited(f"API-Football /{endpoint}: per-minute rate limit (HTTP 429)",
                              retry_after_s=retry_after or None)
        if status == 499 or status >= 500:
            raise Retryable(f"API-Football /{endpoint}: HTTP {status}")
        if status == 204:
            return [], False
        try:
            env, pruned = decode_body(body)
        except MalformedPayload as exc:
            raise Retryable(f"API-Football /{endpoint}: malformed JSON (HTTP {status})") from exc
        if pruned:
            log.warning("api_response_pruned", endpoint=endpoint, max_depth=MAX_DEPTH)
        if not isinstance(env, dict) or "errors" not in env or "response" not in env:
            if status >= 400:
                raise ApiError({"http": f"HTTP {status}"})
            raise Retryable(f"API-Football /{endpoint}: envelope lacks errors/response")
        if env["errors"]:
            self._raise_errors(endpoint, env["errors"])
        if status >= 400:
            raise ApiError({"http": f"HTTP {status}"})
        return env["response"], pruned

    def _raise_errors(self, endpoint: str, errors: Any) -> None:
        def text(v: Any) -> str:  # bounded: errors are hostile input too
            return self._scrub(v[:300] if isinstance(v, str) else short_repr(v))

        if isinstance(errors, Mapping):
            items = {text(k)[:60]: text(v) for k, v in list(errors.items())[:20]}
        elif isinstance(errors, list):
            items = {str(i): text(v) for i, v in enumerate(errors[:20])}
        else:
            items = {"errors": text(errors)}
        daily = items.get("requests", "").lower()
        if "day" in daily or "limit" in daily:
            reset_at = self._exhaust()
            raise QuotaExhausted(f"API-Football daily quota spent: {items['requests']}",
                                 reset_at=reset_at)
        if "rateLimit" in items:
            log.warning("api_rate_limited", endpoint=endpoint, message=items["rateLimit"])
            raise RateLimited(f"API-Football /{endpoint}: {items['rateLimit']}")
        raise ApiError(items)
