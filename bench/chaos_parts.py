"""The crash run's machinery: the demo day against a `footyd run` subprocess that is SIGKILLed.

Everything but the daemon runs in this process: the demo's simulators (API-Football, the clip
host behind the `fake` source, the fake Reddit), moto's S3 behind a fault proxy (to refuse every
request for a while and to hold one upload), a webhook receiver (to hold one delivery), a page
client on /api/stream, and the MongoDB-wire test server as a subprocess on a fixed port (so it
can be stopped and started again under the daemon). Every random choice comes from the seed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from footyd.demo.config import clip_cache_dir, demo_tree
from footyd.demo.runner import Demo, DemoOptions
from footyd.sim.clipgen import generate_catalogue

TARGETS = ("download", "fingerprint", "upload", "dedup", "webhook")
# with replicas: a held upload or delivery cannot be traced to one replica; the leader can
REPLICA_TARGETS = ("leader", "download", "dedup", "fingerprint")
# the log line after which the daemon is inside that step (the step's end, per clip or goal)
LOG_TRIGGERS = {"download": ("ytdlp_started", "clip_id", ("ytdlp_fetched", "ytdlp_failed")),
                "fingerprint": ("ytdlp_fetched", "clip_id", ("clip_stored", "clip_rejected",
                                                             "clip_upload_discarded")),
                "dedup": ("clip_stored", "goal_id", ("dedup_done", "dedup_failed"))}
TIMING_EXPECTATIONS = ("candidates", "duplicates", "rejected", "failed", "scorer_changes")
S3_DOWN = b"<?xml version='1.0'?><Error><Code>ServiceUnavailable</Code><Message>chaos</Message></Error>"


@dataclass(frozen=True)
class ChaosPlan:
    """One crash run; the same seed plays the same kills at the same moments of the day."""

    seed: int
    kills: int = 10
    minute_s: float = 1.0  # real seconds per match minute
    s3_outage_s: float = 60.0
    fixtures: tuple[int, ...] = ()  # () = the whole demo day
    aim_s: float = 20.0  # how long to wait for a kill's moment before killing anyway
    converge_s: float = 180.0  # after the last kill, how long the day may take to settle
    audit_s: float = 2.0  # the page feed's stream audit (the default, 60 s, is for weeks)
    replicas: int = 1  # footyd processes on the one MongoDB; a killed one is started again
    lease_ttl_s: float = 2.0  # with replicas: the leader lease (the default, 15 s, is for hosts)


@dataclass
class Kill:
    n: int
    target: str
    at_s: float  # since the run started
    in_flight: bool  # the step was seen started and not finished when the kill landed
    ready_s: float = 0.0  # kill to daemon_started (READY=1), failed starts included


@dataclass
class ChaosResult:
    plan: ChaosPlan
    kills: list[Kill] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        lines = [f"crash run seed={self.plan.seed}: {len(self.kills)} kills, "
                 + ("OK" if self.ok else f"{len(self.problems)} problem(s)")]
        for k in self.kills:
            lines.append(f"  kill {k.n:2d} at {k.at_s:6.1f} s  {k.target:<22} "
                         f"{'in flight' if k.in_flight else 'idle'}  READY after {k.ready_s:.2f} s")
        lines += [f"  {key}: {value}" for key, value in self.facts.items()]
        lines += [f"  PROBLEM: {p}" for p in self.problems]
        if not self.ok:
            lines.append(f"  rerun: python -m bench.chaos --seed {self.plan.seed}")
        return "\n".join(lines)


class DaemonProc:
    """One `footyd run` subprocess in its own process group; its JSON log lines, parsed."""

    def __init__(self, config: Path, log_path: Path, lines: list[dict[str, Any]],
                 replica: int = 0) -> None:
        self.replica = replica  # which of the run's replicas (its lines carry it as `_replica`)
        self._config = config
        self._log_path = log_path
        self.lines = lines  # shared by every daemon of the run: triggers look past an index
        self.changed = asyncio.Event()
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        env = {**os.environ, "OPENCV_LOG_LEVEL": "ERROR", "OPENCV_FFMPEG_LOGLEVEL": "-8"}
        env.pop("NOTIFY_SOCKET", None)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "footyd", "run", "-c", str(self._config), env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True)  # its own group, as under systemd: the kill takes the pool too
        self._reader = asyncio.create_task(self._read(), name="chaos-daemon-log")

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with self._log_path.open("ab") as out:
            async for raw in self.proc.stdout:
                out.write(raw)
                with contextlib.suppress(ValueError):
                    line = json.loads(raw)
                    if isinstance(line, dict):
                        line["_replica"] = self.replica
                        self.lines.append(line)
                        self.changed.set()

    async def wait_line(self, name: str, since: int, timeout_s: float,
                        where: Callable[[dict[str, Any]], bool] = lambda _l: True) -> dict[str, Any] | None:
        """The first line `name` after index `since`, or None (timeout or the daemon exited)."""
        deadline = time.monotonic() + timeout_s
        while True:
            for line in self.lines[since:]:
                if line.get("event") == name and where(line):
                    return line
            since = len(self.lines)
            left = deadline - time.monotonic()
            if left <= 0 or self.exited:
                return None
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 0.5))

    @property
    def exited(self) -> bool:
        return self.proc is None or self.proc.returncode is not None

    def kill(self) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    async def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM and wait for the drain; returns the exit code."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), timeout_s)
        if self._reader is not None:
            await self._reader
        return code

    async def reap(self) -> None:
        if self.proc is not None:
            self.kill()
            await self.proc.wait()
        if self._reader is not None:
            await self._reader


class ChaosDemo(Demo):
    """The demo's script and simulators; the daemon is not started here (ChaosRun does it)."""

    def __init__(self, options: DemoOptions, fixtures: tuple[int, ...]) -> None:
        super().__init__(options)
        if fixtures:
            self.script = self.script.model_copy(update={"short_fixtures": fixtures}).variant(True)
        # what the daemon can see of a goal depends on when it was up: a correction made while
        # it was down is never a scorer change, posts under the old name are never searched for
        goals = [g.model_copy(update={"expect": g.expect.model_copy(update=dict.fromkeys(
            TIMING_EXPECTATIONS))}) for g in self.script.goals]
        self.script = self.script.model_copy(update={"goals": tuple(goals)})

    async def _start(self) -> None:
        self._prepare_workdir()
        names = sorted({c.clip for kit in self.script.kits.values() for c in kit})
        clip_dir = clip_cache_dir(os.environ)
        await asyncio.to_thread(generate_catalogue, clip_dir, codec="h264", names=names)
        await self._start_sims(clip_dir)

    def tree(self, mongo_uri: str) -> tuple[dict[str, Any], str | None]:
        """The daemon's config (as the demo's) and the page URL."""
        tree, _health, page = demo_tree(
            self.script, minute_s=self.minute_s, sim=self._sim, host=self._host,
            workdir=self.workdir, mongo_uri=mongo_uri, web=True, reddit=self._reddit)
        return tree, page

    @property
    def sim_calls(self) -> int:
        return len(self._sim.calls)


class PageMirror:
    """A page's view built from /api/fixtures then /api/stream, reloaded on `reset`."""

    def __init__(self, page_url: str, fixtures: list[int]) -> None:
        self._url = page_url.rstrip("/")
        self._fixtures = fixtures
        self.goals: dict[str, str] = {}
        self.clips: dict[str, str] = {}
        self.events = 0
        self.changed = asyncio.Event()  # set on every event
        self.last: dict[str, str] = {}  # per document: how the mirror last learned its state

    async def run(self) -> None:
        async with aiohttp.ClientSession() as http:
            while True:
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                    await self._follow(http)
                await asyncio.sleep(0.2)  # the daemon is down (killed): try again shortly

    async def _follow(self, http: aiohttp.ClientSession) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
        async with http.get(f"{self._url}/api/stream", timeout=timeout) as resp:
            resp.raise_for_status()
            await self._load(http)  # after the stream opened: nothing falls between the two
            kind = None
            async for raw in resp.content:
                text = raw.decode().rstrip("\n")
                if text.startswith("event: "):
                    kind = text[7:]
                elif text.startswith("data: ") and kind is not None:
                    await self._apply(http, kind, json.loads(text[6:]))

    async def _load(self, http: aiohttp.ClientSession) -> None:
        for fid in self._fixtures:
            async with http.get(f"{self._url}/api/fixtures/{fid}") as resp:
                if resp.status == 404:
                    continue
                # a 503 (MongoDB away) must not pass for "no goals": the states from before
                # would stay, and the page's feed will not send them again
                resp.raise_for_status()
                body = await resp.json()
            for goal in body.get("goals", []):
                self.goals[goal["id"]] = goal["state"]
                self.last[goal["id"]] = f"load {goal['state']} at {time.monotonic():.2f}"
                for clip in goal.get("clips", []):
                    self.clips[clip["id"]] = clip["state"]
                    self.last[clip["id"]] = f"load {clip['state']} at {time.monotonic():.2f}"

    async def _apply(self, http: aiohttp.ClientSession, kind: str, data: dict[str, Any]) -> None:
        self.events += 1
        self.changed.set()
        if kind == "reset":
            await self._load(http)
        elif kind in ("goal", "clip"):
            table = self.goals if kind == "goal" else self.clips
            self.last[data["id"]] = f"event {data.get('state')} at {time.monotonic():.2f}"
            if data.get("deleted"):
                table.pop(data["id"], None)
            else:
                table[data["id"]] = data["state"]
