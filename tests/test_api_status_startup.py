"""The daemon's API-Football /status call never delays READY and is drained with the rest."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from footyd.config import ShutdownConfig
from footyd.errors import ExitCode
from tests.plugins.daemon import DaemonFactory, base_config
from tests.plugins.servers import MongoServer, S3Server
from tests.plugins.sim import StartSim

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` skips it


async def test_hung_status_call_neither_delays_ready_nor_blocks_stop(
        daemon_factory: DaemonFactory, start_sim: StartSim, mongo_server: MongoServer,
        s3_server: S3Server, tmp_path: Path) -> None:
    sim = await start_sim("quiet_0_0")
    sim.inject("/status", "timeout", count=None)  # /status never answers
    tree: dict[str, Any] = base_config(mongo_server, s3_server, tmp_path,
                                       f"st_{uuid.uuid4().hex[:10]}")
    # with these settings one /status call with retries takes over 4 x 10 s
    tree["api_football"] = {"base_url": sim.base_url, "api_key": sim.key, "timeout_s": 10.0,
                            "max_retries": 3}
    tree["search"] = {"sources": []}
    proc = await daemon_factory(tree)
    await proc.wait_notify("READY=1", timeout_s=30.0)
    assert proc.events("api_status") == [] and proc.events("api_status_failed") == []
    started = time.monotonic()
    proc.send(signal.SIGTERM)
    assert await proc.wait_exit() == ExitCode.OK, proc.tail()
    assert time.monotonic() - started < ShutdownConfig().total_s
