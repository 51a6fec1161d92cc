"""The change feed behind /api/stream: MongoDB change streams, or a cheap poll, into numbered events."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import structlog
from pymongo.errors import OperationFailure, PyMongoError

from footyd.clients.store import Store
from footyd.config import WebConfig
from footyd.web.views import HEAVY_FIELDS, View, clip_view, fixture_view, goal_view

log = structlog.get_logger(__name__)

KINDS = {"fixtures": ("fixture", fixture_view), "goals": ("goal", goal_view),
         "clips": ("clip", clip_view)}
SEEN_MAX = 100_000  # per-document digests kept to drop no-op updates (LRU)
SUBSCRIBER_QUEUE = 1000  # events buffered per client; a slower client is dropped and resumes
RETRY_S = 2.0


@dataclass(frozen=True)
class Event:
    """One numbered change; `id` is `<epoch>-<seq>` so a restart never resumes wrongly."""

    seq: int
    id: str
    kind: str  # fixture | goal | clip | reset
    data: View

    def encode(self) -> bytes:
        body = json.dumps(self.data, separators=(",", ":"), default=str)
        head = f"id: {self.id}\n" if self.id else ""  # no id: the client's resume point stays
        return f"{head}event: {self.kind}\ndata: {body}\n\n".encode()


class Subscriber:
    """One SSE client's queue; `None` ends the stream (shutdown or overflow)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(SUBSCRIBER_QUEUE + 1)
        self.dropped = False

    def push(self, item: Event | None) -> None:
        if self.dropped:
            return
        if item is not None and self.queue.qsize() >= SUBSCRIBER_QUEUE:
            self.dropped = True  # it reconnects with Last-Event-ID and catches up from the buffer
            item = None
        self.queue.put_nowait(item)


class ChangeFeed:
    """Publishes fixture/goal/clip views that changed; keeps the last events for resume."""

    def __init__(self, cfg: WebConfig, store: Store, *, clock: Callable[[], datetime] | None = None) -> None:
        self._cfg = cfg
        self._store = store
        self._clock = clock or (lambda: datetime.now(UTC))
        self.epoch = f"{int(time.time() * 1000):x}{os.getpid() % 4096:03x}"
        self._seq = 0
        self._buffer: deque[Event] = deque(maxlen=cfg.resume_buffer)
        self._seen: OrderedDict[tuple[str, Any], str] = OrderedDict()
        self._subscribers: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self.source = ""

    # -- lifecycle ---------------------------------------------------------------------------
    async def __aenter__(self) -> ChangeFeed:
        stream = None
        reason = "configured"
        if self._cfg.feed != "poll":
            try:
                stream = await self._open_stream(None)
            except OperationFailure as exc:
                if self._cfg.feed == "change_stream":
                    raise
                reason = f"change streams unsupported: {exc.code}"
        self.source = "change_stream" if stream is not None else "poll"
        if stream is None:
            known = await self._poll_once(None)  # the baseline: later polls publish differences
            self._task = asyncio.create_task(self._poll_loop(known), name="web-feed-poll")
        else:
            self._task = asyncio.create_task(self._stream_loop(stream), name="web-feed-stream")
        log.info("web_feed_started", source=self.source, reason=reason if stream is None else None,
                 poll_interval_s=self._cfg.poll_interval_s if stream is None else None)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for sub in list(self._subscribers):
            sub.push(None)

    # -- subscribers -------------------------------------------------------------------------
    @property
    def last_id(self) -> str:
        return f"{self.epoch}-{self._seq}"

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def subscribe(self, last_event_id: str | None) -> tuple[Subscriber, list[Event]]:
        """A new subscriber and what it missed since `last_event_id` (or one reset event)."""
        sub = Subscriber()
        self._subscribers.add(sub)
        return sub, self.backlog(last_event_id)

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)

    def backlog(self, last_event_id: str | None) -> list[Event]:
        """Events after `last_event_id`; a reset event when they are no longer all held."""
        if last_event_id is None:
            return []
        epoch, _, seq_raw = last_event_id.partition("-")
        seq = int(seq_raw) if seq_raw.isascii() and seq_raw.isdigit() else -1
        oldest = self._buffer[0].seq if self._buffer else self._seq + 1
        if epoch != self.epoch or seq < 0 or seq > self._seq or seq < oldest - 1:
            # another process, or too far behind: the client reloads, then follows from here
            return [Event(self._seq, self.last_id, "reset", {"last_id": self.last_id})]
        return [ev for ev in self._buffer if ev.seq > seq]

    # -- publishing --------------------------------------------------------------------------
    def publish(self, collection: str, doc_id: Any, view: View | None) -> Event | None:
        """Number and fan out a change, unless the view is what was last sent for that doc."""
        kind = KINDS[collection][0]
        data = view if view is not None else {"id": doc_id, "deleted": True}
        if not self._remember(kind, doc_id, data):
            return None
        return self._emit(kind, data)

    def _remember(self, kind: str, doc_id: Any, data: View) -> bool:
        """Record what was sent for a doc; False when it is what was sent last time."""
        digest = hashlib.blake2b(json.dumps(data, sort_keys=True, default=str).encode(),
                                 digest_size=12).hexdigest()
        key = (kind, doc_id)
        if self._seen.get(key) == digest:
            return False
        self._seen[key] = digest
        self._seen.move_to_end(key)
        while len(self._seen) > SEEN_MAX:
            self._seen.popitem(last=False)
        return True

    def _emit(self, kind: str, data: View) -> Event:
        self._seq += 1
        event = Event(self._seq, self.last_id, kind, data)
        self._buffer.append(event)
        for sub in list(self._subscribers):
            sub.push(event)
        return event

    def _reset(self, why: str) -> None:
        log.warning("web_feed_reset", reason=why)
        self._seen.clear()
        self._emit("reset", {"reason": why})

    # -- change streams ----------------------------------------------------------------------
    async def _open_stream(self, resume_token: Any) -> Any:
        # only what views need crosses the wire (the monitor rewrites each raw API snapshot per poll)
        drop = {"updateDescription": 0, **{f"fullDocument.{k}": 0 for k in HEAVY_FIELDS}}
        match = {"ns.coll": {"$in": sorted(KINDS)},
                 "operationType": {"$in": ["insert", "update", "replace", "delete"]}}
        pipeline: list[dict[str, Any]] = [{"$match": match}, {"$project": drop}]
        return await self._store.db.watch(pipeline, full_document="updateLookup",
                                          resume_after=resume_token)

    async def _stream_loop(self, stream: Any) -> None:
        token: Any = None
        while True:
            try:
                async with stream:
                    async for change in stream:
                        token = stream.resume_token
                        self._on_change(change)
            except PyMongoError as exc:
                log.warning("web_feed_stream_error", error=type(exc).__name__, exc_info=True)
            await asyncio.sleep(RETRY_S)
            stream, token = await self._reopen(token)

    async def _reopen(self, token: Any) -> tuple[Any, Any]:
        """A stream resumed after `token`; when that point is gone, a fresh one and a reset event."""
        while True:
            try:
                return await self._open_stream(token), token
            except OperationFailure as exc:
                if token is not None:
                    token = None  # clients reload, then follow the fresh stream
                    self._reset("change stream history lost")
                    continue
                log.warning("web_feed_stream_error", error=type(exc).__name__, code=exc.code)
            except PyMongoError as exc:
                log.warning("web_feed_stream_error", error=type(exc).__name__)
            await asyncio.sleep(RETRY_S)

    def _on_change(self, change: dict[str, Any]) -> None:
        collection = change.get("ns", {}).get("coll")
        if collection not in KINDS:
            return
        doc_id = change.get("documentKey", {}).get("_id")
        doc = change.get("fullDocument")
        if change.get("operationType") == "delete" or doc is None:
            self.publish(collection, doc_id, None)
            return
        self.publish(collection, doc_id, KINDS[collection][1](doc))

    # -- poll fallback -----------------------------------------------------------------------
    async def _poll_loop(self, known: dict[str, set[Any]]) -> None:
        while True:
            await asyncio.sleep(self._cfg.poll_interval_s)
            try:
                known = await self._poll_once(known)
            except asyncio.CancelledError:
                raise
            except PyMongoError as exc:
                log.warning("web_feed_poll_failed", error=type(exc).__name__)

    async def _poll_once(self, known: dict[str, set[Any]] | None) -> dict[str, set[Any]]:
        """Read the watched window (fixtures near today, their goals and clips); publish diffs."""
        now = self._clock()
        window = timedelta(days=self._cfg.poll_window_days, hours=12)
        db = self._store
        fixtures = [d async for d in db.fixtures.find(
            {"kickoff": {"$gte": now - window, "$lt": now + window}}, HEAVY_FIELDS)]
        ids = [d["_id"] for d in fixtures]
        goals = [d async for d in db.goals.find({"fixture_id": {"$in": ids}}, HEAVY_FIELDS)]
        clips = [d async for d in db.clips.find({"fixture_id": {"$in": ids}}, HEAVY_FIELDS)]
        current: dict[str, set[Any]] = {}
        for collection, docs in (("fixtures", fixtures), ("goals", goals), ("clips", clips)):
            kind, view = KINDS[collection]
            current[collection] = {d["_id"] for d in docs}
            for d in docs:
                if known is None:  # the first read is the baseline, not a change
                    self._remember(kind, d["_id"], view(d))
                else:
                    self.publish(collection, d["_id"], view(d))
            for gone in (known or {}).get(collection, set()) - current[collection]:
                self.publish(collection, gone, None)
        return current
