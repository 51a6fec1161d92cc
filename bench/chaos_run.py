"""The crash run: play the day, kill the daemon at chosen moments, break its dependencies, judge.

`await ChaosRun(plan, workdir).run()` returns a ChaosResult; `bench/chaos.py` is its command
line and the test suite runs a short seeded variant (tests/test_chaos.py).
"""

from __future__ import annotations

import asyncio
import io
import logging
import random
import secrets
import time
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import boto3
from moto.server import ThreadedMotoServer
from pydantic import SecretStr

from bench.chaos_parts import (
    LOG_TRIGGERS,
    S3_DOWN,
    TARGETS,
    ChaosDemo,
    ChaosPlan,
    ChaosResult,
    DaemonProc,
    Kill,
    PageMirror,
)
from footyd import records
from footyd.clients.store import Store
from footyd.config import MongoConfig
from footyd.demo.report import differences, goal_row, match_goals, snapshot
from footyd.demo.runner import DemoOptions
from footyd.runtime.scratch import MARKER
from footyd.sim.mongo import start_secantus, stop_secantus
from footyd.sim.net import free_port
from footyd.sim.tomlfile import write_toml
from tests.plugins.faults import Fault, fault_proxy
from tests.plugins.notify import HANG, receiver

KEY_ID, SECRET = "chaos-key", "chaos-secret-value"
PREFIX = "clips"


class ChaosRun:
    """One crash run of `plan` with its files under `workdir`."""

    def __init__(self, plan: ChaosPlan, workdir: Path) -> None:
        self.plan = plan
        self.workdir = workdir
        self.rng = random.Random(plan.seed)
        self.result = ChaosResult(plan)
        self.lines: list[dict[str, Any]] = []
        self._started = time.monotonic()
        self._mongo_port = free_port()
        self._mongo: Any = None
        self._daemons = 0
        # moto keeps its buckets per process: a fresh bucket per run
        self.bucket = f"chaos-{plan.seed}-{secrets.token_hex(4)}"

    def _now(self) -> float:
        return round(time.monotonic() - self._started, 2)

    async def run(self) -> ChaosResult:
        self.workdir.mkdir(parents=True, exist_ok=True)
        async with AsyncExitStack() as stack:
            self._mongo, uri = await asyncio.to_thread(
                start_secantus, self.workdir / "mongo", self._mongo_port, tie_to_parent=True)
            stack.callback(lambda: stop_secantus(self._mongo))
            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
            moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            moto.start()
            stack.callback(moto.stop)
            host, port = moto.get_host_and_port()
            self._s3_url = f"http://{host}:{port}"
            self.gate = await stack.enter_async_context(fault_proxy(self._s3_url))
            self.rx = await stack.enter_async_context(receiver())
            demo = ChaosDemo(DemoOptions(dir=self.workdir / "day", keep=True, out=io.StringIO(),
                                         speed=1.0), self.plan.fixtures)
            demo.minute_s = self.plan.minute_s
            await stack.enter_async_context(demo)
            self.demo = demo
            tree, page = self.demo.tree(uri)
            self._configure(tree)
            self.config = write_toml(self.workdir / "footyd.toml", tree)
            self.store = await stack.enter_async_context(Store(MongoConfig(
                uri=SecretStr(uri), database=tree["mongo"]["database"],
                server_selection_timeout_s=2.0)))
            assert page is not None
            self.mirror = PageMirror(page, [fx.id for fx in self.demo.script.fixtures])
            mirror = asyncio.create_task(self.mirror.run(), name="chaos-page")
            stack.push_async_callback(_cancel, mirror)
            await self._play(stack)
        return self.result

    def _configure(self, tree: dict[str, Any]) -> None:
        tree["mongo"]["database"] = f"chaos_{self.plan.seed}"
        tree["mongo"]["server_selection_timeout_s"] = 2.0
        tree["storage"] = {"kind": "s3", "bucket": self.bucket, "prefix": PREFIX,
                           "endpoint_url": self.gate.url, "region": "us-east-1",
                           "access_key_id": KEY_ID, "secret_access_key": SECRET,
                           "create_bucket": True}
        tree["notify"] = {"webhooks": [{"url": self.rx.url("hook"), "name": "main",
                                        "secret": "chaos-webhook-secret", "timeout_s": 5.0}],
                          "backoff_base_s": 0.5, "backoff_max_s": 2.0}
        tree["web"]["stream_audit_s"] = self.plan.audit_s

    # -- the daemon ----------------------------------------------------------------------------
    async def _spawn(self) -> tuple[DaemonProc, float]:
        """A new daemon once it is READY, and the time that took; one that exits first (MongoDB
        or S3 away: it refuses to start without them) is started again, as systemd would."""
        t0 = time.monotonic()
        while True:
            self._daemons += 1
            daemon = DaemonProc(self.config, self.workdir / "footyd.log", self.lines)
            since = len(self.lines)
            await daemon.start()
            line = await daemon.wait_line("daemon_started", since, 60.0)
            if line is not None:
                return daemon, round(time.monotonic() - t0, 2)
            await daemon.reap()
            self.result.facts["failed_starts"] = self.result.facts.get("failed_starts", 0) + 1
            await asyncio.sleep(1.0)  # systemd's RestartSec

    async def _aim(self, daemon: DaemonProc, target: str) -> bool:
        """Wait for `target`'s moment (True) or give up after aim_s (False); the caller kills."""
        since = len(self.lines)
        if target in LOG_TRIGGERS:
            start, key, ends = LOG_TRIGGERS[target]
            line = await daemon.wait_line(start, since, self.plan.aim_s)
            if line is None:
                return False
            ident = line.get(key)
            await asyncio.sleep(self.rng.uniform(0.0, 0.05))  # somewhere inside the step
            return not any(ln.get("event") in ends and ln.get(key) == ident
                           for ln in self.lines[since:])
        if target == "upload":  # hold the next video PUT at S3, then kill with it in flight
            self.gate.held.clear()
            self.gate.release = asyncio.Event()
            fault = self.gate.add(Fault(_video_put, "hold", times=1))
            try:
                await asyncio.wait_for(self.gate.held.wait(), self.plan.aim_s)
                return True
            except TimeoutError:
                return False
            finally:
                self.gate.faults.remove(fault)
        # webhook: the receiver holds the next delivery
        seen = len(self.rx.requests)
        self.rx.script["hook"] = [HANG]
        try:
            await self.rx.wait(lambda: any(r.status == HANG for r in self.rx.requests[seen:]),
                               self.plan.aim_s)
            return True
        except TimeoutError:
            return False
        finally:
            self.rx.script["hook"] = []

    # -- dependencies --------------------------------------------------------------------------
    async def _restart_mongo(self) -> None:
        down_s = self.rng.uniform(2.0, 5.0)
        await asyncio.to_thread(stop_secantus, self._mongo)
        await asyncio.sleep(down_s)
        self._mongo, _ = await asyncio.to_thread(
            start_secantus, self.workdir / "mongo", self._mongo_port, tie_to_parent=True)
        self.result.facts["mongo_restart"] = f"at {self._now()} s, down {down_s:.1f} s"

    async def _s3_outage(self, after_s: float) -> None:
        await asyncio.sleep(after_s)
        fault = self.gate.add(Fault(lambda _r: True, "status", status=503, body=S3_DOWN))
        self.result.facts["s3_outage"] = f"at {self._now()} s for {self.plan.s3_outage_s:g} s"
        await asyncio.sleep(self.plan.s3_outage_s)
        self.gate.faults.remove(fault)

    # -- the day -------------------------------------------------------------------------------
    async def _play(self, stack: AsyncExitStack) -> None:
        plan = self.plan
        day_s = self.demo.script.end_minute() * self.demo.minute_s
        targets = [TARGETS[i % len(TARGETS)] for i in range(plan.kills)]
        self.rng.shuffle(targets)
        # kills spread over the day; MongoDB goes away once, after the first kill past half-time
        kill_at = sorted(self.rng.uniform(0.05, 0.85) * day_s for _ in targets)
        mongo_after = next((n for n, at in enumerate(kill_at, 1) if at >= day_s / 2), len(targets))
        outage_at = self.rng.uniform(0.15, 0.35) * day_s
        outage = asyncio.create_task(self._s3_outage(outage_at) if plan.s3_outage_s else _nothing())
        stack.push_async_callback(_cancel, outage)
        daemon, ready_s = await self._spawn()
        self.result.facts["first_ready_s"] = ready_s
        try:
            for n, (target, at) in enumerate(zip(targets, kill_at, strict=True), 1):
                await asyncio.sleep(max(0.0, at - (time.monotonic() - self._started)))
                in_flight = await self._aim(daemon, target)
                kill = Kill(n, target if in_flight else f"{target} (missed)", self._now(), in_flight)
                daemon.kill()
                await daemon.reap()
                self.gate.release.set()  # a held upload goes on to S3 with nobody to record it
                daemon, kill.ready_s = await self._spawn()
                self.result.kills.append(kill)
                if n == mongo_after:
                    await self._mongo_bounce()
            last_kill = time.monotonic()
            converged = await self._converge(daemon)
            self.result.facts["converge_s_after_last_kill"] = round(time.monotonic() - last_kill, 1)
            self.result.facts["settled_s_after_day_end"] = round(
                time.monotonic() - self._started - day_s, 1)
            await outage
            if not converged:
                self.result.problems.append(
                    f"the day did not settle within {plan.converge_s:g} s of the last kill")
            await self._check_page()
        finally:
            code = await daemon.stop()
        if code != 0:
            self.result.problems.append(f"the last daemon exited {code} on SIGTERM")
        self.result.facts["api_calls"] = self.demo.sim_calls
        self.result.facts["day_s"] = round(day_s, 1)
        await self._judge()

    async def _mongo_bounce(self) -> None:
        """Stop MongoDB under a running daemon; then the page must go on delivering."""
        await self._restart_mongo()
        t0 = time.monotonic()
        self.mirror.changed.clear()
        try:
            await asyncio.wait_for(self.mirror.changed.wait(), 3 * self.plan.audit_s + 30.0)
            self.result.facts["page_event_after_mongo_restart_s"] = round(time.monotonic() - t0, 1)
        except TimeoutError:
            self.result.problems.append("the page's stream delivered nothing after the MongoDB restart")

    async def _converge(self, daemon: DaemonProc) -> bool:
        deadline = time.monotonic() + self.plan.converge_s
        while time.monotonic() < deadline:
            snap = await snapshot(self.store)
            pending = await self.store.notifications.count_documents({"state": {"$ne": "delivered"}})
            if snap.day_over() and pending == 0:
                return True
            if daemon.exited:
                return False
            await asyncio.sleep(0.5)  # sampling MongoDB: the daemon's progress has no event here
        return False

    async def _check_page(self) -> None:
        """The page's view equals MongoDB once the stream has caught up (bounded)."""
        deadline = time.monotonic() + 2 * self.plan.audit_s + 15.0
        while True:
            goals = {g["_id"]: g["state"] async for g in self.store.goals.find({}, {"state": 1})}
            clips = {c["_id"]: c["state"] async for c in self.store.clips.find({}, {"state": 1})}
            if goals == self.mirror.goals and clips == self.mirror.clips:
                return
            if time.monotonic() > deadline:
                wrong = [k for k in goals if self.mirror.goals.get(k) != goals[k]]
                wrong += [k for k in clips if self.mirror.clips.get(k) != clips[k]]
                self.result.problems.append(f"the page shows another state than MongoDB for "
                                            f"{len(wrong)} document(s), e.g. {wrong[:3]}")
                return
            await asyncio.sleep(0.2)

    async def _judge(self) -> None:
        problems = self.result.problems
        script = self.demo.script
        snap = await snapshot(self.store)
        rows = [goal_row(goal, doc, snap.clips_of(doc["_id"]), None)
                for goal, doc in match_goals(script, snap)]
        problems += differences(script, snap, rows)
        seen = Counter((g["fixture_id"], g.get("first_seen_order")) for g in snap.goals)
        problems += [f"goal {key} stored {n} times" for key, n in seen.items() if n > 1]
        clips = await self.store.clips.find({}).to_list(None)
        kept = Counter((c["goal_id"], c.get("sha256")) for c in clips if c["state"] == records.CLIP_KEPT)
        problems += [f"clip {key} kept {n} times" for key, n in kept.items() if n > 1]
        await self._judge_objects(clips)
        await self._judge_webhooks()
        scratch = [p for p in (self.workdir / "day" / "scratch").rglob("*")
                   if p.is_file() and p.name != MARKER]
        if scratch:
            problems.append(f"{len(scratch)} scratch file(s) left, e.g. {scratch[0].name}")
        budget = self._api_budget()
        self.result.facts["api_budget"] = budget
        if self.demo.sim_calls > budget:
            problems.append(f"{self.demo.sim_calls} API calls, over the day's budget of {budget}")

    async def _judge_objects(self, clips: list[dict[str, Any]]) -> None:
        s3 = boto3.client("s3", endpoint_url=self._s3_url, region_name="us-east-1",
                          aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)
        keys = await asyncio.to_thread(_all_keys, s3, self.bucket)
        held = set()
        for c in clips:
            if records.holds_blob(c) and c.get("blob_key"):
                held.add(c["blob_key"])
                if c.get("poster_key"):
                    held.add(c["poster_key"])
        problems = self.result.problems
        problems += [f"S3 object without a clip holding it: {k}" for k in sorted(keys - held)]
        problems += [f"clip holds a missing S3 object: {k}" for k in sorted(held - keys)]
        uploads = await asyncio.to_thread(s3.list_multipart_uploads, Bucket=self.bucket)
        if uploads.get("Uploads"):
            problems.append(f"{len(uploads['Uploads'])} incomplete multipart upload(s)")
        self.result.facts["s3_objects"] = len(keys)

    async def _judge_webhooks(self) -> None:
        outbox = await self.store.notifications.find({}).to_list(None)
        per_event = Counter((d["event_id"], d["webhook"]) for d in outbox)
        problems = self.result.problems
        problems += [f"event {e} recorded {n} times" for e, n in per_event.items() if n > 1]
        problems += [f"event {d['event_id']} ended {d['state']}" for d in outbox
                     if d["state"] != "delivered"]
        got = {r.event_id for r in self.rx.requests if 200 <= r.status < 300}
        missing = {d["event_id"] for d in outbox} - got
        problems += [f"event {e} recorded delivered but never received" for e in sorted(missing)]
        cut = {r.event_id for r in self.rx.requests if r.status == HANG}
        problems += [f"event {e} cut by a kill and never delivered" for e in sorted(cut - got)]
        self.result.facts["webhook_events"] = (f"{len(outbox)} recorded, {len(got)} received, "
                                               f"{len(cut)} cut by a kill then delivered")

    def _api_budget(self) -> int:
        """One call per poll cycle over the day, plus what each start costs (status, ingest)."""
        poll_s = self.demo.script.poll_min * self.demo.minute_s
        day_s = self.demo.script.end_minute() * self.demo.minute_s
        return int(day_s / poll_s * 1.25) + 4 * self._daemons


def _video_put(request: Any) -> bool:
    return request.method == "PUT" and request.path.endswith(".mp4")


def _all_keys(s3: Any, bucket: str) -> set[str]:
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.update(o["Key"] for o in page.get("Contents", []))
    return keys


async def _nothing() -> None:
    return None


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
