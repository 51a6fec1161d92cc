"""Notification tests: a real aiohttp webhook receiver (scripted answers) and seeded events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from footyd.clients.blobs import S3BlobStore
from footyd.clients.store import Store
from tests.plugins.http import serve_app

HANG = -1  # a scripted answer: never respond (until the receiver stops)


@dataclass
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered (HANG when it never did)

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def event_id(self) -> str:
        return self.headers.get("X-Footyd-Event-Id", "")


@dataclass
class Receiver:
    """Answers each path from its script (then `default`); every request is recorded."""

    base_url: str = ""
    default: int = 200
    script: dict[str, list[int]] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)  # per path, on every answer
    requests: list[Received] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path}"

    def on(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == f"/{path}"]

    def ok(self, path: str) -> list[Received]:
        return [r for r in self.on(path) if 200 <= r.status < 300]

    async def wait(self, predicate: Any, timeout_s: float = 30.0) -> None:
        """Wait until predicate() holds (re-checked on every request)."""

        async def _wait() -> None:
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(_wait(), timeout_s)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        queue = self.script.get(request.path.lstrip("/"), [])
        status = queue.pop(0) if queue else self.default
        rec = Received(request.path, dict(request.headers), body, status)
        self.requests.append(rec)
        self.changed.set()
        if status == HANG:
            await self.released.wait()  # the client times out first; released at teardown
            return web.Response(status=200)
        return web.Response(status=status, text="ok" if status < 300 else "no",
                            headers=self.headers.get(request.path.lstrip("/"), {}))


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    """A running receiver on a loopback port."""
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/{path}", rec._handle)
    async with serve_app(app) as base_url:
        rec.base_url = base_url
        try:
            yield rec
        finally:
            rec.released.set()


FIXTURE_ID = 9001


async def seed_events(store: Store, blobs: S3BlobStore, now: datetime, tmp: Path) -> dict[str, str]:
    """A fixture with one goal (confirmed, a kept clip replaced by a better one) and one
    cancelled goal; returns what each event id should be, by name."""
    await store.fixtures.insert_one({
        "_id": FIXTURE_ID, "stage": "active", "kickoff": now - timedelta(minutes=30),
        "league_id": 78, "league_name": "Bundesliga", "status": "1H",
        "home": {"id": 168, "name": "Bayer Leverkusen"}, "away": {"id": 157, "name": "Bayern <@everyone>"},
        "score": {"home": 1, "away": 0}})
    goal = {"fixture_id": FIXTURE_ID, "league_id": 78, "kickoff": now - timedelta(minutes=30),
            "team_id": 168, "team_name": "Bayer Leverkusen", "opponent_name": "Bayern",
            "elapsed": 23, "extra": None, "minute": 23, "scorer_name": "Florian Wirtz",
            "detail": "Normal Goal", "score_home": 1, "score_away": 0}
    await store.goals.insert_one({**goal, "_id": "g-ok", "state": "done", "confirmed_at": now})
    await store.goals.insert_one({**goal, "_id": "g-var", "minute": 30, "state": "cancelled",
                                  "confirmed_at": now, "cancelled_at": now})
    src = tmp / "clip.mp4"
    src.write_bytes(b"not really a video, but bytes in S3")
    key = blobs.key_for(str(FIXTURE_ID), "g-ok", "better.mp4")
    await blobs.put_file(key, src, content_type="video/mp4", metadata={})
    await store.clips.insert_one({"_id": "c-old", "goal_id": "g-ok", "fixture_id": FIXTURE_ID,
                                  "source_url": "https://x.com/a/status/1", "state": "duplicate",
                                  "kept_at": now, "deduped_at": now,
                                  "duplicate_of": "c-new", "blob_key": None})
    await store.clips.insert_one({"_id": "c-new", "goal_id": "g-ok", "fixture_id": FIXTURE_ID,
                                  "source_url": "https://x.com/b/status/2", "state": "kept",
                                  "kept_at": now, "blob_key": key,
                                  "width": 1280, "height": 720, "duration_s": 12.0})
    return {"confirmed": "goal_confirmed:g-ok", "confirmed_var": "goal_confirmed:g-var",
            "cancelled": "goal_cancelled:g-var", "kept_old": "clip_kept:c-old",
            "kept_new": "clip_kept:c-new", "replaced": "clip_replaced:c-old"}
