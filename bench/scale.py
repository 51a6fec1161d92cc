"""Monitor poll cycle at scale: 200 live fixtures with realistic payloads, before and after.

Run from the repository root: `python -m bench.scale`. Starts SecantusDB (or uses
FOOTYD_BENCH_MONGO_URI) and the simulator with full `ids` payloads (lineups, statistics,
players: ~25 KB an item). The same driver (bench/scale_driver.py) runs in two subprocesses:
"before" imports footyd from the commit before issue 11 (BASE_COMMIT, extracted with
`git archive`), "after" from this tree. Writes bench/results/scale.{json,md}.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.mongo import bench_mongo
from footyd.sim.football import ManualClock, SimFootball, many

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BASE_COMMIT = "62457b7"  # main before issue 11: raw snapshot + ~5 round trips per fixture
FIXTURES = 200
LEAGUES = 10
CYCLES = 6


def _driver(tree: Path, base_url: str, uri: str, leagues: list[int]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "scale_driver.py"), base_url, uri, str(FIXTURES),
         str(CYCLES), ",".join(map(str, leagues))],
        env=env, cwd=tree, capture_output=True, text=True, timeout=3600, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"driver failed in {tree}: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _extract(tree: Path) -> None:
    """The footyd of BASE_COMMIT, for the "before" side."""
    archive = subprocess.run(["git", "archive", BASE_COMMIT], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "xf", "-", "-C", str(tree)], input=archive, check=True)


async def _run(uri: str, old_tree: Path) -> dict[str, Any]:
    script = many(FIXTURES, seed=200, kickoff_min=10, n_leagues=LEAGUES)
    leagues = sorted({f.league.id for f in script.fixtures})
    sim = SimFootball(script, clock=ManualClock(0.0), key="bench-key")
    await sim.start()
    try:
        before = await asyncio.to_thread(_driver, old_tree, sim.base_url, uri, leagues)
        after = await asyncio.to_thread(_driver, ROOT, sim.base_url, uri, leagues)
    finally:
        await sim.stop()
    return {"before": before, "after": after,
            "speedup": round(before["cycle_s_median"] / after["cycle_s_median"], 2),
            "bytes_ratio": round(before["bytes_written_per_cycle"]
                                 / max(1, after["bytes_written_per_cycle"]), 1)}


def _write(result: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(result, indent=2) + "\n")
    b, a = result["before"], result["after"]
    md = f"""# Monitor poll cycle at scale ({result['date']})

{FIXTURES} live fixtures in {LEAGUES} leagues, realistic `ids` payloads (lineups, statistics,
players), median of {CYCLES} consecutive cycles 30 s apart mid-match. Before = commit
{BASE_COMMIT} (raw snapshot stored on every poll, sequential round trips per fixture); after =
this tree (cheapest shape, changed fields only, one bulk write per answer). {result['mongo']}.

| | before | after |
|---|---|---|
| cycle time, median (max) | {b['cycle_s_median']} s ({b['cycle_s_max']} s) | {a['cycle_s_median']} s ({a['cycle_s_max']} s) |
| API calls per cycle | {b['api_calls_per_cycle']:g} | {a['api_calls_per_cycle']:g} |
| write operations per cycle | {b['writes_per_cycle']:g} | {a['writes_per_cycle']:g} |
| bytes written per cycle | {b['bytes_written_per_cycle']:,} | {a['bytes_written_per_cycle']:,} |
| database round trips per cycle | {b['db_round_trips_per_cycle']:g} | {a['db_round_trips_per_cycle']:g} |

Cycle **{result['speedup']}x** faster; **{result['bytes_ratio']}x** fewer bytes written.
"""
    (RESULTS / "scale.md").write_text(md)
    print(md)


async def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        old_tree = work / "before"
        old_tree.mkdir()
        await asyncio.to_thread(_extract, old_tree)
        with bench_mongo(work / "mongo") as (uri, note):
            result = {"date": datetime.now().date().isoformat(), "mongo": note,
                      **await _run(uri, old_tree)}
        _write(result)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
