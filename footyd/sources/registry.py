"""Build the enabled sources in configured order, each with its own guard and metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from prometheus_client import Counter, Gauge

from footyd.config import Config
from footyd.config.findings import SourceVerdict
from footyd.errors import outcome_label
from footyd.metrics import REGISTRY
from footyd.sources import fake, reddit, search_service, snscrape_source, x_api
from footyd.sources.base import (
    Candidate,
    GoalQuery,
    Source,
    SourceHealth,
    SourceHealthState,
    feed_interval_s,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SourceKind:
    """How to build one source from its `[sources.NAME]` section and check that section."""

    build: Callable[[Any], Source]
    check: Callable[[Any], SourceVerdict]


# a name in search.sources is a key here and a `[sources.NAME]` section (config_models.SourcesConfig)
SOURCES: dict[str, SourceKind] = {
    "x_api": SourceKind(x_api.XApiSource, x_api.check_config),
    "search_service": SourceKind(search_service.SearchServiceSource.from_config,
                                 search_service.check_config),
    "snscrape": SourceKind(snscrape_source.SnscrapeSource, snscrape_source.check_config),
    "reddit": SourceKind(reddit.RedditSource, reddit.check_config),
    "fake": SourceKind(fake.fake_source, fake.check_config),
}

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
            SOURCE_REQUESTS.labels(self.name, outcome_label(exc)).inc()
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
            SOURCE_REQUESTS.labels(self.name, outcome_label(exc)).inc()
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
        inner = SOURCES[name].build(getattr(cfg.sources, name))
        wrapped = InstrumentedSource(inner)
        wrapped.export_health()
        out.append(wrapped)
    log.info("sources_built", sources=[s.name for s in out])
    return out
