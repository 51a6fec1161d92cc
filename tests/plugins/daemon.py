"""Run the real daemon in a subprocess: config file, fake NOTIFY_SOCKET, log reader, signals."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from footyd.sim.net import free_port
from footyd.sim.tomlfile import write_toml
from tests.plugins.secrets import find_leaks, scan_process_tree
from tests.plugins.servers import MongoServer, S3Server

START_TIMEOUT_S = 60.0


class DaemonProcess:
    """One `footyd run` subprocess with its stdout parsed as JSON log lines."""

    def __init__(self, config_path: Path, env: dict[str, str], notify_path: Path,
                 argv: list[str] | None = None) -> None:
        self.config_path = config_path
        self.argv = argv or ["-m", "footyd", "run", "-c", str(config_path)]
        self.env = env
        self.notify_path = notify_path
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self.stderr = ""
        self.notifications: list[str] = []
        self._line_event = asyncio.Event()
        self._notify_event = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._sock: socket.socket | None = None

    async def start(self) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(self.notify_path))
        self._sock.setblocking(False)
        env = {**os.environ, **self.env, "NOTIFY_SOCKET": str(self.notify_path)}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, *self.argv,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
            start_new_session=True,  # its own process group, like a systemd cgroup
        )
        self._tasks = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
            asyncio.create_task(self._read_notify()),
        ]

    async def _read_stdout(self) -> None:
        assert self.proc and self.proc.stdout
        async for raw in self.proc.stdout:
            text = raw.decode(errors="replace").rstrip("\n")
            self.raw.append(text)
            with contextlib.suppress(json.JSONDecodeError):
                self.lines.append(json.loads(text))
            self._line_event.set()

    async def _read_stderr(self) -> None:
        assert self.proc and self.proc.stderr
        self.stderr = (await self.proc.stderr.read()).decode(errors="replace")

    async def _read_notify(self) -> None:
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self._sock, 4096)
            self.notifications.append(data.decode())
            self._notify_event.set()

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("event") == name]

    async def wait_log(
        self, name: str, *, timeout_s: float = START_TIMEOUT_S, count: int = 1,
        where: Callable[[dict[str, Any]], bool] = lambda _l: True,
    ) -> dict[str, Any]:
        """Wait until `count` log lines named `name` (matching `where`) have appeared."""

        async def _wait() -> dict[str, Any]:
            while True:
                found = [ln for ln in self.events(name) if where(ln)]
                if len(found) >= count:
                    return found[count - 1]
                if self.proc and self.proc.returncode is not None and self._tasks[0].done():
                    raise AssertionError(f"daemon exited before {name}: {self.tail()}")
                self._line_event.clear()
                await self._line_event.wait()

        return await asyncio.wait_for(_wait(), timeout_s)

    async def wait_notify(self, field: str, *, count: int = 1, timeout_s: float = START_TIMEOUT_S) -> str:
        async def _wait() -> str:
            while True:
                found = [n for n in self.notifications if field in n.split("\n")]
                if len(found) >= count:
                    return found[count - 1]
                self._notify_event.clear()
                await self._notify_event.wait()

        return await asyncio.wait_for(_wait(), timeout_s)

    def send(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill_all(self) -> None:
        """SIGKILL the daemon and every process it started, as systemd or docker kill does."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    async def wait_exit(self, timeout_s: float = 60.0) -> int:
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), timeout_s)
        await asyncio.wait_for(asyncio.gather(*self._tasks[:2]), timeout_s)
        return code

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.raw[-n:]) + "\nSTDERR:\n" + self.stderr[-3000:]

    async def close(self) -> None:
        if self.proc is not None:
            if self.proc.returncode is None:
                scan_process_tree(f"daemon {self.config_path.name}", self.proc.pid)
            self.kill_all()  # also reaps pool workers a crashed daemon may have left behind
            await self.proc.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        find_leaks(f"daemon {self.config_path.name} stdout/stderr", "\n".join(self.raw) + self.stderr)
        if self._sock is not None:
            self._sock.close()


def base_config(mongo: MongoServer, s3: S3Server, tmp: Path, database: str) -> dict[str, Any]:
    """A daemon config against the session servers with a fresh database and bucket."""
    return {
        "mongo": {"uri": mongo.uri, "database": database, "server_selection_timeout_s": 5.0},
        "storage": {
            "kind": "s3", "bucket": f"b-{database.replace('_', '-')}", "endpoint_url": s3.endpoint_url,
            "region": s3.region, "access_key_id": s3.access_key_id,
            "secret_access_key": s3.secret_access_key, "create_bucket": True,
        },
        "health": {"listen": f"127.0.0.1:{free_port()}"},
        # the simulator's clip host is on loopback, which downloads refuse by default
        "download": {"scratch_dir": str(tmp / "scratch"), "allow_private_addresses": True},
        "log": {"level": "info", "format": "json"},
        "dedup": {"workers": 1},
        "pool": {"workers": 1},
    }


DaemonFactory = Callable[..., Awaitable[DaemonProcess]]


async def run_cli(*args: str, env: dict[str, str] | None = None,
                  replace_env: bool = False) -> tuple[int, str, str]:
    """Run `python -m footyd ARGS`; return (exit code, stdout, stderr)."""
    full_env = dict(env or {}) if replace_env else {**os.environ, **(env or {})}
    if replace_env:
        full_env.setdefault("PATH", os.environ.get("PATH", ""))
        if "PYTHONPATH" in os.environ:
            full_env.setdefault("PYTHONPATH", os.environ["PYTHONPATH"])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "footyd", *args, env=full_env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    find_leaks(f"footyd {' '.join(args[:1])} output", out.decode() + err.decode())
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def daemon_factory(tmp_path: Path) -> AsyncIterator[DaemonFactory]:
    """Start footyd subprocesses from config trees; all are killed at teardown."""
    started: list[DaemonProcess] = []

    async def _start(tree: dict[str, Any], *, env: dict[str, str] | None = None,
                     name: str = "footyd", argv: list[str] | None = None) -> DaemonProcess:
        """argv (after the interpreter) replaces `-m footyd run -c CONFIG`; {config} is filled in."""
        cfg = write_toml(tmp_path / f"{name}.toml", tree)
        argv = [a.replace("{config}", str(cfg)) for a in argv] if argv else None
        proc = DaemonProcess(cfg, env or {}, tmp_path / f"{name}-{len(started)}.sock", argv)
        started.append(proc)
        await proc.start()
        return proc

    yield _start
    for proc in started:
        await proc.close()
