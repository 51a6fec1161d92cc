"""The read-only JSON API: fixtures of a day, one fixture, one goal, a clip's video, the SSE stream."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import structlog
from aiohttp import web

from footyd import records
from footyd.clients.blobs import BlobStore
from footyd.clients.store import Store
from footyd.config import WebConfig
from footyd.errors import Retryable
from footyd.web import fan
from footyd.web.feed import ChangeFeed, Event, Subscriber
from footyd.web.views import (
    HEAVY_FIELDS,
    BadParam,
    clip_counts,
    clip_view,
    fixture_view,
    goal_view,
    parse_day,
    parse_doc_id,
    parse_event_id,
    parse_fixture_id,
    parse_int_param,
    sort_clips,
)

log = structlog.get_logger(__name__)

MAX_FIXTURES = 500
MAX_GOALS = 200
MAX_CLIPS = 2000
SSE_RETRY_MS = 2000


@runtime_checkable
class LocalFiles(Protocol):
    """A blob store whose keys are files on this machine (served with Range support)."""

    def local_path(self, key: str) -> Path: ...


@runtime_checkable
class Presigner(Protocol):
    """A blob store that can hand out short-lived GET URLs."""

    async def presigned_url(self, key: str, ttl_s: int) -> str: ...


def json_error(status: int, message: str, **extra: Any) -> web.Response:
    """The one error shape of the API: {"error": ..., "status": ...}."""
    return web.json_response({"error": message, "status": status, **extra}, status=status)


class Api:
    """Route handlers; reads MongoDB and the blob store, never writes."""

    def __init__(self, cfg: WebConfig, store: Store, blobs: BlobStore, feed: ChangeFeed,
                 *, clock: Callable[[], datetime] | None = None) -> None:
        self._cfg = cfg
        self._store = store
        self._blobs = blobs
        self._feed = feed
        self._clock = clock or (lambda: datetime.now(UTC))
        self._closing = asyncio.Event()

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/fixtures", self.fixtures)
        app.router.add_get("/api/goals", self.fan_goals)
        app.router.add_get("/api/fixtures/{fixture_id}", self.fixture)
        app.router.add_get("/api/goals/{goal_id}", self.goal)
        app.router.add_get("/api/clips/{clip_id}/video", self.clip_video)
        app.router.add_get("/api/clips/{clip_id}/poster", self.clip_poster)
        app.router.add_get("/api/stream", self.stream)

    def close(self) -> None:
        """End every open stream (shutdown)."""
        self._closing.set()

    async def _goals_with_clips(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        goals = [goal_view(d) async for d in self._store.goals.find(
            query, HEAVY_FIELDS).sort([("first_seen_order", 1), ("_id", 1)]).limit(MAX_GOALS)]
        by_goal: dict[Any, list[dict[str, Any]]] = {g["id"]: [] for g in goals}
        if goals:
            async for d in self._store.clips.find(
                    {"goal_id": {"$in": list(by_goal)}}, HEAVY_FIELDS).limit(MAX_CLIPS):
                by_goal[d["goal_id"]].append(clip_view(d))
        for g in goals:
            clips = sort_clips(by_goal[g["id"]])
            g["clips"], g["clip_counts"] = clips, clip_counts(clips)
        return goals

    async def fixtures(self, request: web.Request) -> web.Response:
        """GET /api/fixtures?date=YYYY-MM-DD (UTC day; default today)."""
        unknown = set(request.query) - {"date", "token"}
        if unknown:
            raise BadParam(f"unknown query parameter {sorted(unknown)[0]!r}")
        as_of = self._feed.last_id
        day, start, end = parse_day(request.query.get("date"), self._clock())
        docs = self._store.fixtures.find({"kickoff": {"$gte": start, "$lt": end}}, HEAVY_FIELDS)
        items = [fixture_view(d) async for d in docs.sort([("kickoff", 1), ("_id", 1)]).limit(MAX_FIXTURES)]
        return web.json_response({"date": day.isoformat(), "as_of": as_of, "fixtures": items})

    async def fixture(self, request: web.Request) -> web.Response:
        """GET /api/fixtures/{id}: the fixture and its goals, each with its clips."""
        fixture_id = parse_fixture_id(request.match_info["fixture_id"])
        as_of = self._feed.last_id
        doc = await self._store.fixtures.find_one({"_id": fixture_id}, HEAVY_FIELDS)
        if doc is None:
            return json_error(404, f"fixture {fixture_id} not found")
        goals = await self._goals_with_clips({"fixture_id": fixture_id})
        return web.json_response({"as_of": as_of, "fixture": fixture_view(doc), "goals": goals})

    async def goal(self, request: web.Request) -> web.Response:
        """GET /api/goals/{id}: the goal with its clips (kept, duplicates, rejected, failed)."""
        goal_id = parse_doc_id(request.match_info["goal_id"], "goal")
        as_of = self._feed.last_id
        goals = await self._goals_with_clips({"_id": goal_id})
        if not goals:
            return json_error(404, f"goal {goal_id} not found")
        return web.json_response({"as_of": as_of, "goal": goals[0]})

    async def fan_goals(self, request: web.Request) -> web.Response:
        """GET /api/goals?date=&team=&league= (or ?goal=ID): public goals, newest first."""
        q = request.query
        unknown = set(q) - {"date", "team", "league", "goal", "token"}
        if unknown:
            raise BadParam(f"unknown query parameter {sorted(unknown)[0]!r}")
        as_of = self._feed.last_id
        if "goal" in q:
            goals = await fan.fan_goals(self._store, {"_id": parse_doc_id(q["goal"], "goal")}, limit=1)
            if not goals:
                return json_error(404, f"goal {q['goal']} not found")
            return web.json_response({"as_of": as_of, "goals": goals})
        day, start, end = parse_day(q.get("date"), self._clock())
        team = parse_int_param(q.get("team"), "team")
        league = parse_int_param(q.get("league"), "league")
        goals = await fan.goals_of_matches(
            self._store, fan.fixture_query(start, end, team=team, league=league))
        fixtures = [fixture_view(d) async for d in self._store.fixtures.find(
            fan.fixture_query(start, end), HEAVY_FIELDS).limit(MAX_FIXTURES)]
        return web.json_response({"date": day.isoformat(), "as_of": as_of, "goals": goals,
                                  **fan.choices(fixtures)})

    async def clip_poster(self, request: web.Request) -> web.StreamResponse:
        """GET /api/clips/{id}/poster: the clip's poster JPEG (stored beside its video)."""
        clip_id = parse_doc_id(request.match_info["clip_id"], "clip")
        doc = await self._store.clips.find_one({"_id": clip_id}, {"state": 1, "poster_key": 1})
        key = (doc or {}).get("poster_key")
        if doc is None or doc.get("state") not in records.CLIP_HOLDS_BLOB or not isinstance(key, str):
            return json_error(404, f"clip {clip_id} has no poster")
        return await self._serve_blob(clip_id, key, "image/jpeg")

    async def clip_video(self, request: web.Request) -> web.StreamResponse:
        """GET /api/clips/{id}/video: the stored file (Range) or a redirect to a presigned URL."""
        clip_id = parse_doc_id(request.match_info["clip_id"], "clip")
        doc = await self._store.clips.find_one({"_id": clip_id}, {"state": 1, "blob_key": 1})
        if doc is None:
            return json_error(404, f"clip {clip_id} not found")
        key = doc.get("blob_key")
        if doc.get("state") not in records.CLIP_HOLDS_BLOB or not isinstance(key, str):
            return json_error(404, f"clip {clip_id} has no stored video", state=doc.get("state"))
        return await self._serve_blob(clip_id, key, "video/mp4")

    async def _serve_blob(self, clip_id: str, key: str, content_type: str) -> web.StreamResponse:
        """A stored object: the local file (Range), or a redirect to a presigned S3 URL."""
        blobs: object = self._blobs
        if isinstance(blobs, LocalFiles):
            try:
                path = blobs.local_path(key)
            except ValueError:
                return json_error(404, f"clip {clip_id} has no stored video")
            if not await asyncio.to_thread(path.is_file):
                return json_error(404, f"clip {clip_id} file is missing from the store")
            # content-addressed key: the bytes behind this URL never change
            return web.FileResponse(path, headers={"Content-Type": content_type,
                                                   "Cache-Control": "private, max-age=86400"})
        if isinstance(blobs, Presigner):
            try:
                url = await blobs.presigned_url(key, self._cfg.presign_ttl_s)
            except Retryable as exc:
                log.warning("web_presign_failed", clip_id=clip_id, error=str(exc))
                return json_error(503, "storage unavailable")
            raise web.HTTPFound(url, headers={"Cache-Control": "no-store"})
        return json_error(501, "this blob store cannot serve videos")

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """GET /api/stream: Server-Sent Events; resumes after `Last-Event-ID`."""
        last_id = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
        if last_id is not None:
            last_id = parse_event_id(last_id)
        if self._feed.subscribers >= self._cfg.max_streams:
            return json_error(503, "too many open streams")
        resp = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-store",
            "X-Accel-Buffering": "no"})
        sub: Subscriber | None = None
        try:
            sub, backlog = self._feed.subscribe(last_id)
            await resp.prepare(request)
            hello = Event(0, "", "hello",
                          {"last_id": self._feed.last_id, "source": self._feed.source})
            await self._write(resp, f"retry: {SSE_RETRY_MS}\n\n".encode() + hello.encode())
            for event in backlog:
                await self._write(resp, event.encode())
            await self._pump(resp, sub.queue)
        except TimeoutError:
            # a client that stops reading must not hold its slot (and its queue) forever
            log.info("web_stream_client_too_slow", write_timeout_s=self._cfg.write_timeout_s)
            if request.transport is not None:
                request.transport.abort()
        except ConnectionError:
            pass  # the client went away (reset, or the connection was lost mid-write)
        finally:
            if sub is not None:
                self._feed.unsubscribe(sub)
        return resp

    async def _write(self, resp: web.StreamResponse, data: bytes) -> None:
        """One write to a stream, within `write_timeout_s` (TimeoutError past it)."""
        await asyncio.wait_for(resp.write(data), self._cfg.write_timeout_s)

    async def _pump(self, resp: web.StreamResponse, queue: asyncio.Queue[Event | None]) -> None:
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            while not self._closing.is_set():
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, closing}, timeout=self._cfg.keepalive_s,
                                             return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    await asyncio.gather(getter, return_exceptions=True)
                    if closing in done:
                        return
                    await self._write(resp, b": keep-alive\n\n")
                    continue
                event = getter.result()
                if event is None:
                    return
                await self._write(resp, event.encode())
        finally:
            closing.cancel()
            await asyncio.gather(closing, return_exceptions=True)
