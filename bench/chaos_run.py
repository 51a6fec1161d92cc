"""The crash run: play the day, kill the daemon at chosen moments, break its dependencies, judge.

`await ChaosRun(plan, workdir).run()` returns a ChaosResult; `bench/chaos.py` is its command
line and the test suite runs a short seeded variant (tests/test_chaos.py).
"""

from __future__ import annotations

import asyncio
import copy
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
    REPLICA_TARGETS,
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
from footyd.runtime.scratch import LOCK, MARKER
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
        self._daemons = 0  # starts, for the API budget
        self.procs: list[DaemonProc] = []
        self.configs: list[Path] = []
        self.failovers: list[float] = []
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
            self.configs = [write_toml(self.workdir / f"footyd-{i}.toml", self._replica_tree(tree, i))
                            for i in range(self.plan.replicas)]
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
        if self.plan.replicas > 1:
            ttl = self.plan.lease_ttl_s
            tree["replicas"] = {"lease_ttl_s": ttl, "lease_renew_s": ttl / 4,
                                "claim_ttl_s": max(3.0, 3 * ttl)}

    def _replica_tree(self, tree: dict[str, Any], n: int) -> dict[str, Any]:
        """Replica n's config: the same but for what is per host (ports, the scratch folder)."""
        if n == 0:
            return tree
        tree = copy.deepcopy(tree)
        tree["health"]["listen"] = f"127.0.0.1:{free_port()}"
        tree["web"]["listen"] = f"127.0.0.1:{free_port()}"
        tree["download"]["scratch_dir"] = f"{tree['download']['scratch_dir']}-{n}"
        return tree

    # -- the daemon ----------------------------------------------------------------------------
    async def _spawn(self, n: int = 0) -> tuple[DaemonProc, float]:
        """Replica n's new daemon once it is READY, and the time that took; one that exits first
        (MongoDB or S3 away: it refuses to start without them) is started again, as systemd would."""
        t0 = time.monotonic()
        while True:
            self._daemons += 1
            daemon = DaemonProc(self.configs[n], self.workdir / f"footyd-{n}.log", self.lines, n)
            since = len(self.lines)
            await daemon.start()
            line = await daemon.wait_line("daemon_started", since, 60.0,
                                          lambda ln: ln.get("_replica") == n)
            if line is not None:
                return daemon, round(time.monotonic() - t0, 2)
            await daemon.reap()
            self.result.facts["failed_starts"] = self.result.facts.get("failed_starts", 0) + 1
            await asyncio.sleep(1.0)  # systemd's RestartSec

    async def _aim(self, target: str) -> tuple[int, bool]:
        """Wait for `target`'s moment; which replica to kill and whether the step is in flight
        (False: gave up after aim_s, a replica picked at random is killed anyway)."""
        since = len(self.lines)
        missed = (self.rng.randrange(len(self.procs)), False)
        if target == "leader":
            doc = await self.store.db["daemon"].find_one({"_id": "leader"})
            pids = [p.proc.pid if p.proc is not None else None for p in self.procs]
            if doc is None or doc.get("pid") not in pids:
                return missed
            return pids.index(doc["pid"]), True
        if target in LOG_TRIGGERS:
            start, key, ends = LOG_TRIGGERS[target]
            line = await self._live().wait_line(start, since, self.plan.aim_s)
            if line is None:
                return missed
            ident, n = line.get(key), int(line["_replica"])
            await asyncio.sleep(self.rng.uniform(0.0, 0.05))  # somewhere inside the step
            return n, not any(ln.get("event") in ends and ln.get(key) == ident
                              for ln in self.lines[since:])
        return 0, await self._hold(target)

    async def _hold(self, target: str) -> bool:
        """Hold the next video upload or webhook delivery (one replica: it is the one doing it)."""
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
        kinds = TARGETS if plan.replicas == 1 else REPLICA_TARGETS
        targets = [kinds[i % len(kinds)] for i in range(plan.kills)]
        self.rng.shuffle(targets)
        # kills spread over the day; MongoDB goes away once, after the first kill past half-time
        kill_at = sorted(self.rng.uniform(0.05, 0.85) * day_s for _ in targets)
        mongo_after = next((n for n, at in enumerate(kill_at, 1) if at >= day_s / 2), len(targets))
        outage_at = self.rng.uniform(0.15, 0.35) * day_s
        for n in range(plan.replicas):
            daemon, ready_s = await self._spawn(n)
            self.procs.append(daemon)
            self.result.facts.setdefault("first_ready_s", ready_s)
        # the day starts once every replica is up, the kills and the outage count from there
        self.demo.kick_off()
        self._started = time.monotonic()
        outage = asyncio.create_task(self._s3_outage(outage_at) if plan.s3_outage_s else _nothing())
        stack.push_async_callback(_cancel, outage)
        try:
            for n, (target, at) in enumerate(zip(targets, kill_at, strict=True), 1):
                await asyncio.sleep(max(0.0, at - (time.monotonic() - self._started)))
                victim, in_flight = await self._aim(target)
                what = target if in_flight else f"{target} (missed)"
                kill = Kill(n, what if plan.replicas == 1 else f"{what} r{victim}", self._now(),
                            in_flight)
                since = len(self.lines)
                self.procs[victim].kill()
                await self.procs[victim].reap()
                self.gate.release.set()  # a held upload goes on to S3 with nobody to record it
                if target == "leader" and in_flight:
                    self.failovers.append(await self._failover(since))
                self.procs[victim], kill.ready_s = await self._spawn(victim)
                self.result.kills.append(kill)
                if n == mongo_after:
                    await self._mongo_bounce()
            last_kill = time.monotonic()
            converged = await self._converge()
            self.result.facts["converge_s_after_last_kill"] = round(time.monotonic() - last_kill, 1)
            self.result.facts["settled_s_after_day_end"] = round(
                time.monotonic() - self._started - day_s, 1)
            await outage
            if not converged:
                self.result.problems.append(
                    f"the day did not settle within {plan.converge_s:g} s of the last kill")
            await self._check_page()
        finally:
            # the leader last: stopped first, it would hand its lease to a standby still running
            codes = [await proc.stop() for proc in self._leader_last()]
        if any(codes):
            self.result.problems.append(f"the last daemons exited {codes} on SIGTERM")
        if self.failovers:
            self.result.facts["failover_s"] = self.failovers
            self.result.facts["poll_s"] = self.demo.script.poll_min * self.demo.minute_s
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

    async def _failover(self, since: int) -> float:
        """Leader killed at `since`: seconds until another replica's first poll cycle (the
        killed one is started again only after this, so it cannot be the one)."""
        t0 = time.monotonic()
        poll = await self._live().wait_line("poll_cycle_done", since, 60.0)
        if poll is None:
            self.result.problems.append("no replica polled within 60 s of the leader's kill")
            return 60.0
        return round(time.monotonic() - t0, 2)

    def _live(self) -> DaemonProc:
        """A running replica: their lines are shared, so any of them can wait for a line."""
        return next(p for p in self.procs if not p.exited)

    async def _converge(self) -> bool:
        deadline = time.monotonic() + self.plan.converge_s
        while time.monotonic() < deadline:
            snap = await snapshot(self.store)
            pending = await self.store.notifications.count_documents({"state": {"$ne": "delivered"}})
            if snap.day_over() and pending == 0:
                return True
            if all(proc.exited for proc in self.procs):
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
                wrong = [f"{k}: {goals[k]}, page {self.mirror.goals.get(k)} "
                         f"({self.mirror.last.get(k)}, now {time.monotonic():.2f})" for k in goals
                         if self.mirror.goals.get(k) != goals[k]]
                wrong += [f"{k}: {clips[k]}, page {self.mirror.clips.get(k)}" for k in clips
                          if self.mirror.clips.get(k) != clips[k]]
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
        scratch = [p for folder in (self.workdir / "day").glob("scratch*") for p in folder.rglob("*")
                   if p.is_file() and p.name not in (MARKER, LOCK)]
        self._judge_replicas()
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
        if not self.plan.kills:  # nothing cut a delivery: each event arrives once, however many replicas
            twice = Counter(r.event_id for r in self.rx.requests if 200 <= r.status < 300)
            problems += [f"event {e} received {n} times" for e, n in twice.items() if n > 1]
        self.result.facts["webhook_events"] = (f"{len(outbox)} recorded, {len(got)} received, "
                                               f"{len(cut)} cut by a kill then delivered")

    def _leader_last(self) -> list[DaemonProc]:
        """The daemons, the one elected last at the end."""
        elected = [int(ln.get("_replica", 0)) for ln in self.lines
                   if ln.get("event") == "leader_elected"]
        leader = elected[-1] if elected else 0
        return [p for n, p in enumerate(self.procs) if n != leader] + self.procs[leader:leader + 1]

    def _judge_replicas(self) -> None:
        """Who did what: every replica's dedup runs and poll cycles, and how often each led."""
        if self.plan.replicas == 1:
            return
        facts = self.result.facts
        for event, fact in (("dedup_done", "dedup_runs_by_replica"),
                            ("poll_cycle_done", "poll_cycles_by_replica"),
                            ("leader_elected", "elections_by_replica")):
            counts = Counter(ln["_replica"] for ln in self.lines if ln.get("event") == event)
            facts[fact] = [counts.get(n, 0) for n in range(self.plan.replicas)]

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
