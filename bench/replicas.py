"""Several footyd replicas on one MongoDB: pipeline throughput for 1, 2 and 3 replicas, and how
long a standby takes to poll after the leader dies.

Run from the repository root: `python -m bench.replicas [--goals 30] [--kills 10]` (about 12
minutes; `--part throughput|failover` runs one half and keeps the other's last figures). Writes
bench/results/replicas.{json,md}.

- throughput: the same backlog for every replica count, in a fresh database each time: `--goals`
  confirmed goals, each with five H.264 copies of clips on the simulator's clip host (29 s of
  video: 720p, 540p, 480p, a logo overlay, a low-bitrate copy). The replicas start, then every
  goal is made due at once; the clock stops when every goal is searched, every clip downloaded
  and fingerprinted, and every goal's dedup is done. Figure: seconds of video fingerprinted and
  grouped per wall second, and its ratio to one replica in the same run. Each replica runs one
  fingerprint process (`pool.workers = 1`); this machine has `os.cpu_count()` cores, which
  bound it.
- failover: two replicas follow a long simulated match at the default lease settings
  (`lease_ttl_s` 15, `lease_renew_s` 5) and a 5 s poll interval. The leader is SIGKILLed
  `--kills` times (restarted each time, as systemd would): seconds from the kill to the first
  poll cycle of the other replica. A SIGKILLed leader on the same host is seen dead at the next
  renewal tick; a leader whose host vanished is not, so it is also SIGSTOPped `--stops` times,
  which the other replica must wait out (the TTL). A new leader polls at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import tempfile
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bench.chaos_parts import DaemonProc
from footyd.clients.store import Store
from footyd.config import MongoConfig
from footyd.demo.config import clip_cache_dir
from footyd.sim.clipgen import generate_catalogue
from footyd.sim.clips import ClipHost, ClipScript, ScriptCandidate, ScriptGoal
from footyd.sim.football import ScaledClock, SimFootball
from footyd.sim.football_script import Script
from footyd.sim.mongo import start_secantus, stop_secantus
from footyd.sim.net import free_port
from footyd.sim.tomlfile import write_toml

RESULTS = Path(__file__).parent / "results"
CLIPS = ("a_720p", "b_540p", "a_480p", "a_logo", "a_low")
POLL_S = 5.0


def _surname(i: int) -> str:
    return "Bench" + chr(97 + i // 26 % 26) + chr(97 + i % 26)


def clip_script(goals: int) -> ClipScript:
    return ClipScript(goals=tuple(ScriptGoal(key=f"g{i}", match=(_surname(i),), candidates=tuple(
        ScriptCandidate(clip=c, delay_s=0) for c in CLIPS)) for i in range(goals)))


def goal_doc(i: int, now: datetime) -> dict[str, Any]:
    return {"_id": f"bench-{i:03d}", "fixture_id": 7000 + i, "league_id": 78, "kickoff": now,
            "team_id": 168, "team_name": "Bayer Leverkusen", "opponent_id": 157,
            "opponent_name": "Bayern Munich", "elapsed": 23, "extra": None, "minute": 23,
            "scorer_id": 1000 + i, "scorer_name": f"Ana {_surname(i)}", "assist_name": None,
            "detail": "Normal Goal", "score_home": 1, "score_away": 0, "state": "confirmed",
            "first_seen_at": now, "confirmed_at": now, "search_attempt_ids": [],
            "next_search_at": now + timedelta(days=1)}  # made due once every replica is up


class Bench:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.lines: list[dict[str, Any]] = []
        self.uri = ""

    def tree(self, n: int, database: str, **extra: Any) -> dict[str, Any]:
        tree: dict[str, Any] = {
            "mongo": {"uri": self.uri, "database": database, "server_selection_timeout_s": 5.0},
            "storage": {"kind": "local", "local_dir": str(self.workdir / database / "blobs")},
            "health": {"listen": f"127.0.0.1:{free_port()}"},
            "download": {"scratch_dir": str(self.workdir / database / f"scratch-{n}"),
                         "allow_private_addresses": True, "max_size_mb": 50},
            "log": {"level": "info", "format": "json"},
            "dedup": {"workers": 1}, "pool": {"workers": 1},
        }
        tree.update(extra)
        return tree

    async def start(self, tree: dict[str, Any], n: int) -> DaemonProc:
        path = write_toml(self.workdir / f"{tree['mongo']['database']}-{n}.toml", tree)
        proc = DaemonProc(path, self.workdir / f"{tree['mongo']['database']}-{n}.log", self.lines, n)
        since = len(self.lines)
        await proc.start()
        if await proc.wait_line("daemon_started", since, 120.0, lambda ln: ln["_replica"] == n) is None:
            raise RuntimeError(f"replica {n} did not start: see {proc._log_path}")
        return proc

    async def store(self, database: str) -> Store:
        store = Store(MongoConfig(uri=SecretStr(self.uri), database=database))
        await store.__aenter__()
        return store

    # -- throughput --------------------------------------------------------------------------
    async def throughput(self, replicas: int, goals: int, host: ClipHost) -> dict[str, Any]:
        database = f"tp{replicas}"
        store = await self.store(database)
        try:
            now = datetime.now(UTC)
            await store.goals.insert_many([goal_doc(i, now) for i in range(goals)])
            extra = {"search": {"sources": ["fake"], "attempts": 1, "interval_s": 1.0,
                                "schedule": [], "due_scan_s": 1.0},
                     "sources": {"fake": {"base_url": host.base_url}}}
            procs = [await self.start(self.tree(n, database, **extra), n) for n in range(replicas)]
            since = len(self.lines)
            t0 = time.monotonic()
            await store.goals.update_many({}, {"$set": {"next_search_at": datetime.now(UTC)}})
            while True:
                if await _settled(store, goals):
                    break
                await asyncio.sleep(0.5)  # sampling MongoDB: no single event says "all done"
            wall_s = time.monotonic() - t0
            for proc in procs:
                await proc.stop()
            printed = await store.clips.find({"fingerprint": {"$ne": None}},
                                             {"duration_s": 1}).to_list(None)
            video_s = sum(float(c.get("duration_s") or 0.0) for c in printed)
            runs = [sum(1 for ln in self.lines[since:] if ln.get("event") == "dedup_done"
                        and ln["_replica"] == n) for n in range(replicas)]
            return {"replicas": replicas, "goals": goals, "clips_fingerprinted": len(printed),
                    "video_s": round(video_s, 1), "wall_s": round(wall_s, 1),
                    "video_s_per_s": round(video_s / wall_s, 2), "dedup_runs_by_replica": runs}
        finally:
            await store.__aexit__(None, None, None)

    # -- failover ----------------------------------------------------------------------------
    async def failover(self, sim: SimFootball, kills: int, stops: int) -> dict[str, Any]:
        database = "failover"
        extra = {"api_football": {"base_url": sim.base_url, "api_key": sim.key, "timeout_s": 5.0},
                 "scope": {"teams": [41]}, "search": {"sources": []},
                 "monitor": {"poll_interval_s": POLL_S, "poll_floor_s": 1.0,
                             "activate_before_s": 0.0, "staging_check_interval_s": 5.0}}
        trees = [self.tree(n, database, **extra) for n in range(2)]
        procs = [await self.start(trees[n], n) for n in range(2)]
        store = await self.store(database)
        results: dict[str, list[float]] = {"sigkill": [], "sigstop": []}
        try:
            for k in range(kills + stops):
                how = "sigkill" if k < kills else "sigstop"
                await self._wait(procs, "poll_cycle_done", len(self.lines))
                lease = await store.db["daemon"].find_one({"_id": "leader"})
                assert lease is not None
                leader = next(n for n, p in enumerate(procs) if p.proc and p.proc.pid == lease["pid"])
                since = len(self.lines)
                t0 = time.monotonic()
                victim = procs[leader]
                assert victim.proc is not None
                if how == "sigkill":
                    victim.kill()
                    await victim.reap()
                else:
                    victim.proc.send_signal(signal.SIGSTOP)
                await self._wait(procs, "poll_cycle_done", since, not_replica=leader)
                results[how].append(round(time.monotonic() - t0, 2))
                if how == "sigstop":
                    victim.proc.send_signal(signal.SIGCONT)
                    await victim.stop()
                procs[leader] = await self.start(trees[leader], leader)
                print(f"  {how} {k + 1}: {results[how][-1]:.1f} s", flush=True)
        finally:
            await store.__aexit__(None, None, None)
            for proc in procs:
                await proc.stop()
        return {how: _summary(values) | {"runs_s": values} for how, values in results.items()}

    async def _wait(self, procs: list[DaemonProc], event: str, since: int,
                    not_replica: int | None = None) -> None:
        live = next(p for p in procs if not p.exited and p.replica != not_replica)
        line = await live.wait_line(event, since, 120.0,
                                    lambda ln: ln["_replica"] != not_replica)
        if line is None:
            raise RuntimeError(f"no {event} within 120 s")


async def _settled(store: Store, goals: int) -> bool:
    done = await store.goals.count_documents({"state": "done", "deduped_at": {"$ne": None}})
    open_clips = await store.clips.count_documents({"state": {"$in": ["discovered", "downloaded"]}})
    return done == goals and open_clips == 0


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"median_s": round(statistics.median(values), 2), "max_s": max(values),
            "min_s": min(values)}


def match_script() -> Script:
    return Script.model_validate({"fixtures": [{
        "id": 9101, "kickoff_min": 1, "league": {"id": 39, "name": "PL", "season": 2025},
        "home": {"id": 41, "name": "Lead FC"}, "away": {"id": 42, "name": "Standby FC"},
        "timeline": [{"at": 0, "status": "1H"}, {"at": 3000, "status": "FT"}]}]})


async def main(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="footyd-replicas-"))
    bench = Bench(workdir)
    async with AsyncExitStack() as stack:
        mongo, bench.uri = await asyncio.to_thread(start_secantus, workdir / "mongo", free_port(),
                                                   tie_to_parent=True)
        stack.callback(lambda: stop_secantus(mongo))
        clip_dir = clip_cache_dir(os.environ)
        await asyncio.to_thread(generate_catalogue, clip_dir, codec="h264", names=list(CLIPS))
        host = ClipHost(clip_dir, script=clip_script(args.goals), clock=lambda: datetime.now(UTC))
        await stack.enter_async_context(host)
        host.reveal_all(True)
        last = json.loads((RESULTS / "replicas.json").read_text()) if args.part != "all" else {}
        result = {"cores": os.cpu_count(), "goals": args.goals, "clips_per_goal": len(CLIPS),
                  "throughput": last.get("throughput"), "failover": last.get("failover"),
                  "failover_settings": {"lease_ttl_s": 15.0, "lease_renew_s": 5.0,
                                        "poll_interval_s": POLL_S}}
        if args.part in ("all", "throughput"):
            throughput = []
            for replicas in (1, 2, 3):
                print(f"throughput with {replicas} replica(s) ...", flush=True)
                throughput.append(await bench.throughput(replicas, args.goals, host))
                print(f"  {throughput[-1]}", flush=True)
            base = throughput[0]["video_s_per_s"]
            for row in throughput:
                row["ratio_to_one"] = round(row["video_s_per_s"] / base, 2)
            result["throughput"] = throughput
        if args.part in ("all", "failover"):
            sim = SimFootball(match_script(), clock=ScaledClock(1.0), key="bench-key")
            await sim.start()
            stack.push_async_callback(sim.stop)
            print("failover ...", flush=True)
            result["failover"] = await bench.failover(sim, args.kills, args.stops)
    return result


def write(result: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "replicas.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# Replicas (`python -m bench.replicas`)", "",
             f"{result['goals']} goals x {result['clips_per_goal']} clips; {result['cores']} cores; "
             "one fingerprint process per replica.", "",
             "| replicas | video s | wall s | video s per wall s | vs one | dedup runs by replica |",
             "|---|---|---|---|---|---|"]
    for row in result["throughput"]:
        lines.append(f"| {row['replicas']} | {row['video_s']} | {row['wall_s']} | "
                     f"{row['video_s_per_s']} | {row['ratio_to_one']}x | {row['dedup_runs_by_replica']} |")
    s = result["failover_settings"]
    lines += ["", f"Failover (lease_ttl_s {s['lease_ttl_s']:g}, lease_renew_s {s['lease_renew_s']:g}, "
              f"poll_interval_s {s['poll_interval_s']:g}): leader stopped -> first poll by the other.", "",
              "| how | runs | median s | min s | max s |", "|---|---|---|---|---|"]
    for how, row in result["failover"].items():
        if row.get("runs_s"):
            lines.append(f"| {how} | {len(row['runs_s'])} | {row['median_s']} | {row['min_s']} | "
                         f"{row['max_s']} |")
    (RESULTS / "replicas.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goals", type=int, default=30)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--stops", type=int, default=3)
    parser.add_argument("--part", choices=("all", "throughput", "failover"), default="all")
    write(asyncio.run(main(parser.parse_args())))


if __name__ == "__main__":
    cli()
