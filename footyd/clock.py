"""One clock for the daemon: aware UTC now, and MongoDB's naive datetimes read as UTC."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The current time, UTC aware."""
    return datetime.now(UTC)


def aware(at: datetime | None) -> datetime | None:
    """Naive datetimes from MongoDB are UTC."""
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at
