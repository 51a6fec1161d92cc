"""Sim clocks: sim minutes since the sim's start, mapped to real UTC datetimes."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["MANUAL_BASE", "ManualClock", "ScaledClock", "SimClock"]

MANUAL_BASE = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)


class SimClock(Protocol):
    """Sim time in minutes since the sim's start, and its mapping to real UTC datetimes."""

    def now_min(self) -> float: ...

    def to_datetime(self, minute: float) -> datetime: ...


class ScaledClock:
    """Real time scaled: one sim minute lasts `seconds_per_minute` real seconds."""

    def __init__(self, seconds_per_minute: float, start: datetime | None = None, *,
                 held: bool = False) -> None:
        self.seconds_per_minute = seconds_per_minute
        self.start = start or datetime.now(UTC)
        self._t0 = time.monotonic()
        self.held = held  # at minute 0 until kick_off(): the day waits for the daemon

    def now_min(self) -> float:
        if self.held:
            return 0.0
        return (time.monotonic() - self._t0) / self.seconds_per_minute

    def kick_off(self) -> None:
        """Let a held clock run: minute 0 is now."""
        self.start = datetime.now(UTC)
        self._t0 = time.monotonic()
        self.held = False

    def to_datetime(self, minute: float) -> datetime:
        return self.start + timedelta(seconds=minute * self.seconds_per_minute)


class ManualClock:
    """Sim time moved by hand; minute m is `base + m` real minutes."""

    def __init__(self, minute: float = 0.0, base: datetime = MANUAL_BASE) -> None:
        self.minute = minute
        self.base = base

    def now_min(self) -> float:
        return self.minute

    def to_datetime(self, minute: float) -> datetime:
        return self.base + timedelta(minutes=minute)

    def set(self, minute: float) -> None:
        self.minute = minute

    def advance(self, minutes: float) -> None:
        self.minute += minutes
