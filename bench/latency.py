"""What a fan feels: post -> stored -> kept -> on the page, per source, before and after.

Run from the repository root: `python -m bench.latency` (about 25 minutes). It plays
bench/latency_day.toml (six goals; posts 45 s to 3 min after each goal on a search source and
on r/soccer, mirrors 40 and 44 minutes later) against the real daemon (footyd.runtime.daemon,
the same wiring as `footyd run`), on the simulators: API-Football, the clip host behind the
`fake` search_service source, and the fake Reddit. Everything is at footyd's default config but
for where the simulators are.

Two variants run in the same session, one after the other on the same machine:
- before: the behaviour earlier versions shipped: a goal is searched from its confirmation, on
  the flat cadence (10 attempts, 60 s apart), a feed is read only by attempts, Reddit
  `poll_s = 30`;
- after: the defaults now: searched from the first sighting, `search.schedule`, feeds push,
  Reddit `poll_s = 10`.

Each variant plays twice:
1. in real time (one match minute = 60 s) for the first wave of posts (the first 3 minutes
   after each goal): post -> stored, post -> kept, post -> on the page (the first /api/stream
   event after which the page shows that clip: the clip kept and its goal confirmed), and
   goal -> first clip on the page, p50 / p95 per source;
2. 15 times faster (every interval of the config scaled by 1/15 as well) for the whole hour:
   whether the mirrors posted 40 and 44 minutes after the goal are found, and the source
   requests each goal cost.
Writes bench/results/latency.{json,md}.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import os
import platform
import time
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from footyd import config as config_mod
from footyd.clients.store import Store
from footyd.config import Config
from footyd.config.models import DEFAULT_SCHEDULE
from footyd.demo import script as demo_script
from footyd.demo.runner import Demo, DemoOptions
from footyd.sim.clips import ClipHost
from footyd.sim.net import free_port

RESULTS = Path(__file__).parent / "results"
SCRIPT = Path(__file__).parent / "latency_day.toml"
WAVE_MIN = 3.5  # real-time run: the first wave of posts, plus time to process the last one
LATE_SPEED = 15.0  # the schedule's densest step (20 s) stays >= 1 s, the config's floor
LATE_END_MIN = 62.0  # scaled run: past the schedule's last attempt (50 min) for every goal
VARIANTS: dict[str, dict[str, Any]] = {
    "before": {"before_confirm": False, "feeds_push": False, "schedule": [], "reddit_poll_s": 30.0},
    "after": {"before_confirm": True, "feeds_push": True, "schedule": DEFAULT_SCHEDULE,
              "reddit_poll_s": 10.0},
}
SOURCES = {"fake": "search (X-like, per request)", "reddit": "reddit (feed)"}


class LatencyDemo(Demo):
    """The demo's simulators and daemon, with footyd's default config (times scaled by `k`)."""

    def __init__(self, options: DemoOptions, variant: Mapping[str, Any]) -> None:
        super().__init__(options)
        self.variant = variant

    def _config(self, uri: str, env: Mapping[str, str]) -> Config:
        k = self.minute_s / 60.0  # 1 in real time; 1 / LATE_SPEED in the scaled run
        teams = sorted({t.id for fx in self.script.fixtures for t in (fx.home, fx.away)})
        assert self._reddit is not None
        self.page_url = f"http://127.0.0.1:{free_port()}/"
        health = f"127.0.0.1:{free_port()}"
        self.health_url = f"http://{health}/healthz"
        v = self.variant
        tree: dict[str, Any] = {
            "api_football": {"base_url": self._sim.base_url, "api_key": self._sim.key,
                             "daily_reserve": 0},
            "scope": {"teams": teams},
            "monitor": {"poll_interval_s": 30.0 * k, "poll_floor_s": min(15.0, 30.0 * k),
                        "staging_check_interval_s": 900.0 * k},
            "search": {"sources": ["fake", "reddit"], "before_confirm": v["before_confirm"],
                       "feeds_push": v["feeds_push"], "interval_s": 60.0 * k,
                       "schedule": [[u * k, e * k] for u, e in v["schedule"]],
                       "window_margin_s": 120.0 * k, "due_scan_s": 5.0 * k},
            "sources": {"fake": {"base_url": self._host.base_url},
                        "reddit": {**self._reddit.source_config(), "poll_s": v["reddit_poll_s"] * k,
                                   "max_age_min": 20.0, "requests_per_min": min(1000, round(60 / k))}},
            "download": {"scratch_dir": str(self.workdir / "scratch"),
                         "allow_private_addresses": True},  # the simulators are on loopback
            "mongo": {"uri": uri, "database": f"latency_{os.getpid()}_{int(time.time())}"},
            "storage": {"kind": "local", "local_dir": str(self.workdir / "clips")},
            "health": {"listen": health},
            "web": {"enabled": True, "listen": self.page_url[7:-1]},
            "log": {"level": "info", "format": "json"},
        }
        return config_mod.build(tree, env={})

    def _post_url(self, host: ClipHost, clip: str, n: int) -> str:
        """Each post links its own URL, as on Reddit."""
        return f"{host.media_url(clip)}?via=reddit&post={n}"

    @property
    def store(self) -> Store:
        assert self._store is not None
        return self._store

    def goal_times(self) -> dict[tuple[int, str], datetime]:
        """(fixture id, scorer) -> when the goal happened (the simulator's clock)."""
        assert self._clock is not None
        out = {}
        for g in self.script.goals:
            fx = self.script.fixture(g.fixture)
            step = next(s for s in fx.timeline if s.goal is not None and s.goal.key == g.key)
            assert step.goal is not None
            out[(g.fixture, str(step.goal.player))] = demo_script.goal_time(self.script, g, self._clock)
        return out


async def follow_stream(url: str, seen: list[tuple[float, str, dict[str, Any]]]) -> None:
    """Record (wall time, event kind, data) of every /api/stream event, as a page gets them."""
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(url + "api/stream", timeout=aiohttp.ClientTimeout(total=None)) as resp:
                    kind = None
                    async for raw in resp.content:
                        line = raw.decode().rstrip("\n")
                        if line.startswith("event:"):
                            kind = line[6:].strip()
                        elif line.startswith("data:") and kind in ("clip", "goal"):
                            seen.append((time.time(), kind, json.loads(line[5:])))
            except (aiohttp.ClientError, ConnectionError):
                await asyncio.sleep(0.2)  # the web server is still starting


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 1)


def summary(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "p50": pct(values, 0.5), "p95": pct(values, 0.95)}


def _ts(value: Any) -> float | None:
    if not isinstance(value, datetime):
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


async def play(name: str, variant: Mapping[str, Any], *, speed: float, minutes: float,
               mongo_uri: str | None, clip_dir: Path, workdir: Path | None = None) -> dict[str, Any]:
    """Play the day for `minutes` match minutes; the clips, goals and stream events it left."""
    opts = DemoOptions(script=SCRIPT, speed=speed, mongo_uri=mongo_uri, plain=True,
                       out=io.StringIO(), clip_dir=clip_dir, web=True, dir=workdir)
    seen: list[tuple[float, str, dict[str, Any]]] = []
    demo = LatencyDemo(opts, variant)
    async with demo:
        stream = asyncio.create_task(follow_stream(str(demo.page_url), seen))
        try:
            await asyncio.sleep(minutes * demo.minute_s)
        finally:
            stream.cancel()
            await asyncio.gather(stream, return_exceptions=True)
        goals = [g async for g in demo.store.goals.find({})]
        clips = [c async for c in demo.store.clips.find({}, {"fingerprint": 0})]
        times = demo.goal_times()
        searches = len(demo._host.searches)
        reddit_reads = demo._reddit.listing_requests if demo._reddit else 0
    print(f"  {name} x{speed:g}: {len(goals)} goals, {len(clips)} clips, {len(seen)} stream events")
    return {"goals": goals, "clips": clips, "seen": seen, "times": times, "searches": searches,
            "reddit_reads": reddit_reads, "minute_s": demo.minute_s}


def wave_figures(run: dict[str, Any]) -> dict[str, Any]:
    """Latencies of the first wave, per source, from MongoDB timestamps and stream arrivals."""
    goals = {g["_id"]: g for g in run["goals"]}
    public_at: dict[str, float] = {}  # goal -> first stream event showing it confirmed
    kept_seen: dict[str, float] = {}  # clip -> first stream event showing it kept
    for at, kind, data in run["seen"]:
        if kind == "goal" and data.get("confirmed_at") and data.get("state") != "pending":
            public_at.setdefault(data["id"], at)
        elif kind == "clip" and data.get("state") == "kept":
            kept_seen.setdefault(data["id"], at)
    per: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    first_on_page: dict[str, float] = {}
    for c in run["clips"]:
        posted = _ts(c.get("posted_at"))
        if posted is None:
            continue
        src = per[c.get("source", "?")]
        if (stored := _ts(c.get("stored_at"))) is not None:
            src["post_to_stored_s"].append(stored - posted)
        if (kept := _ts(c.get("kept_at"))) is not None:
            src["post_to_kept_s"].append(kept - posted)
        if c["_id"] in kept_seen and c["goal_id"] in public_at:
            shown = max(kept_seen[c["_id"]], public_at[c["goal_id"]])
            src["post_to_page_s"].append(shown - posted)
            first_on_page[c["goal_id"]] = min(first_on_page.get(c["goal_id"], shown), shown)
    goal_to_page = []
    sighted_to_confirmed = []
    for gid, shown in first_on_page.items():
        g = goals[gid]
        happened = run["times"].get((g["fixture_id"], g.get("scorer_name")))
        if happened is not None:
            goal_to_page.append(shown - happened.timestamp())
    for g in goals.values():
        seen_at, confirmed = _ts(g.get("first_seen_at")), _ts(g.get("confirmed_at"))
        if seen_at is not None and confirmed is not None:
            sighted_to_confirmed.append(confirmed - seen_at)
    return {
        "sources": {SOURCES.get(s, s): {k: summary(v) for k, v in sorted(d.items())}
                    for s, d in sorted(per.items())},
        "goal_to_first_clip_on_page_s": summary(goal_to_page),
        "goals_with_a_clip_on_page": f"{len(first_on_page)}/{len(goals)}",
        "first_sighting_to_confirmed_s": summary(sighted_to_confirmed),
    }


def late_figures(run: dict[str, Any]) -> dict[str, Any]:
    """Whether the 40- and 44-minute mirrors were found, and what each goal cost in requests."""
    minute_s = run["minute_s"]
    late = {"fake": 0, "reddit": 0}
    for c in run["clips"]:
        g = next((g for g in run["goals"] if g["_id"] == c["goal_id"]), None)
        posted = _ts(c.get("posted_at"))
        happened = run["times"].get((g["fixture_id"], g.get("scorer_name"))) if g else None
        if posted is not None and happened is not None and posted - happened.timestamp() > 30 * minute_s:
            late[c.get("source", "?")] = late.get(c.get("source", "?"), 0) + 1
    goals = max(1, len(run["goals"]))
    attempts = [len(g.get("search_attempt_ids") or []) for g in run["goals"]]
    return {
        "late_copies_found": {SOURCES.get(s, s): f"{n}/{len(run['goals'])}" for s, n in late.items()},
        "search_requests_per_goal": round(run["searches"] / goals, 1),
        "search_attempts_per_goal_max": max(attempts, default=0),
        "reddit_listing_reads_per_hour": round(run["reddit_reads"] * 60.0 / LATE_END_MIN, 1),
    }


def markdown(figures: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [f"# Latency: post -> on the page ({meta['date']}, {meta['machine']})", "",
             "Real daemon on the simulators, default config; `python -m bench.latency`.", "",
             "| variant | source | post -> stored p50 / p95 | post -> kept p50 / p95 | post -> on page p50 / p95 |",
             "|---|---|---|---|---|"]
    for name, fig in figures.items():
        for src, d in fig["wave"]["sources"].items():
            cell = [f"{d[k]['p50']} / {d[k]['p95']} s (n={d[k]['n']})" if k in d else "-"
                    for k in ("post_to_stored_s", "post_to_kept_s", "post_to_page_s")]
            lines.append(f"| {name} | {src} | " + " | ".join(cell) + " |")
    lines += ["", "| variant | goal -> first clip on page p50 / p95 | first sighting -> confirmed p50 | "
              "late copies found (40, 44 min) | search requests per goal | Reddit reads per hour |",
              "|---|---|---|---|---|---|"]
    for name, fig in figures.items():
        w, lt = fig["wave"], fig["late"]
        g = w["goal_to_first_clip_on_page_s"]
        found = ", ".join(f"{k}: {v}" for k, v in lt["late_copies_found"].items())
        lines.append(f"| {name} | {g['p50']} / {g['p95']} s ({w['goals_with_a_clip_on_page']} goals) | "
                     f"{w['first_sighting_to_confirmed_s']['p50']} s | {found} | "
                     f"{lt['search_requests_per_goal']} | {lt['reddit_listing_reads_per_hour']} |")
    return "\n".join(lines) + "\n"


async def main() -> dict[str, Any]:
    clip_dir = Path(os.environ.get("FOOTYD_BENCH_CLIPS", RESULTS.parent / ".latency-clips"))
    uri = os.environ.get("FOOTYD_BENCH_MONGO_URI")
    figures: dict[str, Any] = {}
    started = time.monotonic()
    for name, variant in VARIANTS.items():
        print(f"{name}: real time, {WAVE_MIN + 5:g} min ...", flush=True)
        wave = wave_figures(await play(name, variant, speed=1.0, minutes=5 + WAVE_MIN,
                                       mongo_uri=uri, clip_dir=clip_dir))
        print(json.dumps(wave), flush=True)
        print(f"{name}: x{LATE_SPEED:g}, {LATE_END_MIN:g} match minutes ...", flush=True)
        late = await play(name, variant, speed=LATE_SPEED, minutes=LATE_END_MIN, mongo_uri=uri,
                          clip_dir=clip_dir)
        figures[name] = {"wave": wave, "late": late_figures(late)}
        print(json.dumps(figures[name], indent=1), flush=True)
    meta = {"date": datetime.now(UTC).date().isoformat(), "machine": f"{platform.machine()}, "
            f"{os.cpu_count()} CPUs", "wall_s": round(time.monotonic() - started),
            "script": SCRIPT.name}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latency.json").write_text(json.dumps({"meta": meta, "variants": figures}, indent=1,
                                                     default=str) + "\n")
    md = markdown(figures, meta)
    (RESULTS / "latency.md").write_text(md)
    print(md)
    return figures


if __name__ == "__main__":
    asyncio.run(main())
