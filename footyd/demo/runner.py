"""`footyd demo`: the real daemon (same wiring as `footyd run`) on the simulators, one match day.

The API-Football simulator and the clip host (+ the `fake` source) run on loopback free ports in
this process; the daemon is `footyd.runtime.daemon.Daemon` with a config built here. MongoDB is
FOOTYD_MONGO__URI when set, else an embedded test server started as a subprocess; blobs go to a
local directory unless FOOTYD_STORAGE__* configure S3. The outcome is checked against the
script's expectations: `DemoResult.exit_code` is 0 only if the day went as written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import structlog

from footyd import config as config_mod
from footyd import logs
from footyd.clients.store import Store
from footyd.config import Config
from footyd.demo import script as demo_script
from footyd.demo.config import cached, clip_cache_dir, demo_tree
from footyd.demo.display import Display, make_display, summary_text
from footyd.demo.report import GoalRow, Snapshot, differences, goal_row, match_goals, snapshot
from footyd.demo.script import DemoScript
from footyd.errors import ExitCode
from footyd.runtime import tasks
from footyd.runtime.daemon import Daemon
from footyd.sim import watchdog
from footyd.sim.clipgen import generate_catalogue
from footyd.sim.clips import ClipHost
from footyd.sim.football import ScaledClock, SimFootball
from footyd.sim.mongo import start_secantus, stop_secantus
from footyd.sim.reddit import FakeReddit

INTERRUPTED_EXIT = {"SIGINT": 130, "SIGTERM": 143}  # 128 + the signal, as a shell reports it
TEST_SERVER_NOTE = ("MongoDB: embedded SecantusDB (a MongoDB-wire TEST server, not for production; "
                    "set FOOTYD_MONGO__URI to use a real MongoDB)")
POLL_S = 0.5  # how often the display re-reads MongoDB
SLACK_S = 60.0  # past the scripted day, how long the daemon may take to finish its work
ENV_PASSED = ("FOOTYD_MONGO__", "FOOTYD_STORAGE__")  # the only env overrides the demo honours


@dataclass(frozen=True)
class DemoOptions:
    """How to run the demo (the CLI flags, plus hooks for tests)."""

    script: Path | None = None  # default: footyd/sim/scripts/demo_day.toml
    short: bool = False  # play only the script's `short_fixtures`
    speed: float = 1.0  # match clock speed-up over the script's `minute_s`
    dir: Path | None = None  # blobs, logs, embedded MongoDB data; default a new temp dir
    keep: bool = False  # keep the temp dir
    serve: bool = False  # keep daemon + page up after the day until stopped
    plain: bool | None = None  # None: a live view on a TTY, plain lines otherwise
    mongo_uri: str | None = None  # else FOOTYD_MONGO__URI, else the embedded server
    clip_dir: Path | None = None  # where the generated clips are cached (default under dir)
    web: bool = True
    install_signals: bool = False  # the CLI lets the daemon own SIGINT/SIGTERM
    out: TextIO = field(default_factory=lambda: sys.stdout)
    env: Mapping[str, str] | None = None  # default os.environ (only FOOTYD_MONGO__/STORAGE__)


@dataclass(frozen=True)
class DemoResult:
    exit_code: int
    differences: tuple[str, ...]
    rows: tuple[GoalRow, ...]
    summary: str
    wall_s: float
    clips_at: str
    page_url: str | None
    workdir: Path

    @property
    def ok(self) -> bool:
        return self.exit_code == ExitCode.OK


class Demo:
    """`async with Demo(options) as demo: ...; result = await demo.wait()`."""

    def __init__(self, options: DemoOptions | None = None) -> None:
        self.opts = options or DemoOptions()
        self.script: DemoScript = demo_script.load(self.opts.script).variant(self.opts.short)
        self.minute_s = self.script.minute_s / self.opts.speed
        self.stop = asyncio.Event()  # set it to end the demo (the daemon drains and stops)
        self.summarised = asyncio.Event()  # the day is over and its summary printed
        self.page_url: str | None = None
        self.health_url = ""
        self.clips_at = ""
        self.cfg: Config | None = None
        self._stack = AsyncExitStack()
        self._started = time.monotonic()
        self._workdir: Path | None = None
        self._temp = False
        self._daemon_task: asyncio.Task[int] | None = None
        self._daemon: Daemon | None = None
        self._clock: ScaledClock | None = None
        self._store: Store | None = None
        self._log_file: TextIO | None = None
        self._reddit: FakeReddit | None = None

    def say(self, text: str) -> None:
        print(text, file=self.opts.out, flush=True)

    @property
    def workdir(self) -> Path:
        assert self._workdir is not None
        return self._workdir

    async def __aenter__(self) -> Demo:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        opts = self.opts
        env = dict(os.environ if opts.env is None else opts.env)
        uri = opts.mongo_uri or env.get("FOOTYD_MONGO__URI")
        embedded = not uri
        # watchdog processes delete the temp dir and end the embedded server when this process
        # ends, however it ends (Ctrl-C or SIGTERM in the first seconds, SIGKILL at any time);
        # the dir is watched from before the first line is printed, the server's watchdog stops
        # it and then deletes the dir again (files it wrote after the first deletion)
        owned = self._prepare_workdir()
        if owned is not None:
            self._stack.callback(watchdog.stop, watchdog.spawn([], remove=owned))
        self.say(f"footyd demo: {self.script.name}: {self.script.description}")
        if not uri:
            proc, uri = await asyncio.to_thread(start_secantus, self.workdir / "mongo",
                                                tie_to_parent=True, remove=owned)
            self._stack.callback(stop_secantus, proc)
            self.say(TEST_SERVER_NOTE)
        names = sorted({c.clip for kit in self.script.kits.values() for c in kit})
        clip_dir = opts.clip_dir or clip_cache_dir(env)
        if not cached(clip_dir, names):
            self.say(f"generating the demo's H.264 clips once, into {clip_dir} ...")
        await asyncio.to_thread(generate_catalogue, clip_dir, codec="h264", names=names)
        await self._start_sims(clip_dir)
        self._setup_logs()
        self.cfg = self._config(str(uri), env)
        self.clips_at = (f"{self.cfg.storage.local_dir}" if self.cfg.storage.kind == "local"
                         else f"s3://{self.cfg.storage.bucket}/{self.cfg.storage.prefix}")
        self._store = await self._stack.enter_async_context(Store(self.cfg.mongo))
        if not embedded and not opts.keep:
            # someone else's MongoDB: leave no footyd_demo_* database behind
            self._stack.push_async_callback(self._store.db.client.drop_database,
                                            self.cfg.mongo.database)
        daemon = Daemon(self.cfg, None, stop_event=self.stop,
                        install_signals=opts.install_signals)
        self._daemon = daemon
        self._daemon_task = asyncio.create_task(daemon.run(), name="demo-daemon")
        self._stack.push_async_callback(self._stop_daemon)
        self.say(f"daemon: health {self.health_url}" + (f", page {self.page_url}"
                                                         if self.page_url else ""))
        await self._kick_off_when_ready(daemon)

    def _prepare_workdir(self) -> Path | None:
        """Make the work dir; return it when it is ours to delete at the end."""
        self._temp = self.opts.dir is None
        self._workdir = Path(self.opts.dir or tempfile.mkdtemp(prefix="footyd-demo-")).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._temp and not self.opts.keep:
            self._stack.callback(shutil.rmtree, self.workdir, True)
            return self.workdir
        return None

    async def _start_sims(self, clip_dir: Path) -> None:
        # held at minute 0 (before every kickoff) until the daemon is up: however long it takes
        # to start on a loaded machine, it sees the whole day
        self._clock = ScaledClock(self.minute_s, held=True)
        sim = SimFootball(self.script.sim_script(), clock=self._clock,
                          key=secrets.token_hex(8))
        await self._stack.enter_async_context(sim)
        host = ClipHost(clip_dir, script=self.script.clip_script(self.minute_s))
        await self._stack.enter_async_context(host)
        self._sim, self._host = sim, host
        self._reddit = await self._start_reddit()

    async def _start_reddit(self) -> FakeReddit | None:
        """The Reddit-shaped feed (its posts come at kick-off), when the script has any."""
        assert self._clock is not None
        if not demo_script.reddit_posts(self.script, self._clock):
            return None
        reddit = FakeReddit(secrets.token_hex(6), secrets.token_hex(12))
        await reddit.start()
        self._stack.push_async_callback(reddit.stop)
        return reddit

    def kick_off(self) -> None:
        """Start the match clock, and with it the clips' and posts' times."""
        clock, host = self._clock, self._host
        assert clock is not None and host is not None
        clock.kick_off()
        for goal in self.script.goals:
            for i, _posts in enumerate(goal.posts):
                host.goal_at(demo_script.host_key(goal, i),
                             demo_script.goal_time(self.script, goal, clock))
        if self._reddit is not None:
            for n, (title, clip, when) in enumerate(demo_script.reddit_posts(self.script, clock)):
                self._reddit.add_post(title, self._post_url(host, clip, n), at=when.timestamp())

    def _post_url(self, host: ClipHost, clip: str, _n: int) -> str:
        """The n-th Reddit post's link: another URL of the same clip, deduplicated by
        fingerprint, not by address."""
        return host.media_url(clip) + "?via=reddit"

    async def _kick_off_when_ready(self, daemon: Daemon) -> None:
        """Kick off once the daemon is started (or has stopped: wait() reports why)."""
        assert self._daemon_task is not None
        ready = asyncio.create_task(daemon.ready.wait(), name="demo-ready")
        try:
            await asyncio.wait({ready, self._daemon_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await tasks.stop(ready)
        self.kick_off()

    def _setup_logs(self) -> None:
        """Daemon logs (JSON lines) go to a file in the workdir; restored on exit."""
        root = logging.getLogger()
        saved = (list(root.handlers), root.level, structlog.get_config())
        self._log_file = (self.workdir / "footyd.log").open("a", encoding="utf-8")

        def restore() -> None:
            root.handlers[:] = saved[0]
            root.setLevel(saved[1])
            structlog.configure(**saved[2])
            assert self._log_file is not None
            self._log_file.close()

        self._stack.callback(restore)
        logs.setup(level="info", fmt="json", stream=self._log_file)

    def _config(self, uri: str, env: Mapping[str, str]) -> Config:
        tree, self.health_url, self.page_url = demo_tree(
            self.script, minute_s=self.minute_s, sim=self._sim, host=self._host,
            workdir=self.workdir, mongo_uri=uri, web=self.opts.web, reddit=self._reddit)
        if "FOOTYD_MONGO__DATABASE" not in env:
            tree["mongo"]["database"] = f"footyd_demo_{uuid.uuid4().hex[:8]}"
        passed = {k: v for k, v in env.items() if k.startswith(ENV_PASSED)}
        passed.pop("FOOTYD_MONGO__URI", None)  # already chosen (option > env > embedded)
        cfg = config_mod.build(tree, env=passed)
        logs.set_secrets(config_mod.secret_values(cfg))
        return cfg

    async def _stop_daemon(self) -> None:
        self.stop.set()
        if self._daemon_task is not None:
            with contextlib.suppress(Exception):
                await self._daemon_task

    async def _watch(self, display: Display) -> Snapshot:
        """Re-read MongoDB until the day is over, the daemon stops, or the deadline passes."""
        assert self._store is not None and self._daemon_task is not None
        deadline = time.monotonic() + self.script.end_minute() * self.minute_s + SLACK_S
        snap = Snapshot()
        while time.monotonic() < deadline and not self._daemon_task.done():
            snap = await snapshot(self._store)
            display.update(snap)
            if snap.day_over() or self.stop.is_set():
                break
            await asyncio.sleep(POLL_S)  # sampling MongoDB for the display: no event to await
        return snap

    async def wait(self) -> DemoResult:
        """Play the day, summarise it, compare it with the script (and serve on if asked)."""
        assert self._store is not None and self._daemon_task is not None and self._clock
        display = make_display(self.opts.out, plain=self.opts.plain, title=self.script.name)
        try:
            snap = await self._watch(display)
        finally:
            display.close()
        interrupted = self._daemon.stop_signal if self._daemon is not None else None
        if interrupted is not None:  # Ctrl-C or SIGTERM: not a failure, and no summary to judge
            self.say(f"footyd demo: interrupted ({interrupted}); the daemon drained and stopped")
            return DemoResult(INTERRUPTED_EXIT[interrupted], (f"interrupted by {interrupted}",),
                              (), "", round(time.monotonic() - self._started, 1), self.clips_at,
                              self.page_url, self.workdir)
        problems: list[str] = []
        if self._daemon_task.done():
            problems.append(f"the daemon stopped early (exit {_exit_of(self._daemon_task)}); "
                            f"see {self.workdir / 'footyd.log'}")
        elif not snap.day_over():
            problems.append("the day did not finish in time")
        snap = await snapshot(self._store)
        clock = self._clock
        times = {(g.fixture, g.key): demo_script.goal_time(self.script, g, clock)
                 for g in self.script.goals}
        rows = [goal_row(goal, doc, snap.clips_of(doc["_id"]),
                         times.get((goal.fixture, goal.key)) if goal else None)
                for goal, doc in match_goals(self.script, snap)]
        problems += differences(self.script, snap, rows)
        wall_s = round(time.monotonic() - self._started, 1)
        summary = self._summary(snap, rows, problems, wall_s)
        self.say(summary)
        self.summarised.set()
        if self.opts.serve and not self._daemon_task.done():
            self.say(f"serving until Ctrl-C: page {self.page_url or '(web disabled)'}")
            await self.stop.wait()
        code = ExitCode.OK if not problems else ExitCode.ERROR
        return DemoResult(code, tuple(problems), tuple(rows), summary, wall_s, self.clips_at,
                          self.page_url, self.workdir)

    def _summary(self, snap: Snapshot, rows: list[GoalRow], problems: list[str],
                 wall_s: float) -> str:
        assert self.cfg is not None
        deleted = self._temp and not self.opts.keep
        temporary = self.cfg.storage.kind == "local" and deleted
        where = self.clips_at + ("  (a temp dir, deleted on exit: --keep keeps it)"
                                 if temporary else "")
        return summary_text(
            f"{self.script.name}: summary ({wall_s:.1f} s wall, one match minute = "
            f"{self.minute_s:g} s; times are seconds after the goal happened)",
            snap, rows, problems, where=where,
            log=None if deleted else self.workdir / "footyd.log",
            page_url=self.page_url if self.opts.serve else None)


def _exit_of(task: asyncio.Task[int]) -> str:
    if task.cancelled():
        return "cancelled"
    exc = task.exception()
    return str(task.result()) if exc is None else f"{type(exc).__name__}: {exc}"


async def run_demo(options: DemoOptions | None = None) -> DemoResult:
    """Play the demo day end to end and return its outcome (exit_code 0: as the script says)."""
    async with Demo(options) as demo:
        return await demo.wait()


@contextlib.asynccontextmanager
async def started_demo(options: DemoOptions | None = None) -> AsyncIterator[Demo]:
    """The demo started (page URL known) but not yet awaited: for browser tests."""
    async with Demo(options) as demo:
        yield demo


def main(options: DemoOptions) -> int:
    """The CLI entry: run the demo, map failures to exit codes."""
    # the broken clip makes OpenCV's FFmpeg backend print to stderr in pool workers (inherited
    # env): the demo's output is the view, the daemon's log has the rejection with its reason
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    try:
        demo_script.load(options.script)
    except (OSError, ValueError) as exc:  # ValueError: TOML syntax or pydantic validation
        print(f"footyd demo: invalid script {options.script or demo_script.DEFAULT_SCRIPT}:\n{exc}",
              file=sys.stderr)
        return ExitCode.CONFIG
    got: list[str] = []

    def terminated(_signum: int, _frame: object) -> None:
        # until the daemon owns the signals, SIGTERM ends the demo as Ctrl-C does: cleanly
        got.append("SIGTERM")
        signal.raise_signal(signal.SIGINT)

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        result = asyncio.run(run_demo(options))
    except (OSError, ValueError, subprocess.SubprocessError, RuntimeError) as exc:
        print(f"footyd demo: cannot run: {exc}", file=sys.stderr)
        return ExitCode.UNAVAILABLE
    except KeyboardInterrupt:  # before the daemon took the signals over
        name = got[0] if got else "SIGINT"
        print(f"footyd demo: interrupted ({name}) while starting", file=sys.stderr)
        return INTERRUPTED_EXIT[name]
    finally:
        signal.signal(signal.SIGTERM, previous)
    return result.exit_code
