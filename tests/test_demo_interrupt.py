"""`footyd demo` interrupted or killed at any moment leaves no database process and no temp dir."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from footyd.demo.runner import TEST_SERVER_NOTE

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` skips it

STARTING = "footyd demo: "


def _env(demo_cache: Path, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOOTYD_")}
    tmp.mkdir(exist_ok=True)
    # an embedded database (no FOOTYD_MONGO__URI), a temp dir under `tmp`
    env.update(XDG_CACHE_HOME=str(demo_cache), TMPDIR=str(tmp),
               PYTHONPATH=str(Path(__file__).parent.parent))
    return env


def _leftovers(tmp: Path) -> list[str]:
    """Demo temp dirs under tmp, and live processes whose command line names tmp."""
    found = [p.name for p in tmp.glob("footyd-demo-*")]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        if str(tmp) in cmdline and state != "Z":
            found.append(f"pid {proc.name}: {cmdline[:120]}")
    return found


async def _until_clean(tmp: Path, timeout_s: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        left = _leftovers(tmp)
        if not left or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.1)  # other processes cleaning up: no event reaches this one


async def _start(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "footyd", "demo", "--plain", "--short", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def _until_line(proc: asyncio.subprocess.Process, text: str, seen: list[str]) -> None:
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
        assert line, f"the demo ended before {text!r}: {''.join(seen)}"
        seen.append(line)
        if text in line:
            return


@pytest.mark.parametrize("when", ["starting", "database_up", "playing"])
async def test_sigkill_at_any_moment_leaves_nothing_behind(demo_cache: Path, tmp_path: Path,
                                                           when: str) -> None:
    tmp = tmp_path / "t"
    proc = await _start(_env(demo_cache, tmp))
    seen: list[str] = []
    await _until_line(proc, {"starting": STARTING, "database_up": TEST_SERVER_NOTE[:40],
                             "playing": "match 70"}[when], seen)
    assert _leftovers(tmp)  # there is something to clean up
    proc.kill()
    await proc.wait()
    assert await _until_clean(tmp) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_while_starting_exits_cleanly_with_one_line(
        demo_cache: Path, tmp_path: Path, sig: signal.Signals) -> None:
    tmp = tmp_path / "t"
    proc = await _start(_env(demo_cache, tmp))
    await _until_line(proc, STARTING, [])
    proc.send_signal(sig)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 128 + sig
    assert err.decode().strip().splitlines()[-1] == f"footyd demo: interrupted ({sig.name}) while starting"
    assert await _until_clean(tmp) == []


async def test_ctrl_c_while_playing_is_an_interrupt_not_a_failure(demo_cache: Path,
                                                                  tmp_path: Path) -> None:
    tmp = tmp_path / "t"
    proc = await _start(_env(demo_cache, tmp))
    seen: list[str] = []
    await _until_line(proc, "match 70", seen)
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    text = "".join(seen) + out.decode()
    assert proc.returncode == 130, text + err.decode()
    assert "footyd demo: interrupted (SIGINT); the daemon drained and stopped" in text
    assert "DIFFERS FROM THE SCRIPT" not in text and "daemon log:" not in text
    assert await _until_clean(tmp) == []
