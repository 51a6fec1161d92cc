"""Crash run: the demo match day against the real daemon, SIGKILLed at chosen moments.

Run from the repository root: `python -m bench.chaos [--seed N] [--kills K]` (about 8 minutes).
It plays footyd/sim/scripts/demo_day.toml (four matches: a VAR cancellation, a re-credit, an
unknown scorer named later, extra time and a shootout; one goal's clips come from two sources)
against `footyd run` in a subprocess, with S3 (moto behind a fault proxy), webhooks and the page
on. Two runs with the same day, one after the other:

- baseline: no kill, no outage (the API calls and the time the day takes without chaos);
- chaos: the daemon's process group is SIGKILLed `--kills` times (default 10), each aimed at a
  moment: mid-download (after `ytdlp_started`), mid-fingerprint (after `ytdlp_fetched`),
  mid-upload (the video PUT held at S3), mid-dedup (after `clip_stored`), mid-webhook (the
  delivery held by the receiver), and restarted each time; MongoDB is stopped and started again
  once between two kills, and S3 refuses every request for 60 s.

At the end of each run: every goal as the script says, each distinct clip kept once per goal, no
duplicate goal, S3 objects == objects held by clips, no incomplete multipart upload, no scratch
file, every webhook event recorded once and received at least once, API calls within the day's
budget, and the page (a client of /api/stream that reloads on `reset`) showing what MongoDB
holds. Prints every kill, READY time after each restart and the time to settle after the last;
a failing run prints its seed and how to rerun it. Writes bench/results/chaos.{json,md}; exits 0
once it ran, whatever it found (the problems are in chaos.md), as every bench does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from statistics import median
from typing import Any

from bench.chaos_parts import ChaosPlan, ChaosResult
from bench.chaos_run import ChaosRun

RESULTS = Path(__file__).parent / "results"


async def play(plan: ChaosPlan) -> ChaosResult:
    with tempfile.TemporaryDirectory(prefix="footyd-chaos-") as tmp:
        return await ChaosRun(plan, Path(tmp)).run()


def _figures(result: ChaosResult, wall_s: float) -> dict[str, Any]:
    ready = [k.ready_s for k in result.kills]
    return {"seed": result.plan.seed, "ok": result.ok, "wall_s": round(wall_s, 1),
            "kills": [asdict(k) for k in result.kills],
            "kills_in_flight": sum(k.in_flight for k in result.kills),
            "ready_s_median": round(median(ready), 2) if ready else None,
            "ready_s_max": max(ready) if ready else None,
            **result.facts, "problems": result.problems}


def _markdown(base: dict[str, Any], chaos: dict[str, Any]) -> str:
    rows = [("result", "OK" if base["ok"] else "FAILED", "OK" if chaos["ok"] else "FAILED"),
            ("kills (in flight)", "0", f"{len(chaos['kills'])} ({chaos['kills_in_flight']})"),
            ("READY after a restart, median / max (s)", f"{base.get('first_ready_s')}",
             f"{chaos['ready_s_median']} / {chaos['ready_s_max']}"),
            ("settled after the last kill / after the day's last event (s)", "-",
             f"{chaos.get('converge_s_after_last_kill')} / {chaos.get('settled_s_after_day_end')}"),
            ("failed starts (MongoDB or S3 away: exit, restarted)", "0",
             str(chaos.get("failed_starts", 0))),
            ("API calls (budget)", f"{base['api_calls']} ({base['api_budget']})",
             f"{chaos['api_calls']} ({chaos['api_budget']})"),
            ("webhook events", base.get("webhook_events", ""), chaos.get("webhook_events", "")),
            ("S3 objects at the end", str(base.get("s3_objects")), str(chaos.get("s3_objects"))),
            ("wall time (s)", str(base["wall_s"]), str(chaos["wall_s"]))]
    out = ["# Crash run", "",
           f"Seed {chaos['seed']}; MongoDB restart {chaos.get('mongo_restart')}; "
           f"S3 outage {chaos.get('s3_outage')}; the page's first event after the MongoDB "
           f"restart {chaos.get('page_event_after_mongo_restart_s')} s later.", "",
           "| | baseline (no kill) | chaos |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    out += ["", "| kill | target | at (s) | in flight | READY after (s) |", "|---|---|---|---|---|"]
    out += [f"| {k['n']} | {k['target']} | {k['at_s']} | {k['in_flight']} | {k['ready_s']} |"
            for k in chaos["kills"]]
    problems = base["problems"] + chaos["problems"]
    out += ["", "Problems: " + ("none" if not problems else "; ".join(problems)), ""]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=None, help="replay a run (default: random)")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--minute-s", type=float, default=1.0, help="real seconds per match minute")
    parser.add_argument("--s3-outage-s", type=float, default=60.0)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    print(f"crash run: seed {seed} (rerun: python -m bench.chaos --seed {seed})", flush=True)
    out: dict[str, dict[str, Any]] = {}
    for name, plan in (
            ("baseline", ChaosPlan(seed=seed, kills=0, minute_s=args.minute_s, s3_outage_s=0.0)),
            ("chaos", ChaosPlan(seed=seed, kills=args.kills, minute_s=args.minute_s,
                                s3_outage_s=args.s3_outage_s))):
        t0 = time.monotonic()
        result = asyncio.run(play(plan))
        print(f"[{name}] " + result.text(), flush=True)
        out[name] = _figures(result, time.monotonic() - t0)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count(),
            "load": os.getloadavg(), "python": platform.python_version()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "chaos.json").write_text(json.dumps({"meta": meta, **out}, indent=1, default=str))
    (RESULTS / "chaos.md").write_text(_markdown(out["baseline"], out["chaos"]))
    # what the run found is its result (chaos.md says it); only a run that cannot run fails
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
