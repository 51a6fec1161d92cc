"""Event-loop lag: how late a timer fires, a direct measure of a loop kept busy."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import Gauge, Histogram

from footyd.metrics import REGISTRY

INTERVAL_S = 0.25
LOOP_LAG = Histogram(
    "footyd_loop_lag_seconds", "How late a 250 ms timer fired on the event loop.",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
    registry=REGISTRY)
LOOP_LAG_MAX = Gauge("footyd_loop_lag_max_seconds", "The largest loop lag seen since start.",
                     registry=REGISTRY)


async def probe(interval_s: float = INTERVAL_S) -> None:
    """Sleep `interval_s` again and again; record how much later than asked each wake-up was."""
    worst = 0.0
    while True:
        asked = time.monotonic() + interval_s
        await asyncio.sleep(interval_s)
        lag = max(0.0, time.monotonic() - asked)
        LOOP_LAG.observe(lag)
        if lag > worst:
            worst = lag
            LOOP_LAG_MAX.set(lag)
