"""Web fixtures: a seeded match day (fixtures, goals, clips, stored H.264 files) and the web server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import pytest

from footyd import records
from footyd.clients.blobs import BlobStore
from footyd.clients.store import Store
from footyd.config import WebConfig
from footyd.sim.clipgen import write_clip
from footyd.web.server import WebServer

FX_LIVE, FX_LATER, FX_YESTERDAY = 7001, 7002, 6999


@dataclass
class SeededDay:
    """What seed_day wrote: ids by role, the stored clip file."""

    now: datetime
    goals: dict[str, str] = field(default_factory=dict)  # role -> goal id
    clips: dict[str, str] = field(default_factory=dict)  # role -> clip id
    video: Path | None = None
    poster: bytes = b""  # seed_fan_day: the HD clip's poster JPEG


def _fixture(fid: int, kickoff: datetime, status: str, elapsed: int | None, score: tuple[Any, Any],
             home: str, away: str, stage: str) -> dict[str, Any]:
    return {"_id": fid, "kickoff": kickoff, "status": status, "status_long": status, "elapsed": elapsed,
            "league_id": 39, "league_name": "Premier League", "season": 2026, "stage": stage,
            "home": {"id": fid * 10 + 1, "name": home}, "away": {"id": fid * 10 + 2, "name": away},
            "score": {"home": score[0], "away": score[1]}, "api": {"big": "x" * 1000}}


def _goal(gid: str, fid: int, order: int, elapsed: int, scorer: str | None, state: str,
          now: datetime, **extra: Any) -> dict[str, Any]:
    return {"_id": gid, "fixture_id": fid, "team_id": fid * 10 + 1, "team_name": "Arsenal",
            "elapsed": elapsed, "extra": None, "minute": elapsed, "scorer_name": scorer,
            "assist_name": None, "detail": "Normal Goal", "score_home": order, "score_away": 0,
            "state": state, "first_seen_order": order, "first_seen_at": now, "confirmed_at": now,
            "updated_at": now, **extra}


async def seed_day(store: Store, blobs: BlobStore, video: Path, now: datetime | None = None) -> SeededDay:
    """A live fixture with three goals, one later today, one yesterday; clips in every state."""
    now = now or datetime.now(UTC)
    day = SeededDay(now=now, video=video)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    await store.fixtures.insert_many([
        _fixture(FX_LIVE, start + timedelta(minutes=1), "2H", 67, (2, 1), "Arsenal", "Chelsea", "active"),
        _fixture(FX_LATER, start + timedelta(hours=23, minutes=58), "NS", None, (None, None),
                 "Lyon", "Nice", "staging"),
        _fixture(FX_YESTERDAY, start - timedelta(hours=3), "FT", 90, (0, 0), "Roma", "Lazio", "completed"),
    ])
    day.goals = {"searching": f"g{FX_LIVE}-aaa", "cancelled": f"g{FX_LIVE}-bbb", "done": f"g{FX_LIVE}-ccc"}
    await store.goals.insert_many([
        _goal(day.goals["searching"], FX_LIVE, 1, 23, "Bukayo Saka", records.GOAL_SEARCHING, now),
        _goal(day.goals["cancelled"], FX_LIVE, 2, 55, "Kai Havertz", records.GOAL_CANCELLED, now,
              cancelled_at=now),
        _goal(day.goals["done"], FX_LIVE, 3, 61, None, records.GOAL_DONE, now, outcome="clips_kept"),
    ])
    gid = day.goals["searching"]
    size_bytes = (await asyncio.to_thread(video.stat)).st_size
    base = {"goal_id": gid, "fixture_id": FX_LIVE, "source": "fake", "created_at": now}
    roles = {
        "kept_sd": {"state": records.CLIP_KEPT, "width": 640, "height": 360, "duration_s": 3.0},
        "kept_hd": {"state": records.CLIP_KEPT, "width": 1280, "height": 720, "duration_s": 3.0},
        "duplicate": {"state": records.CLIP_DUPLICATE, "reason": "same clip (fingerprint)"},
        "rejected": {"state": records.CLIP_REJECTED, "reason": "filtered: aspect 0.56 (portrait)"},
        "failed": {"state": records.CLIP_FAILED, "reason": "not_found: HTTP 404"},
        "discovered": {"state": records.CLIP_DISCOVERED},
    }
    for n, (role, fields) in enumerate(roles.items()):
        clip_id = f"c{n:02d}{role.replace('_', '')}"
        day.clips[role] = clip_id
        doc = {"_id": clip_id, **base, "source_url": f"https://x.example/p/{n}",
               "post_url": f"https://x.example/p/{n}", "text": "Saka!", **fields}
        if fields["state"] == records.CLIP_KEPT:
            key = blobs.key_for(records.clip_key(FX_LIVE, gid, f"{n:016x}"))
            await blobs.put_file(key, video, content_type="video/mp4", metadata={"clip-id": clip_id})
            doc |= {"blob_key": key, "sha256": f"{n:064x}", "size_bytes": size_bytes,
                    "codec": "h264"}
        await store.clips.insert_one(doc)
    await store.clips.update_one({"_id": day.clips["duplicate"]},
                                 {"$set": {"duplicate_of": day.clips["kept_hd"]}})
    return day


@pytest.fixture(scope="session")
def h264_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A browser-playable clip (H.264 yuv420p mp4, moov first), 4 s at 640x360."""
    return write_clip(tmp_path_factory.mktemp("web") / "kept.mp4", seed=7, seconds=4.0, codec="h264")


StartWeb = Callable[..., Awaitable[WebServer]]


@pytest.fixture
async def start_web(store: Store) -> AsyncIterator[StartWeb]:
    """Start WebServers on a free loopback port over `store` and a given blob store."""
    servers: list[WebServer] = []

    async def _start(blobs: BlobStore, replica: str | None = None, **web: Any) -> WebServer:
        cfg = WebConfig.model_validate({"enabled": True, "listen": "127.0.0.1:0", **web})
        server = WebServer(cfg, store=store, blobs=blobs, replica=replica)
        await server.__aenter__()
        servers.append(server)
        return server

    yield _start
    for server in reversed(servers):
        await server.__aexit__(None, None, None)


@dataclass(frozen=True)
class SseMessage:
    event: str | None
    id: str | None
    data: Any
    comment: str | None = None


async def read_sse(resp: aiohttp.ClientResponse) -> SseMessage:
    """The next message (or comment) of an event stream."""
    fields: dict[str, str] = {}
    while True:
        raw = await resp.content.readline()
        if not raw:
            raise EOFError("stream closed")
        line = raw.decode().rstrip("\n")
        if line.startswith(":"):
            return SseMessage(None, None, None, comment=line[1:].strip())
        if not line:
            if "data" in fields or "event" in fields:
                data = json.loads(fields["data"]) if "data" in fields else None
                return SseMessage(fields.get("event"), fields.get("id"), data)
            fields.clear()  # a bare `retry:` block
            continue
        name, _, value = line.partition(":")
        fields[name] = value[1:] if value.startswith(" ") else value


async def next_event(resp: aiohttp.ClientResponse, kind: str | None = None) -> SseMessage:
    """The next real event (of `kind` when given), skipping comments and hello."""
    while True:
        msg = await read_sse(resp)
        if msg.event is not None and msg.event != "hello" and (kind is None or msg.event == kind):
            return msg


async def add_goal(store: Store, blobs: BlobStore, video: Path, *, fixture_id: int = FX_LIVE,
                   elapsed: int = 78, scorer: str = "Martin Ødegaard") -> tuple[str, str]:
    """A new confirmed goal with one kept, stored clip (what the pipeline leaves); its ids."""
    now = datetime.now(UTC)
    gid = f"g{fixture_id}-live{elapsed}"
    await store.goals.insert_one(_goal(gid, fixture_id, 9, elapsed, scorer, records.GOAL_SEARCHING, now))
    clip_id = f"c{elapsed}kept"
    key = blobs.key_for(records.clip_key(fixture_id, gid, f"{elapsed:016x}"))
    await blobs.put_file(key, video, content_type="video/mp4", metadata={"clip-id": clip_id})
    await store.clips.insert_one({
        "_id": clip_id, "goal_id": gid, "fixture_id": fixture_id, "source": "fake",
        "source_url": f"https://x.example/live/{elapsed}", "post_url": f"https://x.example/live/{elapsed}",
        "state": records.CLIP_KEPT, "width": 640, "height": 360, "duration_s": 4.0, "codec": "h264",
        "blob_key": key, "sha256": f"{elapsed:064x}", "created_at": now})
    return gid, clip_id


def poster_of(video: Path) -> bytes:
    """A JPEG of the video's frame at 1 s (what download stores as a poster)."""
    cap = cv2.VideoCapture(str(video))
    cap.set(cv2.CAP_PROP_POS_MSEC, 1000)
    ok, frame = cap.read()
    cap.release()
    assert ok, video
    ok, jpeg = cv2.imencode(".jpg", frame)
    assert ok
    return bytes(jpeg.tobytes())


async def seed_fan_day(store: Store, local_store: BlobStore, h264_video: Path,
                       tmp_path: Path) -> SeededDay:
    """seed_day, goals seen a minute apart, the HD clip with a poster, plus a pending goal
    (searched early: its kept clip must stay unseen) and a goal of yesterday's match."""
    seeded = await seed_day(store, local_store, h264_video)
    for n, role in enumerate(("searching", "cancelled", "done")):  # newest first
        await store.goals.update_one({"_id": seeded.goals[role]}, {"$set": {
            "first_seen_at": seeded.now - timedelta(minutes=8 + n), "opponent_name": "Chelsea",
            "assist_name": "Martin Ødegaard" if role == "searching" else None}})
    hd = await store.clips.find_one({"_id": seeded.clips["kept_hd"]})
    assert hd is not None
    poster = tmp_path / "poster.jpg"
    seeded.poster = await asyncio.to_thread(poster_of, h264_video)
    poster.write_bytes(seeded.poster)
    await local_store.put_file(records.poster_key(hd["blob_key"]), poster,
                               content_type="image/jpeg", metadata={})
    await store.clips.update_one({"_id": hd["_id"]}, {"$set": {
        "poster_key": records.poster_key(hd["blob_key"]), "bitrate_bps": 2e6,
        "permalink": "https://www.reddit.com/r/soccer/comments/abc/saka/"}})
    pending, _ = await add_goal(store, local_store, h264_video, elapsed=80, scorer="Declan Rice")
    await store.goals.update_one({"_id": pending}, {"$set": {"state": "pending", "confirmed_at": None}})
    seeded.goals["pending"] = pending
    old, _ = await add_goal(store, local_store, h264_video, fixture_id=FX_YESTERDAY, elapsed=12,
                            scorer="Paulo Dybala")
    await store.goals.update_one({"_id": old}, {"$set": {
        "first_seen_at": seeded.now - timedelta(days=1)}})
    seeded.goals["yesterday"] = old
    return seeded
