"""The demo's daemon config, built in code for the simulators on loopback."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from footyd.demo.script import DemoScript
from footyd.sim.clipgen import CATALOGUE
from footyd.sim.clips import ClipHost
from footyd.sim.football import SimFootball
from footyd.sim.net import free_port
from footyd.sim.reddit import FakeReddit


def demo_tree(script: DemoScript, *, minute_s: float, sim: SimFootball, host: ClipHost,
              workdir: Path, mongo_uri: str, web: bool,
              reddit: FakeReddit | None = None) -> tuple[dict[str, Any], str, str | None]:
    """The config tree (before env overrides), the health URL and the page URL (None: no web)."""
    poll_s = script.poll_min * minute_s
    teams = sorted({t.id for fx in script.fixtures for t in (fx.home, fx.away)})
    health = f"127.0.0.1:{free_port()}"
    tree: dict[str, Any] = {
        "api_football": {"base_url": sim.base_url, "api_key": sim.key, "timeout_s": 5.0,
                         "max_retries": 2, "backoff_base_s": 0.1, "daily_reserve": 0},
        "scope": {"teams": teams},
        "ingest": {"days_ahead": 1},
        "monitor": {"poll_interval_s": poll_s, "poll_floor_s": min(poll_s, 0.05),
                    "staging_check_interval_s": 5 * poll_s, "activate_before_s": 3600.0,
                    "complete_grace_s": 2 * minute_s},
        "goals": {"confirm_polls": 2, "cancel_polls": 3, "on_cancel": "delete"},
        "search": {"sources": ["fake"], "attempts": script.search_attempts,
                   "interval_s": script.search_interval_min * minute_s, "schedule": [],
                   "window_margin_s": 60.0,
                   "due_scan_s": max(0.1, minute_s / 2), "source_timeout_s": 10.0},
        "sources": {"fake": {"base_url": host.base_url}},
        "download": {"scratch_dir": str(workdir / "scratch"), "max_size_mb": 20.0,
                     "timeout_s": 20.0, "socket_timeout_s": 5.0, "max_attempts": 2,
                     "retry_backoff_s": 1.0,
                     "allow_private_addresses": True},  # the simulated clip host is loopback
        "dedup": {"workers": 2, "retry_backoff_s": 1.0},
        "mongo": {"uri": mongo_uri, "database": "footyd_demo"},
        "storage": {"kind": "local", "local_dir": str(workdir / "clips"), "prefix": "clips"},
        "health": {"listen": health},
        "log": {"level": "info", "format": "json"},
        "shutdown": {"intake_s": 1.0, "search_s": 2.0, "download_s": 5.0, "dedup_s": 5.0,
                     "close_s": 5.0},
    }
    if reddit is not None:  # a second source: the same goal's clips deduplicated across both
        tree["search"]["sources"].append("reddit")
        tree["sources"]["reddit"] = {**reddit.source_config(), "poll_s": max(0.1, minute_s),
                                     "max_age_min": 120.0, "timeout_s": 5.0}
    page = None
    if web:
        listen = f"127.0.0.1:{free_port()}"
        tree["web"] = {"enabled": True, "listen": listen, "poll_interval_s": max(0.2, poll_s)}
        page = f"http://{listen}/"
    return tree, f"http://{health}/healthz", page


def clip_cache_dir(env: Mapping[str, str]) -> Path:
    """Where generated demo clips are cached: $XDG_CACHE_HOME/footyd/, keyed by the catalogue."""
    specs = repr(sorted(CATALOGUE.items())) + "h264"
    digest = hashlib.sha256(specs.encode()).hexdigest()[:12]
    base = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "footyd" / f"demo-clips-{digest}"


def cached(clip_dir: Path, names: Sequence[str]) -> bool:
    """True when every named clip is already in clip_dir."""
    return all((clip_dir / CATALOGUE[n].filename).exists() for n in names)
