"""Per-source circuit breaker and rate limiter, so one failing source never stalls the others."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar

import structlog

from footyd.errors import Permanent, RateLimited, Retryable
from footyd.sources.base import SourceHealth, SourceHealthState

log = structlog.get_logger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


class SourceUnavailable(Retryable):
    """The source's circuit is open: the call was refused without touching the network."""

    label = "unavailable"


class CircuitState(StrEnum):
    """Breaker states."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after N consecutive failures; re-tries after a backoff that doubles up to a cap."""

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        base_backoff_s: float = 30.0,
        max_backoff_s: float = 1800.0,
        clock: Clock = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or base_backoff_s <= 0 or max_backoff_s < base_backoff_s:
            raise ValueError("invalid circuit breaker settings")
        self.failure_threshold = failure_threshold
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self._clock = clock
        self._failures = 0
        self._trips = 0  # consecutive openings without a success: drives the backoff
        self._open_until: float | None = None
        self._probing = False

    @property
    def state(self) -> CircuitState:
        """The current state (open turns half-open once its backoff has passed)."""
        if self._open_until is None:
            return CircuitState.CLOSED
        if self._clock() >= self._open_until:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    @property
    def retry_after_s(self) -> float:
        """Seconds until a call will be let through (0 when closed or half-open)."""
        if self._open_until is None:
            return 0.0
        return max(0.0, self._open_until - self._clock())

    def check(self) -> None:
        """Let a call through or raise SourceUnavailable; half-open admits a single probe."""
        state = self.state
        if state is CircuitState.CLOSED:
            return
        if state is CircuitState.HALF_OPEN and not self._probing:
            self._probing = True
            return
        raise SourceUnavailable("circuit open", retry_after_s=self.retry_after_s or None)

    def record_success(self) -> None:
        """Close the circuit and forget past failures."""
        self._failures = 0
        self._trips = 0
        self._open_until = None
        self._probing = False

    def record_failure(self) -> None:
        """Count a failure; a failed probe or the Nth consecutive failure opens the circuit."""
        self._failures += 1
        if self._probing or self._failures >= self.failure_threshold:
            self.trip()

    def release(self) -> None:
        """Forget an in-flight probe that ended without a verdict (cancelled, rate limited)."""
        self._probing = False

    def trip(self, *, backoff_s: float | None = None) -> float:
        """Open now for backoff_s (default: the next exponential step); return the backoff."""
        self._trips += 1
        if backoff_s is None:
            backoff_s = min(self.max_backoff_s, self.base_backoff_s * 2 ** (self._trips - 1))
        self._open_until = self._clock() + backoff_s
        self._probing = False
        self._failures = 0
        return backoff_s


@dataclass(eq=False)  # identity equality: two waiters are never "the same"
class _Waiter:
    key: tuple[float, int]  # (-priority, arrival): the smallest key gets the next slot
    deadline: float


class RateLimiter:
    """max_requests per sliding window_s; the highest-priority waiter gets the next slot.

    A caller whose slot lies more than max_wait_s after its arrival (at once, or because
    higher-priority callers arrived later and pushed it back) gets RateLimited.
    """

    def __init__(
        self,
        max_requests: int,
        window_s: float,
        *,
        max_wait_s: float,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if max_requests < 1 or window_s <= 0 or max_wait_s < 0:
            raise ValueError("invalid rate limiter settings")
        self.max_requests = max_requests
        self.window_s = window_s
        self.max_wait_s = max_wait_s
        self._clock = clock
        self._sleep = sleep
        self._slots: list[float] = []  # send times granted within the window, sorted
        self._blocked_until = 0.0
        self._waiting: list[_Waiter] = []  # sorted by key
        self._arrivals = itertools.count()
        self._changed: asyncio.Event | None = None  # set when waiters must re-plan

    def block_until(self, at: float) -> None:
        """Send nothing before monotonic time `at` (the server said the window is spent)."""
        if at > self._blocked_until:
            self._blocked_until = at
            self._notify()

    def _schedule(self, count: int) -> list[float]:
        """Send times of the next `count` requests, in queue order."""
        now = self._clock()
        horizon = now - self.window_s
        while self._slots and self._slots[0] <= horizon:
            self._slots.pop(0)
        planned = list(self._slots)
        for _ in range(count):
            slot = max(now, self._blocked_until)
            if len(planned) >= self.max_requests:
                slot = max(slot, planned[-self.max_requests] + self.window_s)
            planned.append(slot)
        return planned[len(self._slots):]

    def next_slot(self, priority: float = 0.0) -> float:
        """The earliest monotonic time a new request of this priority would be sent."""
        ahead = sum(1 for w in self._waiting if -w.key[0] >= priority)  # ties: first come first
        return self._schedule(ahead + 1)[-1]

    async def acquire(self, priority: float = 0.0) -> None:
        """Wait for a slot (higher priority first), or raise RateLimited if it is too far off."""
        me = _Waiter((-priority, next(self._arrivals)), self._clock() + self.max_wait_s)
        bisect.insort(self._waiting, me, key=lambda w: w.key)
        if self._waiting[-1] is not me:
            self._notify()  # we jumped the queue: those behind us must re-plan
        try:
            while True:
                slot = self._schedule(self._waiting.index(me) + 1)[-1]
                now = self._clock()
                if slot <= now:
                    self._waiting.remove(me)
                    bisect.insort(self._slots, now)
                    return
                if slot > me.deadline:
                    raise RateLimited("local rate limit: no slot soon enough",
                                      retry_after_s=slot - now)
                await self._wait(slot - now)
        finally:
            if me in self._waiting:  # raised or cancelled: free our place
                behind = self._waiting[-1] is not me
                self._waiting.remove(me)
                if behind:
                    self._notify()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def _wait(self, delay_s: float) -> None:
        """Sleep delay_s, or less if the queue or the block changed meanwhile."""
        if self._changed is None:
            self._changed = asyncio.Event()
        sleeper = asyncio.ensure_future(self._sleep(delay_s))
        watcher = asyncio.ensure_future(self._changed.wait())
        try:
            done, _ = await asyncio.wait((sleeper, watcher), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, watcher):
                task.cancel()
            await asyncio.gather(sleeper, watcher, return_exceptions=True)
        if sleeper in done:
            sleeper.result()  # a failing sleep function is the caller's error, not swallowed


class SourceGuard:
    """A source's breaker, optional limiter and health bookkeeping around each call."""

    def __init__(
        self,
        name: str,
        *,
        breaker: CircuitBreaker,
        limiter: RateLimiter | None = None,
        block_on_failure: bool = False,
        wall_clock: Clock = time.time,
    ) -> None:
        self.name = name
        self.breaker = breaker
        self.limiter = limiter
        self.block_on_failure = block_on_failure
        self._wall_clock = wall_clock
        self._blocked_reason: str | None = None
        self._last_error: str | None = None

    @property
    def health(self) -> SourceHealthState:
        """The current health snapshot."""
        state = self.breaker.state
        next_try = None
        if state is not CircuitState.CLOSED:
            at = self._wall_clock() + self.breaker.retry_after_s
            next_try = datetime.fromtimestamp(at, UTC)
        if self._blocked_reason is not None:
            return SourceHealthState(SourceHealth.BLOCKED, self._blocked_reason, next_try)
        if state is not CircuitState.CLOSED:
            return SourceHealthState(SourceHealth.OPEN_CIRCUIT, self._last_error, next_try)
        if self._last_error is not None:
            return SourceHealthState(SourceHealth.DEGRADED, self._last_error)
        return SourceHealthState(SourceHealth.OK)

    def block(self, reason: str, *, backoff_s: float | None = None) -> float:
        """Mark the source blocked and open its circuit; return the backoff chosen."""
        self._blocked_reason = reason
        self._last_error = reason
        backoff = self.breaker.trip(backoff_s=backoff_s)
        log.warning("source_blocked", source=self.name, reason=reason, retry_in_s=backoff)
        return backoff

    async def call(self, fn: Callable[[], Awaitable[T]], *, priority: float = 0.0) -> T:
        """Run one request through the breaker and limiter (higher priority sent first)."""
        try:
            self.breaker.check()
        except SourceUnavailable as exc:
            raise SourceUnavailable(
                f"{self.name}: circuit open", retry_after_s=exc.retry_after_s
            ) from None
        verdict = False
        try:
            if self.limiter is not None:
                await self.limiter.acquire(priority)
            result = await fn()
            verdict = True
        except RateLimited as exc:
            self._last_error = str(exc)
            raise
        except Permanent as exc:
            verdict = True
            self.block(str(exc), backoff_s=self.breaker.max_backoff_s)
            raise
        except Exception as exc:
            verdict = True
            if self.block_on_failure:
                self.block(str(exc) or type(exc).__name__)
            else:
                self._last_error = str(exc) or type(exc).__name__
                self.breaker.record_failure()
                if self.breaker.state is not CircuitState.CLOSED:
                    log.warning("source_circuit_open", source=self.name, error=self._last_error,
                                retry_in_s=self.breaker.retry_after_s)
            raise
        finally:
            if not verdict:
                self.breaker.release()
        self._blocked_reason = None
        self._last_error = None
        self.breaker.record_success()
        return result

