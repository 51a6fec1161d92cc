"""Candidate filters (duration, shortest side, aspect band, size), before and after download."""

from __future__ import annotations

from footyd.config import DownloadConfig


def rejection(
    cfg: DownloadConfig,
    *,
    duration_s: float | None = None,
    width: int | None = None,
    height: int | None = None,
    size_bytes: int | None = None,
) -> str | None:
    """Why a clip with these (possibly unknown) properties is refused, or None to keep it."""
    if duration_s is not None:
        if duration_s < cfg.min_duration_s:
            return f"duration {duration_s:.1f}s below min_duration_s {cfg.min_duration_s:g}"
        if duration_s > cfg.max_duration_s:
            return f"duration {duration_s:.1f}s above max_duration_s {cfg.max_duration_s:g}"
    if width and height:
        short = min(width, height)
        if short < cfg.min_short_side_px:
            return f"short side {short}px below min_short_side_px {cfg.min_short_side_px}"
        aspect = width / height
        if not cfg.aspect_min <= aspect <= cfg.aspect_max:
            return (f"aspect {aspect:.2f} ({width}x{height}) outside "
                    f"[{cfg.aspect_min:g}, {cfg.aspect_max:g}]")
    if size_bytes is not None and size_bytes > cfg.max_size_mb * 1024 * 1024:
        return f"size {size_bytes / 1048576:.1f} MB above max_size_mb {cfg.max_size_mb:g}"
    return None
