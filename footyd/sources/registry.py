"""Build the enabled sources in configured order, each with its own guard and metrics."""

from __future__ import annotations

from datetime import datetime

import structlog
from prometheus_client import Counter, Gauge

from footyd.config import Config
from footyd.errors import Permanent, RateLimited
from footyd.metrics import REGISTRY
from footyd.sources.base import (
    Candidate,
    GoalQuery,
    Source,
    SourceHealth,
    SourceHealthState,
    feed_interval_s,
)
from footyd.sources.fake import fake_source
from footyd.sources.guard import SourceUnavailable
from footyd.sources.reddit import RedditSource
from footyd.sources.search_service import SearchServiceSource
from footyd.sources.snscrape_source import SnscrapeSource
from footyd.sources.x_api import XApiSource

log = structlog.get_logger(__name__)

SOURCE_REQUESTS = Counter(
    "footyd_source_requests",
    "Source searches by outcome (ok, empty, rate_limited, unavailable, error, permanent).",
    ["source", "outcome"],
    registry=REGISTRY,
)
SOURCE_HEALTH = Gauge(
    "footyd_source_health", "1 for the current health state of each source.",
    ["source", "state"], registry=REGISTRY,
)
SOURCE_CANDIDATES = Counter(
    "footyd_source_candidates", "Candidates returned per source.", ["source"], registry=REGISTRY
)


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, SourceUnavailable):
        return "unavailable"
    if isinstance(exc, RateLimited):
        return "rate_limited"
    if isinstance(exc, Permanent):
        return "permanent"
    return "error"


class InstrumentedSource:
    """Wraps a source to count its requests and candidates and export its health."""

    def __init__(self, inner: Source) -> None:
        self.inner = inner
        self.name = inner.name
        self.feed_interval_s = feed_interval_s(inner)

    @property
    def health(self) -> SourceHealthState:
        """The wrapped source's health."""
        return self.inner.health

    def export_health(self) -> None:
        """Set the health gauge: 1 for the current state, 0 for the others."""
        current = self.inner.health.state
        for state in SourceHealth:
            SOURCE_HEALTH.labels(self.name, state.value).set(1 if state is current else 0)

    async def search(self, query: GoalQuery, since: datetime) -> list[Candidate]:
        """Delegate, then record the outcome ('empty' tells "nothing posted" from a failure)."""
        try:
            found = await self.inner.search(query, since)
        except Exception as exc:
            SOURCE_REQUESTS.labels(self.name, _outcome(exc)).inc()
            raise
        finally:
            self.export_health()
        SOURCE_REQUESTS.labels(self.name, "ok" if found else "empty").inc()
        SOURCE_CANDIDATES.labels(self.name).inc(len(found))
        return found

    async def refresh_feed(self) -> None:
        """A feed: read it now (counted like a search); a plain search source: nothing to do."""
        refresh = getattr(self.inner, "refresh_feed", None)
        if refresh is None:
            return
        try:
            await refresh()
        except Exception as exc:
            SOURCE_REQUESTS.labels(self.name, _outcome(exc)).inc()
            raise
        finally:
            self.export_health()

    async def aclose(self) -> None:
        """Close the wrapped source."""
        await self.inner.aclose()


def build_sources(cfg: Config) -> list[Source]:
    """The sources named in search.sources, in that order, each instrumented."""
    out: list[Source] = []
    for name in dict.fromkeys(cfg.search.sources):  # ignore repeats, keep order
        inner: Source
        if name == "x_api":
            inner = XApiSource(cfg.sources.x_api)
        elif name == "search_service":
            inner = SearchServiceSource.from_config(cfg.sources.search_service)
        elif name == "snscrape":
            inner = SnscrapeSource(cfg.sources.snscrape)
        elif name == "reddit":
            inner = RedditSource(cfg.sources.reddit)
        elif name == "fake":
            inner = fake_source(cfg.sources.fake)
        else:  # config validation makes this unreachable
            raise ValueError(f"unknown source {name!r}")
        wrapped = InstrumentedSource(inner)
        wrapped.export_health()
        out.append(wrapped)
    log.info("sources_built", sources=[s.name for s in out])
    return out
