"""What every source shares: health from its guard, searches through it, an owned HTTP session."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import aiohttp
import structlog

from footyd.errors import MalformedPayload, Retryable
from footyd.sources.base import Candidate, GoalQuery, SourceHealthState
from footyd.sources.guard import CircuitBreaker, Clock, RateLimiter, SourceGuard

log = structlog.get_logger(__name__)

READ_CHUNK_BYTES = 64 * 1024


def _too_large(source: str, size: int, max_bytes: int) -> MalformedPayload:
    log.warning("source_response_too_large", source=source, size_bytes=size, cap_bytes=max_bytes)
    return MalformedPayload(f"{source}: response body over {max_bytes} bytes", kind="too_large")


async def read_json_capped(resp: aiohttp.ClientResponse, source: str, max_bytes: int) -> Any:
    """The decoded JSON body; past max_bytes it is refused (MalformedPayload) and not read on.

    A body that is not JSON is Retryable (a proxy's error page); one nested too deeply for the
    decoder is MalformedPayload.
    """
    declared = resp.content_length
    if declared is not None and declared > max_bytes:
        raise _too_large(source, declared, max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(READ_CHUNK_BYTES):
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(source, size, max_bytes)
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except RecursionError:
        raise MalformedPayload(f"{source}: JSON nested too deeply", kind="too_deep") from None
    except ValueError:  # also UnicodeDecodeError
        raise Retryable(f"{source}: response is not JSON") from None


def standard_guard(name: str, limiter: RateLimiter, *, clock: Clock,
                   wall_clock: Clock) -> SourceGuard:
    """An API source's guard: opens after 3 failures, backs off 30 s doubling to 30 min."""
    return SourceGuard(
        name,
        breaker=CircuitBreaker(failure_threshold=3, base_backoff_s=30.0, max_backoff_s=1800.0,
                               clock=clock),
        limiter=limiter,
        wall_clock=wall_clock,
    )


class GuardedSource:
    """A source whose every search goes through its circuit breaker and rate limiter."""

    name: str
    guard: SourceGuard

    @property
    def health(self) -> SourceHealthState:
        """Current health."""
        return self.guard.health

    async def search(self, query: GoalQuery, since: datetime) -> list[Candidate]:
        """Candidates for the goal posted since `since` (refused at once while the circuit is open)."""
        return await self.guard.call(lambda: self._search(query, since))

    async def _search(self, query: GoalQuery, since: datetime) -> list[Candidate]:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release what the source holds (nothing by default)."""


class HttpSource(GuardedSource):
    """A guarded source speaking HTTP through one session (its own, or one it was given)."""

    _session: aiohttp.ClientSession | None = None
    _owns_session: bool = True

    def _use_session(self, session: aiohttp.ClientSession | None) -> None:
        self._session = session
        self._owns_session = session is None

    def _http(self) -> aiohttp.ClientSession:
        """The session, opened on first use (never in a constructor)."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def aclose(self) -> None:
        """Close the HTTP session if this source opened it."""
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None
