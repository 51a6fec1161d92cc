"""The real daemon in a subprocess: READY, health, SIGHUP reloads, SIGTERM drain, forced exit."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from footyd import config as config_mod
from footyd.errors import ExitCode
from tests.plugins.daemon import DaemonFactory, DaemonProcess, base_config, write_toml
from tests.plugins.servers import MongoServer, S3Server

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` skips it

ROOT = Path(__file__).resolve().parent.parent
SECRET = "sk-live-very-secret-api-key-123"


@pytest.fixture
def tree(mongo_server: MongoServer, s3_server: S3Server, tmp_path: Path) -> dict[str, Any]:
    return base_config(mongo_server, s3_server, tmp_path, f"d_{uuid.uuid4().hex[:10]}")


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.text()


async def _ready(factory: DaemonFactory, tree: dict[str, Any], **kw: Any) -> DaemonProcess:
    proc = await factory(tree, **kw)
    await proc.wait_notify("READY=1")
    return proc


async def test_ready_health_metrics_and_clean_sigterm(
    daemon_factory: DaemonFactory, tree: dict[str, Any]
) -> None:
    proc = await _ready(daemon_factory, tree, env={"FOOTYD_API_FOOTBALL__API_KEY": SECRET})
    banner = await proc.wait_log("daemon_started")
    assert banner["version"] and banner["config_hash"] and "features" in banner
    base = f"http://{tree['health']['listen']}"
    status, body = await _get(base + "/healthz")
    assert status == 200, body
    status, body = await _get(base + "/readyz")
    assert status == 200 and '"mongo": true' in body and '"blobs": true' in body
    status, body = await _get(base + "/metrics")
    assert status == 200
    assert re.search(r'footyd_build_info\{commit="[^"]+",version="[^"]+"\} 1\.0', body)
    assert "footyd_config_last_reload_success 1.0" in body

    started = time.monotonic()
    proc.send(signal.SIGTERM)
    assert await proc.wait_exit() == ExitCode.OK, proc.tail()
    took = time.monotonic() - started
    budget = config_mod.ShutdownConfig().total_s
    assert took < budget, f"drain took {took:.1f}s, budget {budget}s"
    assert "STOPPING=1" in "\n".join(proc.notifications)
    assert proc.events("shutdown_started") and proc.events("daemon_stopped")
    assert {e["stage"] for e in proc.events("stage_drained")} == {"search", "download", "dedup", "notify"}
    # the secret went in through the environment and must not come out anywhere
    assert SECRET not in "\n".join(proc.raw) + proc.stderr


async def test_sighup_applies_valid_change_and_keeps_running_on_broken_file(
    daemon_factory: DaemonFactory, tree: dict[str, Any]
) -> None:
    proc = await _ready(daemon_factory, tree)
    tree["log"]["level"] = "debug"
    tree["health"]["stale_tick_s"] = 99.0  # restart-only
    write_toml(proc.config_path, tree)
    proc.send(signal.SIGHUP)
    line = await proc.wait_log("config_reloaded")
    assert line["changed"] == ["log.level"]
    cold = await proc.wait_log("config_change_needs_restart")
    assert cold["keys"] == ["health.stale_tick_s"]
    reloading = await proc.wait_notify("RELOADING=1")
    assert re.search(r"^MONOTONIC_USEC=\d+$", reloading, re.M)
    await proc.wait_notify("READY=1", count=2)
    base = f"http://{tree['health']['listen']}"
    _, metrics = await _get(base + "/metrics")
    assert "footyd_config_last_reload_success 1.0" in metrics

    proc.config_path.write_text("[monitor]\npoll_interval_s = \"fast\"\nbogus = 3\n")
    proc.send(signal.SIGHUP)
    failed = await proc.wait_log("config_reload_failed")
    assert any(e.startswith("monitor.poll_interval_s:") for e in failed["errors"])
    assert "monitor.bogus: unknown key" in failed["errors"]
    await proc.wait_notify("READY=1", count=3)
    _, metrics = await _get(base + "/metrics")
    assert "footyd_config_last_reload_success 0.0" in metrics
    assert 'footyd_config_reloads_total{outcome="failed"} 1.0' in metrics
    status, _ = await _get(base + "/healthz")
    assert status == 200
    proc.send(signal.SIGTERM)
    assert await proc.wait_exit() == ExitCode.OK, proc.tail()


async def test_watchdog_pings_come_from_the_loop(
    daemon_factory: DaemonFactory, tree: dict[str, Any]
) -> None:
    proc = await _ready(daemon_factory, tree, env={"WATCHDOG_USEC": "200000"})
    await proc.wait_notify("WATCHDOG=1", count=3)
    proc.send(signal.SIGTERM)
    assert await proc.wait_exit() == ExitCode.OK


async def test_mongo_unreachable_at_start_exits_with_its_code(
    daemon_factory: DaemonFactory, tree: dict[str, Any]
) -> None:
    tree["mongo"] = {"uri": "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=500",
                     "server_selection_timeout_s": 0.5}
    proc = await daemon_factory(tree)
    assert await proc.wait_exit() == ExitCode.UNAVAILABLE
    assert "MongoDB unreachable" in proc.stderr
    assert proc.events("startup_failed")
    assert "READY=1" not in "\n".join(proc.notifications)


async def test_second_signal_forces_exit(daemon_factory: DaemonFactory, tree: dict[str, Any]) -> None:
    # startup blocks on an unreachable MongoDB for 30 s: the drain cannot finish before that
    tree["mongo"] = {"uri": "mongodb://127.0.0.1:9", "server_selection_timeout_s": 30.0}
    proc = await daemon_factory(tree)
    await proc.wait_log("daemon_starting")
    started = time.monotonic()
    proc.send(signal.SIGTERM)
    await proc.wait_log("signal_received")
    proc.send(signal.SIGTERM)
    assert await proc.wait_exit() == ExitCode.FORCED, proc.tail()
    assert time.monotonic() - started < 30.0
    assert proc.events("shutdown_forced")


async def test_invalid_config_exits_78_with_key_paths(
    daemon_factory: DaemonFactory, tree: dict[str, Any]
) -> None:
    tree["download"]["concurrency"] = 0
    tree["monitor"] = {"poll_intervl_s": 20}
    proc = await daemon_factory(tree)
    assert await proc.wait_exit() == ExitCode.CONFIG
    assert "download.concurrency:" in proc.stderr
    assert "monitor.poll_intervl_s: unknown key" in proc.stderr


def _unit_seconds(text: str, key: str) -> float:
    match = re.search(rf"^{key}=(\d+)s?$", text, re.M)
    assert match, f"{key} missing from footyd.service"
    return float(match.group(1))


def test_drain_budget_fits_systemd_and_docker_stop_timeouts() -> None:
    budget = config_mod.load(ROOT / "config.toml", env={}).shutdown.total_s
    assert budget == config_mod.ShutdownConfig().total_s
    unit = (ROOT / "footyd.service").read_text()
    assert budget < _unit_seconds(unit, "TimeoutStopSec")
    assert re.search(r"^Type=notify-reload$", unit, re.M)
    readme = (ROOT / "README.md").read_text()
    stop_timeouts = [int(m) for m in re.findall(r"--stop-timeout[ =](\d+)", readme)]
    assert stop_timeouts and all(budget < t for t in stop_timeouts)


async def test_healthcheck_command_exit_codes(
    daemon_factory: DaemonFactory, tree: dict[str, Any]
) -> None:
    async def healthcheck() -> int:
        p = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "footyd", "healthcheck", "--url",
            f"http://{tree['health']['listen']}/healthz",
            stdout=asyncio.subprocess.DEVNULL,
        )
        return await p.wait()

    assert await healthcheck() == 1  # nothing listening yet
    proc = await _ready(daemon_factory, tree)
    assert await healthcheck() == 0
    proc.send(signal.SIGTERM)
    assert await proc.wait_exit() == ExitCode.OK


BUSY_POOL = ["-m", "tests.plugins.busy_pool_daemon", "{config}"]


async def test_sigterm_with_a_running_pool_job_exits_within_the_close_budget(
    daemon_factory: DaemonFactory, tree: dict[str, Any]
) -> None:
    tree["shutdown"] = {"close_s": 4.0}
    proc = await _ready(daemon_factory, tree, argv=BUSY_POOL)
    await proc.wait_log("busy_pool_job_started")
    started = time.monotonic()
    proc.send(signal.SIGTERM)
    assert await proc.wait_exit() == ExitCode.OK, proc.tail()
    took = time.monotonic() - started
    assert took < config_mod.ShutdownConfig(close_s=4.0).total_s, f"stop took {took:.1f}s"
    assert proc.events("process_pool_killed_at_close")


async def test_second_signal_forces_exit_while_a_pool_job_runs(
    daemon_factory: DaemonFactory, tree: dict[str, Any]
) -> None:
    tree["shutdown"] = {"close_s": 100.0}  # the pool waits 50 s for its job: only a 2nd signal ends it
    proc = await _ready(daemon_factory, tree, argv=BUSY_POOL)
    await proc.wait_log("busy_pool_job_started")
    proc.send(signal.SIGTERM)
    await proc.wait_log("shutdown_drained")
    started = time.monotonic()
    proc.send(signal.SIGTERM)
    try:
        code = await proc.wait_exit(timeout_s=30)
    except TimeoutError:
        raise AssertionError("no forced exit: " + proc.tail()) from None
    assert code == ExitCode.FORCED, proc.tail()
    assert time.monotonic() - started < 20
    assert proc.events("shutdown_forced")


async def test_readyz_is_not_ready_while_the_scratch_dir_is_unusable(
    daemon_factory: DaemonFactory, tree: dict[str, Any]
) -> None:
    proc = await _ready(daemon_factory, tree)
    base = f"http://{tree['health']['listen']}"
    status, body = await _get(base + "/readyz")
    assert status == 200 and '"scratch": true' in body, body
    scratch = Path(tree["download"]["scratch_dir"])
    moved = scratch.with_name(scratch.name + ".away")

    def break_it() -> None:
        scratch.rename(moved)
        scratch.write_text("a file where the scratch dir was")  # no write can land there

    def mend_it() -> None:
        scratch.unlink()
        moved.rename(scratch)

    await asyncio.to_thread(break_it)
    status, body = await _get(base + "/readyz")
    assert status == 503 and '"scratch": false' in body, body
    await asyncio.to_thread(mend_it)
    status, body = await _get(base + "/readyz")
    assert status == 200, body
    proc.send(signal.SIGTERM)
    assert await proc.wait_exit() == ExitCode.OK, proc.tail()


@pytest.mark.parametrize("key", ["storage.local_dir", "download.scratch_dir"])
async def test_an_unusable_directory_is_a_config_error_for_check_config_and_run(
    tree: dict[str, Any], tmp_path: Path, key: str
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    section, name = key.split(".")
    tree.setdefault(section, {})[name] = str(blocker / "sub")
    if key == "storage.local_dir":
        tree["storage"] = {"kind": "local", "local_dir": str(blocker / "sub")}
    cfg = write_toml(tmp_path / "c.toml", tree)
    for command in ("check-config", "run"):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "footyd", command, "-c", str(cfg),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == ExitCode.CONFIG, (command, err.decode())
        line = next(ln for ln in err.decode().splitlines() if key in ln)
        assert "is not a directory" in line and "install -d" in line, line


async def test_a_second_signal_as_an_idle_daemon_finishes_stopping_is_still_a_forced_exit(
    daemon_factory: DaemonFactory, tree: dict[str, Any]
) -> None:
    """The drain of an idle daemon ends in milliseconds; a second SIGTERM landing after it,
    while the process winds down, exits 75 (logged), not by the signal's default action."""
    # a race by design: on a loaded machine the log line can reach us after the exit, so retry
    for attempt in range(6):
        proc = await _ready(daemon_factory, tree, name=f"idle{attempt}")
        proc.send(signal.SIGTERM)
        await proc.wait_log("daemon_stopped")  # the loop's handlers are gone from here on
        try:
            proc.send(signal.SIGTERM)
        except ProcessLookupError:
            await proc.wait_exit()
            continue  # it was already gone: nothing was shown, try again
        code = await proc.wait_exit()
        if code == ExitCode.OK and len(proc.events("signal_received")) == 1:
            continue  # it had exited unreaped (a zombie takes a signal unseen): try again
        assert code == ExitCode.FORCED, proc.tail()
        assert len(proc.events("signal_received")) == 2 and proc.events("shutdown_forced")
        return
    pytest.fail("the daemon exited before every second signal could be sent")
