"""Pipeline overhead on loopback: goal confirmed -> best clip stored, against a bare fetch+put.

Run from the repository root: `python -m bench.pipeline_overhead`. Starts SecantusDB (or uses
FOOTYD_BENCH_MONGO_URI), moto's S3 server and the clip host; every candidate of the demo clip
script is already posted, so the time measured is footyd's own: search, download (direct GET
and yt-dlp), OpenCV validation, S3 upload, fingerprinting and dedup. The baseline, measured in the
same run, is the bare minimum for the same best clip: one HTTP GET and one S3 put.
Writes bench/results/pipeline_overhead.{json,md}.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import statistics
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from footyd.clients.blobs import S3BlobStore
from footyd.clients.store import Store
from footyd.config import Config, MongoConfig, StorageConfig
from footyd.procpool import ProcessPool
from footyd.runtime.wiring import open_video_pipeline
from footyd.sim.clips import ClipHost, generate_catalogue, load_script

RESULTS = Path(__file__).parent / "results"
RUNS = 3


async def _goal(store: Store, goal_id: str, at: datetime) -> None:
    await store.goals.insert_one({
        "_id": goal_id, "fixture_id": 1, "league_id": 78, "kickoff": at, "team_id": 168,
        "team_name": "Bayer Leverkusen", "opponent_id": 157, "opponent_name": "Bayern Munich",
        "elapsed": 23, "extra": None, "minute": 23, "scorer_id": 1, "scorer_name": "Florian Wirtz",
        "assist_name": None, "detail": "Normal Goal", "score_home": 1, "score_away": 0,
        "state": "confirmed", "first_seen_at": at, "confirmed_at": at, "next_search_at": at,
        "search_attempt_ids": [],
    })


async def one_run(uri: str, s3: dict[str, Any], host: ClipHost, scratch: Path,
                  goal_at: datetime) -> dict[str, float]:
    """Seconds from hand-off to: first clip stored, best clip kept, goal's clips all terminal."""
    cfg = Config.model_validate({
        "search": {"sources": ["fake"], "attempts": 1, "interval_s": 60, "schedule": []},
        "sources": {"fake": {"base_url": host.base_url}},
        "download": {"scratch_dir": str(scratch), "max_size_mb": 20, "timeout_s": 30,
                     "socket_timeout_s": 1, "max_attempts": 1,
                     "allow_private_addresses": True},  # the simulated clip host is loopback
        "dedup": {"workers": 2},
    })
    store = Store(MongoConfig.model_validate({"uri": uri, "database": f"b_{uuid.uuid4().hex[:8]}"}))
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    blobs = S3BlobStore(StorageConfig.model_validate({**s3, "bucket": bucket, "create_bucket": True}))
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(store)
        await stack.enter_async_context(blobs)
        pool = ProcessPool(2)
        stack.push_async_callback(pool.aclose, 5.0)
        pipeline, _stages = await open_video_pipeline(stack, cfg, store=store, blobs=blobs,
                                                      pool=pool, scan_interval_s=3600)
        await pool.run(len, [], timeout_s=30)  # warm the workers: measured separately (~0.4 s)
        await _goal(store, "g-bench", goal_at)
        started = time.perf_counter()
        await pipeline.put("search", "g-bench")
        first_stored = best_kept = None
        deadline = started + 120
        while best_kept is None and time.perf_counter() < deadline:
            await asyncio.sleep(0.02)  # sampling a timeline: there is no event to await per state
            if first_stored is None and await store.clips.find_one({"state": {"$in": ["downloaded", "kept"]}}):
                first_stored = time.perf_counter() - started
            best = await store.clips.find_one({"media_url": {"$regex": "a_720p"}, "state": "kept"})
            if best is not None:
                best_kept = time.perf_counter() - started
        if best_kept is None:
            raise RuntimeError("the best clip was not kept within 120 s")
        await pipeline.idle()
        all_done = time.perf_counter() - started
        await store.db.client.drop_database(store.db.name)
    return {"first_clip_stored_s": first_stored or 0.0, "best_clip_kept_s": best_kept,
            "all_clips_terminal_s": all_done}


async def baseline(s3: dict[str, Any], host: ClipHost, scratch: Path) -> float:
    """One GET of the best clip to disk and one S3 put: the floor for storing one clip."""
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    async with S3BlobStore(StorageConfig.model_validate({**s3, "bucket": bucket, "create_bucket": True})) as blobs:
        started = time.perf_counter()
        path = scratch / "baseline.mp4"
        async with aiohttp.ClientSession() as session, session.get(host.media_url("a_720p")) as resp:
            path.write_bytes(await resp.read())
        await blobs.put_file("baseline.mp4", path, content_type="video/mp4", metadata={})
        return time.perf_counter() - started


async def main() -> None:
    from moto.server import ThreadedMotoServer

    tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    uri = os.environ.get("FOOTYD_BENCH_MONGO_URI")
    proc = None
    if not uri:
        from footyd.sim.mongo import start_secantus

        proc, uri = start_secantus(tmp)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    mhost, mport = moto.get_host_and_port()
    s3 = {"kind": "s3", "endpoint_url": f"http://{mhost}:{mport}", "region": "us-east-1",
          "access_key_id": "bench", "secret_access_key": "bench"}
    clip_dir = tmp / "clips"
    generate_catalogue(clip_dir, codec="h264")  # as broadcasters post them
    try:
        runs, bases = [], []
        for _ in range(RUNS):
            async with ClipHost(clip_dir, script=load_script("demo")) as host:
                goal_at = datetime.now(UTC) - timedelta(minutes=10)  # every clip is posted
                host.goal_at("demo-1", goal_at)
                bases.append(await baseline(s3, host, tmp))
                scratch = tmp / f"scratch-{uuid.uuid4().hex[:6]}"
                runs.append(await one_run(uri, s3, host, scratch, goal_at))
        med = {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}
        base = round(statistics.median(bases), 3)
        result = {"date": datetime.now().date().isoformat(), "runs": RUNS, "median": med,
                  "baseline_get_put_s": base,
                  "ratio_best_kept_vs_baseline": round(med["best_clip_kept_s"] / base, 1),
                  "mongo": "real MongoDB" if os.environ.get("FOOTYD_BENCH_MONGO_URI")
                  else "SecantusDB stand-in (one request at a time: pessimistic)",
                  "candidates": len(load_script("demo").goals[0].candidates)}
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "pipeline_overhead.json").write_text(json.dumps(result, indent=2) + "\n")
        md = f"""# Pipeline overhead on loopback ({result['date']})

One goal, {result['candidates']} candidates already posted (the demo clip script: re-encodes, a trim,
a logo copy, a second clip, portrait, garbage, oversized, 404, a stalled body), median of {RUNS} runs,
{result['mongo']}.

| from goal hand-off to | seconds |
|---|---|
| first clip stored in S3 | {med['first_clip_stored_s']} |
| best clip (720p) kept after dedup | {med['best_clip_kept_s']} |
| every clip terminal (incl. the stalled body's 1 s `socket_timeout_s`) | {med['all_clips_terminal_s']} |
| baseline: one GET + one S3 put of the best clip | {base} |

Best clip kept is {result['ratio_best_kept_vs_baseline']}x the bare GET+put of that one clip; the
difference is searching, fetching 10 other candidates, OpenCV validation and fingerprinting.
The earlier production system measured a median of 270 s from goal to first clip, almost all of
it waiting for clips to be posted: footyd's own share is the figure above.
"""
        (RESULTS / "pipeline_overhead.md").write_text(md)
        print(md)
    finally:
        moto.stop()
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
