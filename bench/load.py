"""Load run: 200 live fixtures and 300 goals with clips against the real daemon, then idle.

Run from the repository root: `python -m bench.load` (about 25 minutes). It extends
bench/scale.py (one poll cycle in isolation) to the whole daemon (`footyd run` in a subprocess,
footyd's default config with every interval scaled to the simulated clock, one match minute =
MINUTE_S real seconds): the API-Football simulator with full payloads, the clip host behind the
`fake` source (one or two posts per goal), MongoDB, local storage, the page with CLIENTS
clients on /api/stream (each reconnecting with Last-Event-ID when cut, as EventSource does). It
measures, while the matches are live: poll cycle time and API calls per cycle, event-loop lag
(the daemon's own probe, `footyd_loop_lag_seconds`), queue depths and clips in flight, RSS of
the daemon and of its whole process group (pool workers, yt-dlp), how late each page client got
each event, and the time from the simulator serving a goal to it being seen, confirmed, first
searched and first given a kept clip; then, with nothing live, RSS and CPU% over IDLE_S. The
baseline is the same day with a tenth of the fixtures and goals, in the same run. The CPU the
MongoDB-wire stand-in used is measured too: it serves one request at a time, so whatever waits
on MongoDB is slower here than on a real MongoDB. Writes bench/results/load.{json,md}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import statistics
import tempfile
import time
from collections import Counter
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretStr

from bench.chaos_parts import DaemonProc
from footyd.clients.store import Store
from footyd.config import MongoConfig
from footyd.config.models import DEFAULT_SCHEDULE
from footyd.demo.config import clip_cache_dir
from footyd.demo.report import Snapshot, snapshot
from footyd.sim.clipgen import generate_catalogue
from footyd.sim.clips import ClipHost, ClipScript, ScriptCandidate, ScriptGoal
from footyd.sim.football import ScaledClock, SimFootball
from footyd.sim.football_script import Script, many
from footyd.sim.mongo import start_secantus, stop_secantus
from footyd.sim.net import free_port
from footyd.sim.tomlfile import write_toml

RESULTS = Path(__file__).parent / "results"
MINUTE_S = 2.0  # real seconds per match minute: the day runs 30x faster than real time
K = MINUTE_S / 60.0  # footyd's intervals (in real seconds) scaled the same way
CLIENTS = 50
IDLE_S = 60.0
SETTLE_S = 900.0  # past the last scripted minute, how long the work left may take
RUNS = {"baseline": (20, 30), "load": (200, 300)}  # fixtures, goals
CLIPS = ("a_low", "a_720p")
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def day_script(fixtures: int, goals: int) -> Script:
    """`fixtures` random matches kicking off together, trimmed to `goals` goals in all."""
    data = many(fixtures, seed=300, kickoff_min=2, n_leagues=10).model_dump(exclude_none=True)
    left = goals
    for fx in data["fixtures"]:
        dropped: set[str] = set()
        kept_steps = []
        for step in fx["timeline"]:
            goal = step.get("goal")
            if goal is not None:
                if left == 0:
                    dropped.add(goal["key"])
                    continue
                left -= 1
            ref = step.get("cancel") or (step.get("correct") or {}).get("key")
            if ref in dropped:
                continue
            kept_steps.append(step)
        fx["timeline"] = kept_steps
    return Script.model_validate(data)


def clip_script(script: Script) -> tuple[ClipScript, list[tuple[str, float]]]:
    """One or two posts per goal (after 1 and 3 match minutes); (host key, goal minute) pairs."""
    goals: list[ScriptGoal] = []
    times: list[tuple[str, float]] = []
    for fx in script.fixtures:
        for step in fx.timeline:
            if step.goal is None:
                continue
            team = fx.home.name if step.goal.team == "home" else fx.away.name
            key = f"{fx.id}-{step.goal.key}"
            posts = [ScriptCandidate(clip="a_low", delay_s=60 * K, text=f"{team} goal")]
            if len(goals) % 2 == 0:
                posts.append(ScriptCandidate(clip="a_720p", delay_s=180 * K, text=f"{team} goal HD"))
            goals.append(ScriptGoal(key=key, match=(team,), candidates=tuple(posts)))
            times.append((key, fx.kickoff_min + step.at))
    return ClipScript(goals=tuple(goals)), times


def config(script: Script, sim: SimFootball, host: ClipHost, uri: str, work: Path) -> dict[str, Any]:
    leagues = sorted({fx.league.id for fx in script.fixtures})
    return {
        "api_football": {"base_url": sim.base_url, "api_key": sim.key, "daily_reserve": 0},
        "scope": {"leagues": leagues},
        "monitor": {"poll_interval_s": 30.0 * K, "poll_floor_s": 30.0 * K,
                    "staging_check_interval_s": 900.0 * K, "activate_before_s": 300.0 * K,
                    "complete_grace_s": 600.0 * K, "max_poll_interval_s": 300.0 * K},
        "search": {"sources": ["fake"], "schedule": [[u * K, e * K] for u, e in DEFAULT_SCHEDULE],
                   "window_margin_s": 120.0 * K, "due_scan_s": 5.0 * K},
        "sources": {"fake": {"base_url": host.base_url}},
        "download": {"scratch_dir": str(work / "scratch"), "allow_private_addresses": True},
        "mongo": {"uri": uri, "database": f"load_{secrets.token_hex(4)}"},
        "storage": {"kind": "local", "local_dir": str(work / "clips")},
        "health": {"listen": f"127.0.0.1:{free_port()}"},
        "web": {"enabled": True, "listen": f"127.0.0.1:{free_port()}", "max_streams": 200},
        "log": {"level": "info", "format": "json"},
    }


def _group_usage(pgid: int) -> tuple[int, float]:
    """(RSS bytes, CPU seconds) of every process in a process group."""
    rss, cpu = 0, 0.0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[2]) != pgid:
                continue
            cpu += (int(stat[11]) + int(stat[12])) / TICKS
            rss += int(stat[21]) * PAGE
        except (OSError, IndexError, ValueError):
            continue  # it ended while we looked
    return rss, cpu


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _metric(text: str, name: str) -> dict[str, float]:
    """Samples of one metric from Prometheus text: labels (as written) -> value."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key[len(name):]] = float(value)
    return out


def _bucket_quantile(buckets: dict[str, float], q: float) -> float:
    """The upper bound of the histogram bucket holding quantile q."""
    bounds = sorted((float(k.split('le="')[1].split('"')[0]), v) for k, v in buckets.items()
                    if 'le="' in k and "+Inf" not in k)
    total = buckets.get('{le="+Inf"}', max((v for _, v in bounds), default=0.0))
    for bound, count in bounds:
        if count >= q * total:
            return bound
    return float("inf")


def _q(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 3)
    return round(statistics.quantiles(values, n=100)[int(q * 100) - 1], 3)


class Sampler:
    """Every second: queue depths, in-flight clips, RSS of the daemon and its group."""

    def __init__(self, metrics_url: str, pid: int) -> None:
        self.url, self.pid = metrics_url, pid
        self.queue_max: dict[str, float] = {}
        self.in_flight_max: dict[str, float] = {}
        self.rss_daemon_max = 0
        self.rss_group_max = 0

    async def sample(self) -> None:
        async with aiohttp.ClientSession() as http:
            while True:
                async with http.get(self.url) as resp:
                    text = await resp.text()
                for table, name in ((self.queue_max, "footyd_queue_depth"),
                                    (self.in_flight_max, "footyd_in_flight")):
                    for labels, value in _metric(text, name).items():
                        table[labels] = max(table.get(labels, 0.0), value)
                self.rss_daemon_max = max(self.rss_daemon_max, _rss(self.pid))
                self.rss_group_max = max(self.rss_group_max, _group_usage(self.pid)[0])
                await asyncio.sleep(1.0)  # sampling: no event to await


async def page_client(url: str, got: dict[str, float], cuts: list[int]) -> None:
    """One page (EventSource-like): the arrival time of every event id; reconnects with
    Last-Event-ID when the server ends the stream (a slow client is cut and resumes)."""
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    last: str | None = None
    async with aiohttp.ClientSession() as http:
        while True:
            headers = {"Last-Event-ID": last} if last else {}
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url, timeout=timeout, headers=headers) as resp:
                    async for raw in resp.content:
                        if raw.startswith(b"id: "):
                            last = raw[4:].decode().strip()
                            got[last] = time.monotonic()
            cuts[0] += 1
            await asyncio.sleep(0.5)  # about EventSource's retry delay


async def run(fixtures: int, goals: int, work: Path, uri: str, mongo_pid: int | None) -> dict[str, Any]:
    """One day of `fixtures` matches and `goals` goals; its figures."""
    clip_dir = clip_cache_dir(os.environ)
    await asyncio.to_thread(generate_catalogue, clip_dir, codec="h264", names=list(CLIPS))
    script = day_script(fixtures, goals)
    clips, times = clip_script(script)
    async with AsyncExitStack() as stack:
        clock = ScaledClock(MINUTE_S)
        sim = await stack.enter_async_context(SimFootball(script, clock=clock, key=secrets.token_hex(8)))
        host = await stack.enter_async_context(ClipHost(clip_dir, script=clips))
        for key, minute in times:
            host.goal_at(key, clock.to_datetime(minute))
        tree = config(script, sim, host, uri, work)
        cfg_path = write_toml(work / "footyd.toml", tree)
        store = await stack.enter_async_context(Store(MongoConfig(
            uri=SecretStr(uri), database=tree["mongo"]["database"])))
        lines: list[dict[str, Any]] = []
        daemon = DaemonProc(cfg_path, work / "footyd.log", lines)
        await daemon.start()
        stack.push_async_callback(daemon.reap)
        if await daemon.wait_line("daemon_started", 0, 60.0) is None:
            raise RuntimeError(f"the daemon did not start: see {work / 'footyd.log'}")
        assert daemon.proc is not None
        pid = daemon.proc.pid
        sampler = Sampler(f"http://{tree['health']['listen']}/metrics", pid)
        page = f"http://{tree['web']['listen']}/api/stream"
        arrivals: list[dict[str, float]] = [{} for _ in range(CLIENTS)]
        cuts = [0]
        tasks = [asyncio.create_task(sampler.sample())]
        tasks += [asyncio.create_task(page_client(page, got, cuts)) for got in arrivals]
        mongo_cpu0 = _group_usage(mongo_pid)[1] if mongo_pid else 0.0
        cpu0, t0 = _group_usage(pid)[1], time.monotonic()
        end_s = max(fx.kickoff_min + max(s.at for s in fx.timeline) for fx in script.fixtures) * MINUTE_S
        deadline = t0 + end_s + SETTLE_S
        while time.monotonic() < deadline:  # the day and the work it leaves
            if time.monotonic() - t0 > end_s and (await snapshot(store)).day_over():
                break
            await asyncio.sleep(2.0)  # sampling MongoDB: no event to await
        busy_s = time.monotonic() - t0
        busy_cpu = _group_usage(pid)[1] - cpu0
        mongo_cpu = (_group_usage(mongo_pid)[1] - mongo_cpu0) if mongo_pid else None
        async with aiohttp.ClientSession() as http, http.get(sampler.url) as resp:
            metrics = await resp.text()
        cpu1, t1 = _group_usage(pid)[1], time.monotonic()  # idle: nothing live, nothing to fetch
        await asyncio.sleep(IDLE_S)
        idle_cpu_pct = 100 * (_group_usage(pid)[1] - cpu1) / (time.monotonic() - t1)
        idle_rss = _rss(pid)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        snap = await snapshot(store)
        detection = _detection(script, clock, snap, lines)
        await store.db.client.drop_database(tree["mongo"]["database"])
    cycles = [ln for ln in lines if ln.get("event") == "poll_cycle_done" and ln.get("polled", 0) > 0]
    live = [ln for ln in cycles if ln["polled"] >= 0.9 * fixtures]
    lag = _metric(metrics, "footyd_loop_lag_seconds_bucket")
    fan_out = _fan_out(arrivals)
    return {
        "fixtures": fixtures, "goals_scripted": goals, "goals_stored": len(snap.goals),
        "clips_stored": sum(c["state"] == "kept" for c in snap.clips),
        "day_over": snap.day_over(), "busy_s": round(busy_s, 1),
        "poll_cycle_s_median": _q([c["took_s"] for c in live], 0.5),
        "poll_cycle_s_max": max((c["took_s"] for c in live), default=None),
        "api_calls_per_cycle_median": _q([c["calls"] for c in live], 0.5),
        "live_cycles": len(live),
        "loop_lag_s_p50": _bucket_quantile(lag, 0.5), "loop_lag_s_p99": _bucket_quantile(lag, 0.99),
        "loop_lag_s_max": round(_metric(metrics, "footyd_loop_lag_max_seconds").get("", 0.0), 3),
        "queue_depth_max": sampler.queue_max, "in_flight_max": sampler.in_flight_max,
        "rss_daemon_peak_mb": round(sampler.rss_daemon_max / 2**20, 1),
        "rss_group_peak_mb": round(sampler.rss_group_max / 2**20, 1),
        "cpu_s_busy": round(busy_cpu, 1),
        "mongo_cpu_s_busy": round(mongo_cpu, 1) if mongo_cpu is not None else None,
        "page_stream_cuts": cuts[0], "page_events": fan_out["events"],
        "page_spread_s_p50": fan_out["p50"], "page_spread_s_max": fan_out["max"],
        "web_log_events": dict(Counter(str(ln["event"]) for ln in lines
                                       if str(ln.get("event", "")).startswith("web_"))),
        "idle_cpu_pct": round(idle_cpu_pct, 2), "idle_rss_mb": round(idle_rss / 2**20, 1),
        **detection,
    }


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _detection(script: Script, clock: ScaledClock, snap: Snapshot,
               lines: list[dict[str, Any]]) -> dict[str, Any]:
    """From the simulator first serving a goal to: seen, confirmed, first attempt, first kept clip.

    In polls (30 s each at the default) and in real-world seconds (the scaled times / K)."""
    served: dict[tuple[Any, Any, Any], datetime] = {}
    for fx in script.fixtures:
        for step in fx.timeline:
            if step.goal is not None:
                team = fx.home.id if step.goal.team == "home" else fx.away.id
                served.setdefault((fx.id, team, step.goal.elapsed or 0),
                                  clock.to_datetime(fx.kickoff_min + step.at))
    first_attempt: dict[str, datetime] = {}
    for ln in lines:
        if ln.get("event") == "goal_search_attempt" and ln.get("goal_id") not in first_attempt:
            first_attempt[ln["goal_id"]] = datetime.fromisoformat(ln["timestamp"])
    kept: dict[str, datetime] = {}
    for c in snap.clips:
        if c.get("kept_at") is not None:
            at = _aware(c["kept_at"])
            kept[c["goal_id"]] = min(kept.get(c["goal_id"], at), at)
    spans: dict[str, list[float]] = {"seen": [], "confirmed": [], "first_attempt": [], "first_kept": []}
    for g in snap.goals:
        served_at = served.get((g["fixture_id"], g.get("team_id"), g.get("elapsed") or 0))
        if served_at is None:
            continue
        for name, when in (("seen", g.get("first_seen_at")), ("confirmed", g.get("confirmed_at")),
                           ("first_attempt", first_attempt.get(g["_id"])),
                           ("first_kept", kept.get(g["_id"]))):
            if when is not None:
                spans[name].append((_aware(when) - served_at).total_seconds() / K)
    out: dict[str, Any] = {"detection_goals_matched": len(spans["seen"])}
    for name, values in spans.items():
        out[f"to_{name}_s_p50"] = _q(values, 0.5)
        out[f"to_{name}_s_p95"] = _q(values, 0.95)
    p50 = out["to_confirmed_s_p50"]
    out["to_confirmed_polls_p50"] = round(p50 / 30.0, 1) if p50 is not None else None
    return out


def _fan_out(arrivals: list[dict[str, float]]) -> dict[str, Any]:
    """Per event every client got: the spread between the first and the last client to get it."""
    ids = set.intersection(*(set(a) for a in arrivals)) if arrivals else set()
    spreads = [max(a[i] for a in arrivals) - min(a[i] for a in arrivals) for i in ids]
    return {"events": len(ids), "p50": _q(spreads, 0.5),
            "max": round(max(spreads), 3) if spreads else None}


ROWS = [("fixtures / goals scripted", "fixtures", "goals_scripted"),
        ("goals stored / clips kept", "goals_stored", "clips_stored"),
        ("every goal settled (day over)", "day_over", None),
        ("poll cycle median / max (s)", "poll_cycle_s_median", "poll_cycle_s_max"),
        ("API calls per live cycle (median)", "api_calls_per_cycle_median", None),
        ("loop lag p50 / p99 (s, bucket bound)", "loop_lag_s_p50", "loop_lag_s_p99"),
        ("loop lag max (s)", "loop_lag_s_max", None),
        ("RSS peak: daemon / process group (MB)", "rss_daemon_peak_mb", "rss_group_peak_mb"),
        ("CPU s while busy: footyd group / MongoDB stand-in", "cpu_s_busy", "mongo_cpu_s_busy"),
        ("page: streams cut and resumed (all clients) / events every client got",
         "page_stream_cuts", "page_events"),
        ("page: first-to-last client spread per event, p50 / max (s)", "page_spread_s_p50",
         "page_spread_s_max"),
        (f"idle over {IDLE_S:g} s: CPU % / RSS (MB)", "idle_cpu_pct", "idle_rss_mb"),
        ("busy time until the day settled (s)", "busy_s", None),
        ("goal served -> seen, p50 / p95 (real-world s)", "to_seen_s_p50", "to_seen_s_p95"),
        ("goal served -> confirmed, p50 / p95 (real-world s)", "to_confirmed_s_p50",
         "to_confirmed_s_p95"),
        ("goal served -> confirmed, p50 (polls of 30 s)", "to_confirmed_polls_p50", None),
        ("goal served -> first search attempt, p50 / p95 (real-world s)", "to_first_attempt_s_p50",
         "to_first_attempt_s_p95"),
        ("goal served -> first kept clip, p50 / p95 (real-world s)", "to_first_kept_s_p50",
         "to_first_kept_s_p95")]


def _markdown(meta: dict[str, Any], base: dict[str, Any], load: dict[str, Any]) -> str:
    def ratio(key: str) -> str:
        b, a = base.get(key), load.get(key)
        ok = isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool)
        return f"{a / b:.1f}x" if ok and b else "-"

    out = [f"# Load run ({meta['date']}, {meta['cores']} cores, load {meta['load']})", "",
           f"The real daemon; one match minute = {MINUTE_S:g} s (footyd's default intervals "
           f"scaled by {K:.3f}, so a 30 s poll is {30 * K:g} s and fixed costs such as a yt-dlp "
           f"start weigh 30x more than in real time); {CLIENTS} page clients on /api/stream. "
           f"{meta['mongo']}.", "",
           "| | baseline | load | load / baseline |", "|---|---|---|---|"]
    for label, a, b in ROWS:
        keys = [k for k in (a, b) if k]
        cells = [" / ".join(str(run.get(k)) for k in keys) for run in (base, load)]
        out.append(f"| {label} | {cells[0]} | {cells[1]} | {ratio(a)} |")
    out += ["", f"Queue depth max (load): {load['queue_depth_max']}; in flight max: "
            f"{load['in_flight_max']}. Page log events (load): {load['web_log_events']}.", ""]
    return "\n".join(out)


async def main() -> None:
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="footyd-load-") as tmp:
        work = Path(tmp)
        uri = os.environ.get("FOOTYD_BENCH_MONGO_URI", "")
        mongo_proc = None
        if uri:
            note = "MongoDB = real MongoDB (FOOTYD_BENCH_MONGO_URI)"
        else:
            mongo_proc, uri = await asyncio.to_thread(start_secantus, work / "mongo")
            note = "MongoDB = the SecantusDB stand-in (one request at a time: pessimistic)"
        try:
            for name, (fixtures, goals) in RUNS.items():
                run_dir = work / name
                run_dir.mkdir()
                figures[name] = await run(fixtures, goals, run_dir, uri,
                                          mongo_proc.pid if mongo_proc else None)
                print(name, json.dumps(figures[name]), flush=True)
        finally:
            if mongo_proc is not None:
                stop_secantus(mongo_proc)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count(),
            "load": [round(x, 2) for x in os.getloadavg()], "mongo": note}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "load.json").write_text(json.dumps({"meta": meta, **figures}, indent=1))
    md = _markdown(meta, figures["baseline"], figures["load"])
    (RESULTS / "load.md").write_text(md)
    print(md)


if __name__ == "__main__":
    asyncio.run(main())
