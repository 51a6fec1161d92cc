"""Several footyd replicas on one MongoDB: one leads and polls, the others stand by, share the
pipeline's work and take over; a leader paused past its lease cannot write."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from footyd.clients.store import Store
from footyd.config import MongoConfig
from footyd.fence import FIELD
from footyd.sim.football import ScaledClock
from footyd.sim.football_script import Script
from footyd.sim.net import free_port
from tests.plugins.daemon import DaemonFactory, base_config, run_cli
from tests.plugins.faults import Fault, fault_proxy
from tests.plugins.servers import MongoServer, S3Server
from tests.plugins.sim import StartSim

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` skips it

SPM = 0.25
TTL_S, RENEW_S = 5.0, 1.0  # roomy: a loaded CI machine must not make the leader flap


class HeldClock(ScaledClock):
    """Scaled real time the test can hold: the match waits while the test kills and checks."""

    def __init__(self, seconds_per_minute: float) -> None:
        super().__init__(seconds_per_minute)
        self.held_at: float | None = None
        self._lost_min = 0.0

    def now_min(self) -> float:
        if self.held_at is not None:
            return self.held_at
        return super().now_min() - self._lost_min

    def hold(self) -> None:
        self.held_at = self.now_min()

    def resume(self) -> None:
        assert self.held_at is not None
        self._lost_min = super().now_min() - self.held_at
        self.held_at = None


async def _match(start_sim: StartSim, mongo_server: MongoServer, s3_server: S3Server,
                 tmp_path: Path, *, api_url: str | None = None, timeout_s: float = 2.0,
                 clock: ScaledClock | None = None) -> tuple[Any, dict[str, Any]]:
    """The simulator with one match (goals at 6' and 80') and the replicas' shared config."""
    timeline: list[dict[str, Any]] = [{"at": 0, "status": "1H"},
                                      {"at": 6, "goal": {"team": "home", "player": "E. Early"}},
                                      {"at": 80, "goal": {"team": "away", "player": "L. Late"}},
                                      {"at": 100, "status": "FT"}]
    sim = await start_sim(Script.model_validate({"fixtures": [{
        "id": 8101, "kickoff_min": 2, "league": {"id": 39, "name": "PL", "season": 2025},
        "home": {"id": 41, "name": "Lead FC"}, "away": {"id": 42, "name": "Standby FC"},
        "timeline": timeline}]}), clock=clock or ScaledClock(SPM))
    tree = base_config(mongo_server, s3_server, tmp_path, f"r_{uuid.uuid4().hex[:10]}")
    tree["api_football"] = {"base_url": api_url or sim.base_url, "api_key": sim.key,
                            "timeout_s": timeout_s}
    tree["scope"] = {"teams": [41]}
    tree["monitor"] = {"poll_interval_s": SPM, "poll_floor_s": 0.05, "activate_before_s": 0.0,
                       "staging_check_interval_s": 1.0}
    tree["search"] = {"sources": []}
    tree["replicas"] = {"lease_ttl_s": TTL_S, "lease_renew_s": RENEW_S}
    return sim, tree


def _second(tree: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """The same config but for what is per host: the health port and the scratch folder."""
    return {**tree, "health": {"listen": f"127.0.0.1:{free_port()}"},
            "download": {**tree["download"], "scratch_dir": str(tmp_path / "scratch2")}}


@pytest.mark.timeout(300)
async def test_one_replica_polls_and_a_standby_takes_over_when_it_is_killed(
    daemon_factory: DaemonFactory, start_sim: StartSim, mongo_server: MongoServer,
    s3_server: S3Server, tmp_path: Path,
) -> None:
    clock = HeldClock(SPM)
    sim, tree = await _match(start_sim, mongo_server, s3_server, tmp_path, clock=clock)
    first = await daemon_factory(tree, name="first")
    await first.wait_log("leader_elected")
    second = await daemon_factory(_second(tree, tmp_path), name="second")
    await second.wait_log("daemon_started")
    await first.wait_log("goal_confirmed", where=lambda ln: ln.get("scorer") == "E. Early")
    clock.hold()  # the late goal must come after the takeover, however slow this machine is
    cycles = len(first.events("poll_cycle_done"))
    await first.wait_log("poll_cycle_done", count=cycles + 8)
    # only the leader calls API-Football: every call the simulator saw was one of its cycles
    assert not second.events("poll_cycle_done") and not second.events("leader_elected")
    code, out, _ = await run_cli("status", "-c", str(second.config_path))
    assert code == 0 and "replicas: 2 running; leader" in out, out
    assert out.count(" standby on ") == 1 and out.count(" leader on ") == 1, out
    polled = sum(ln["calls"] for ln in first.events("poll_cycle_done"))
    ingests = sum(1 for c in sim.calls if "date" in c.params or "season" in c.params)
    assert len(sim.calls) - ingests - polled <= 2, "a standby called API-Football"

    first.kill_all()
    killed = time.monotonic()
    elected = await second.wait_log("leader_elected")
    took_s = time.monotonic() - killed
    assert elected["epoch"] == 2 and took_s <= TTL_S + RENEW_S + 2.0, took_s
    await second.wait_log("poll_cycle_done")
    clock.resume()
    # 18 s of match time, then two polls: a loaded CI machine was seen taking over 60 s
    await second.wait_log("goal_confirmed", timeout_s=150.0,
                          where=lambda ln: ln.get("scorer") == "L. Late")
    early = [ln for ln in first.events("goal_confirmed") + second.events("goal_confirmed")
             if ln.get("scorer") == "E. Early"]
    assert len(early) == 1  # the new leader did not record the first goal again


async def test_a_leader_paused_past_its_lease_cannot_write_when_it_wakes(
    daemon_factory: DaemonFactory, start_sim: StartSim, mongo_server: MongoServer,
    s3_server: S3Server, tmp_path: Path,
) -> None:
    # the API behind a proxy that holds one poll: the leader is frozen (SIGSTOP) with that
    # answer on its way; a long client timeout so the answer, not a timeout, is what it wakes to
    async with fault_proxy("http://127.0.0.1:1") as proxy:
        sim, tree = await _match(start_sim, mongo_server, s3_server, tmp_path,
                                 api_url=proxy.url, timeout_s=60.0)
        proxy.upstream = sim.base_url.rstrip("/")
        first = await daemon_factory(tree, name="first")
        await first.wait_log("goal_confirmed", where=lambda ln: ln.get("scorer") == "E. Early")
        second = await daemon_factory(_second(tree, tmp_path), name="second")
        await second.wait_log("daemon_started")
        store = Store(MongoConfig.model_validate(tree["mongo"]))
        async with store:
            proxy.add(Fault(lambda r: r.path.endswith("/fixtures"), "hold", times=1))
            await asyncio.wait_for(proxy.held.wait(), 30)
            first.send(signal.SIGSTOP)
            async with await store.db.watch(full_document="updateLookup") as stream:
                await second.wait_log("leader_elected")
                cycles = len(second.events("poll_cycle_done"))
                await second.wait_log("poll_cycle_done", count=cycles + 2)
                proxy.release.set()  # the frozen leader's answer is in its socket now
                first.send(signal.SIGCONT)
                fenced = await first.wait_log("lease_write_fenced")
                await second.wait_log("poll_cycle_done", count=len(second.events("poll_cycle_done")) + 2)
                epochs = await _written_epochs(stream)
            early = await store.goals.count_documents({"scorer_name": "E. Early"})
        assert fenced["job"] == "monitor_poll"
        # in MongoDB: after the takeover every write carried the new epoch, none the old one
        assert epochs and epochs == {2}, epochs
        after = first.lines[first.lines.index(fenced):]
        assert not [ln for ln in after if ln.get("event") == "poll_cycle_done"]
        assert early == 1  # recorded once, by the first leader


async def _written_epochs(stream: Any) -> set[int]:
    """The lease epochs the fixture and goal writes on the change stream carried, read until
    it has caught up (the new leader keeps writing, so "no more changes" never comes)."""
    epochs: set[int] = set()
    caught_up = time.monotonic() + 3.0
    while time.monotonic() < caught_up:
        change = await stream.try_next()
        if change is None:
            continue
        if change.get("ns", {}).get("coll") in ("fixtures", "goals"):
            fields = change.get("updateDescription", {}).get("updatedFields", {})
            doc = change.get("fullDocument") or {}
            epoch = fields.get(FIELD, doc.get(FIELD) if change["operationType"] == "insert" else None)
            if epoch is not None:
                epochs.add(epoch)
    return epochs

