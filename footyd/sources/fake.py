"""The simulator's source: the search_service contract served by the simulated clip host."""

from __future__ import annotations

from typing import Any

from footyd.config import FakeSourceConfig
from footyd.config.findings import Finding, SourceVerdict
from footyd.sources.search_service import SearchServiceSource


def fake_source(cfg: FakeSourceConfig, **kwargs: Any) -> SearchServiceSource:
    """A search_service client named `fake`, pointed at the simulator, with no rate limit."""
    kwargs.setdefault("requests_per_min", None)
    return SearchServiceSource(cfg.base_url, name="fake", timeout_s=cfg.timeout_s, **kwargs)


def check_config(cfg: FakeSourceConfig) -> SourceVerdict:
    """The simulator's source in a real config finds nothing real: say so."""
    return SourceVerdict(warnings=[Finding(
        "search.sources", "fake is the simulator's source (tests, the demo): it finds no "
        "real clip", "remove fake from search.sources")])
