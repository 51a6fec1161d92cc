"""What every source shares: health from its guard, searches through it, an owned HTTP session."""

from __future__ import annotations

from datetime import datetime

import aiohttp

from footyd.sources.base import Candidate, GoalQuery, SourceHealthState
from footyd.sources.guard import SourceGuard


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
