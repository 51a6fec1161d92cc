"""Fixtures for the simulated API-Football: start sims on loopback, point a config at them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from footyd.config import ApiFootballConfig
from footyd.sim.football import ManualClock, SimClock, SimFootball
from footyd.sim.football_script import FixtureScript, Script

SimScript = Script | Sequence[FixtureScript] | Path | str | None
StartSim = Callable[..., Awaitable[SimFootball]]


@pytest.fixture
async def start_sim() -> AsyncIterator[StartSim]:
    """`await start_sim(script, clock=..., key="test-key", **limits)`; all stopped at teardown."""
    started: list[SimFootball] = []

    async def _start(script: SimScript = None, *, clock: SimClock | None = None,
                     key: str = "test-key", **kwargs: Any) -> SimFootball:
        sim = SimFootball(script, clock=clock or ManualClock(), key=key, **kwargs)
        await sim.start()
        started.append(sim)
        return sim

    yield _start
    for sim in reversed(started):
        await sim.stop()


def api_config_for(sim: SimFootball, **overrides: Any) -> ApiFootballConfig:
    """An ApiFootballConfig aimed at `sim`, with test-speed backoff and timeouts."""
    values: dict[str, Any] = {"base_url": sim.base_url, "api_key": SecretStr(sim.key),
                              "mode": sim.mode, "timeout_s": 2.0, "max_retries": 2,
                              "backoff_base_s": 0.01}
    values.update(overrides)
    return ApiFootballConfig(**values)


@pytest.fixture
def sim_api_config() -> Callable[..., ApiFootballConfig]:
    """`sim_api_config(sim, **overrides)`: see `api_config_for`."""
    return api_config_for
