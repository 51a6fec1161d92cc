"""The Retry-After header (RFC 9110 section 10.2.3): delta-seconds or an HTTP-date, bounded."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

MAX_CHARS = 64  # an IMF-fixdate is 29 characters; anything longer is not one


def retry_after_s(value: str | None, *, max_s: float, now: datetime | None = None) -> float | None:
    """Seconds to wait, in [0, max_s]; None when absent or not a valid delay (the caller's own
    backoff applies). Only ASCII digits count as delta-seconds: "nan", "inf", "-5", "1e9" and
    "²" are garbage from a receiver, not a pause."""
    if not value or len(value) > MAX_CHARS:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return min(float(int(text[:12])), max_s)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delay = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(delay, 0.0), max_s)
