"""Clip fixtures: the generated catalogue (once per session) and clip hosts (per test)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from footyd.sim.clips import ClipHost, ClipScript, ManualClock, generate_catalogue, load_script
from tests.plugins.shared import shared_dir

CLIP_T0 = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)

ClipHostFactory = Callable[..., Awaitable[ClipHost]]


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory holding every file-backed entry of the clip catalogue (generated once)."""
    return shared_dir(tmp_path_factory, "clip_catalogue", generate_catalogue)


@pytest.fixture
async def clip_host_factory(clip_dir: Path) -> AsyncIterator[ClipHostFactory]:
    """Start clip hosts on 127.0.0.1 (default: demo script, ManualClock at CLIP_T0); all stop
    when the test ends."""
    hosts: list[ClipHost] = []

    async def make(script: ClipScript | str | None = "demo", **kwargs: Any) -> ClipHost:
        if isinstance(script, str):
            script = load_script(script)
        kwargs.setdefault("clock", ManualClock(CLIP_T0))
        host = ClipHost(clip_dir, script=script, **kwargs)
        await host.start()
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        await host.stop()


@pytest.fixture
async def clip_host(clip_host_factory: ClipHostFactory) -> ClipHost:
    """A started clip host with the demo script and a ManualClock (`clip_host.clock`)."""
    return await clip_host_factory()
