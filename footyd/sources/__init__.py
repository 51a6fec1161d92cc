"""Video sources behind one Protocol (x_api, search_service, snscrape, reddit, fake)."""

from __future__ import annotations

from footyd.sources.base import (
    Candidate,
    GoalQuery,
    Source,
    SourceHealth,
    SourceHealthState,
    feed_interval_s,
)
from footyd.sources.guard import SourceUnavailable
from footyd.sources.query import build_query, x_query_string
from footyd.sources.registry import build_sources

__all__ = [
    "Candidate",
    "GoalQuery",
    "Source",
    "SourceHealth",
    "SourceHealthState",
    "SourceUnavailable",
    "build_query",
    "build_sources",
    "feed_interval_s",
    "x_query_string",
]
