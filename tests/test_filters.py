"""Candidate filters: each bound refuses with a reason naming its config key."""

from __future__ import annotations

from footyd.config import DownloadConfig
from footyd.media.filters import rejection

CFG = DownloadConfig()


def test_broadcast_clip_passes_and_unknowns_pass() -> None:
    assert rejection(CFG, duration_s=30, width=1280, height=720, size_bytes=5_000_000) is None
    assert rejection(CFG) is None


def test_each_bound_names_its_key() -> None:
    assert "min_duration_s" in (rejection(CFG, duration_s=1.0) or "")
    assert "max_duration_s" in (rejection(CFG, duration_s=999) or "")
    assert "min_short_side_px" in (rejection(CFG, width=480, height=270) or "")
    assert "outside" in (rejection(CFG, width=720, height=1280) or "")  # portrait phone clip
    assert "outside" in (rejection(CFG, width=1440, height=1080) or "")  # 4:3
    assert "max_size_mb" in (rejection(CFG, size_bytes=200 * 1024 * 1024) or "")
