"""Where the page's changes come from: MongoDB change streams, audited and backed by a poll."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Protocol, TypeVar

import structlog
from pymongo.errors import OperationFailure, PyMongoError

from footyd.clients.store import Doc, Store
from footyd.clock import Clock
from footyd.config import WebConfig
from footyd.web.views import HEAVY_FIELDS, View, clip_view, fixture_view, goal_view

log = structlog.get_logger(__name__)

KINDS = {"fixtures": ("fixture", fixture_view), "goals": ("goal", goal_view),
         "clips": ("clip", clip_view)}
RETRY_S = 2.0
T = TypeVar("T")
Known = dict[str, set[Any]]  # collection -> ids the last poll read
Key = tuple[str, Any]  # (collection, _id) of one document
CATCH_UP_MAX = 1000  # change events an audit reads while the stream catches up with its poll


class Sink(Protocol):
    """What the follower feeds: the change feed's numbering and fan-out."""

    def publish(self, collection: str, doc_id: Any, view: View | None) -> object | None: ...
    def remember(self, kind: str, doc_id: Any, data: View) -> bool: ...
    def reset(self, why: str) -> None: ...


class _StreamsGone(Exception):
    """Change streams stopped answering or are refused: the feed polls instead."""


class Follower:
    """Follows change streams while they answer and deliver, polls while they do not."""

    def __init__(self, cfg: WebConfig, store: Store, sink: Sink, clock: Clock) -> None:
        self._cfg = cfg
        self._store = store
        self._sink = sink
        self._clock = clock
        self._known: Known | None = None  # None: the next poll is a baseline (remembered, not sent)
        self._abandoned: set[asyncio.Future[Any]] = set()  # cancelled driver calls yet to stop
        self.source = ""

    async def start(self) -> Any:
        """Open the first stream (None when polling) and take the poll's baseline."""
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
        await self._poll()  # the baseline: later polls (and audits) publish differences
        log.info("web_feed_started", source=self.source, reason=reason if stream is None else None,
                 poll_interval_s=self._cfg.poll_interval_s if stream is None else None)
        return stream

    async def run(self, stream: Any) -> None:
        """Change streams while they work, polling while they do not, back and forth."""
        while True:
            if stream is not None:
                why = await self._stream_loop(stream)
                self._switch("poll", why)
                # changes may have been missed: clients reload after the baseline was read, so
                # they miss nothing between it and the next poll
                read = await self._retried(self._read)
                self._reset(why)
                self._apply(read)
            stream = await self._poll_loop()
            self._switch("change_stream", "change streams answer again")

    async def _retried(self, call: Callable[[], Awaitable[T]]) -> T:
        """`call()` once MongoDB answers it (polling could not do better while it is away)."""
        while True:
            try:
                return await call()
            except PyMongoError as exc:
                log.warning("web_feed_poll_failed", error=type(exc).__name__)
            await asyncio.sleep(self._cfg.poll_interval_s)

    async def close(self) -> None:
        for task in list(self._abandoned):
            task.cancel()
        if self._abandoned:  # bounded: a call that ignores its cancellation is not waited for
            await asyncio.wait(self._abandoned, timeout=RETRY_S)

    def _switch(self, source: str, why: str) -> None:
        self.source = source
        log.warning("web_feed_source_changed", source=source, reason=why)

    def _reset(self, why: str) -> None:
        self._sink.reset(why)
        self._known = None

    async def _bounded(self, call: Awaitable[T], timeout_s: float) -> T:
        """`call`'s result within timeout_s, else TimeoutError without waiting for it to stop.

        pymongo 4.20 can take forever to cancel a getMore the server never answers, and
        wait_for would wait for that cancellation: the call is cancelled and left to finish."""
        task = asyncio.ensure_future(call)
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout_s)
        except asyncio.CancelledError:
            self._leave(task)
            raise
        if not done:
            self._leave(task)
            raise TimeoutError
        return task.result()

    def _leave(self, task: asyncio.Future[Any]) -> None:
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(self._abandoned.discard)

    # -- change streams ----------------------------------------------------------------------
    async def _open_stream(self, resume_token: Any) -> Any:
        # only what views need crosses the wire (the monitor rewrites each raw API snapshot per poll)
        drop = {"updateDescription": 0, **{f"fullDocument.{k}": 0 for k in HEAVY_FIELDS}}
        match = {"ns.coll": {"$in": sorted(KINDS)},
                 "operationType": {"$in": ["insert", "update", "replace", "delete"]}}
        pipeline: list[dict[str, Any]] = [{"$match": match}, {"$project": drop}]
        # each getMore answers within this even with no change, so silence means a stall
        await_ms = int(min(self._cfg.stream_stall_s / 4, 5.0) * 1000)
        return await self._store.db.watch(pipeline, full_document="updateLookup",
                                          resume_after=resume_token, max_await_time_ms=await_ms)

    async def _stream_loop(self, stream: Any) -> str:
        """Publish changes until the stream stalls or cannot be reopened; returns why it ended."""
        token: Any = None
        stall_s = self._cfg.stream_stall_s
        audit_at = time.monotonic() + self._cfg.stream_audit_s
        while True:
            try:
                while True:  # each getMore answers within max_await_time_ms, changes or not
                    change = await self._bounded(stream.try_next(), stall_s)
                    token = stream.resume_token
                    if change is not None:
                        self._on_change(change)
                    if time.monotonic() >= audit_at:
                        audit_at = time.monotonic() + self._cfg.stream_audit_s
                        if missed := await self._audit(stream):
                            # an answering stream that delivers nothing (SecantusDB after a
                            # restart): the poll sent what it missed; a fresh stream from here
                            log.warning("web_feed_stream_missed", changes=missed)
                            await self._close(stream)
                            stream, token = await self._reopen(None), None
                            await self._poll()  # what changed before the fresh stream began
            except TimeoutError:
                log.warning("web_feed_stream_stalled", stall_s=stall_s)
                await self._close(stream)
                return f"change stream silent for {stall_s:g} s"
            except _StreamsGone as exc:
                return str(exc)
            except PyMongoError as exc:
                log.warning("web_feed_stream_error", error=type(exc).__name__, exc_info=True)
            await self._close(stream)
            await asyncio.sleep(RETRY_S)
            try:
                stream = await self._reopen(token)
            except _StreamsGone as exc:
                return str(exc)

    async def _close(self, stream: Any) -> None:
        # a stalled server may not answer killCursors either
        with contextlib.suppress(PyMongoError, TimeoutError):
            await self._bounded(stream.close(), RETRY_S)

    async def _reopen(self, token: Any) -> Any:
        """A stream resumed after `token`; when that point is gone, a fresh one and a reset."""
        while True:
            try:
                return await self._bounded(self._open_stream(token), self._cfg.stream_stall_s)
            except TimeoutError:
                raise _StreamsGone("opening a change stream did not answer") from None
            except OperationFailure as exc:
                if token is None:
                    raise _StreamsGone(f"change streams refused: {exc.code}") from None
                token = None  # clients reload, then follow the fresh stream
                self._reset("change stream history lost")
                continue
            except PyMongoError as exc:  # MongoDB away: polling could not do better
                log.warning("web_feed_stream_error", error=type(exc).__name__)
            await asyncio.sleep(RETRY_S)

    async def _audit(self, stream: Any) -> int:
        """Poll, and count the changes it sent that the stream does not deliver either once it
        has caught up: a write between the stream's last read and the poll is only late."""
        sent = await self._poll()
        for _ in range(CATCH_UP_MAX):
            if not sent:
                break
            change = await self._bounded(stream.try_next(), self._cfg.stream_stall_s)
            if change is None:  # nothing more within max_await_time_ms: caught up
                break
            sent.discard(self._on_change(change))
        return len(sent)

    def _on_change(self, change: dict[str, Any]) -> Key | None:
        """Publish one change event; the document it is about (None: not a watched one)."""
        collection = change.get("ns", {}).get("coll")
        if collection not in KINDS:
            return None
        doc_id = change.get("documentKey", {}).get("_id")
        doc = change.get("fullDocument")
        if change.get("operationType") == "delete" or doc is None:
            self._sink.publish(collection, doc_id, None)
        else:
            self._sink.publish(collection, doc_id, KINDS[collection][1](doc))
        return collection, doc_id

    # -- polling -----------------------------------------------------------------------------
    async def _poll_loop(self) -> Any:
        """Poll; returns an open change stream once one answers (never in `poll` mode)."""
        retry_at = time.monotonic() + self._cfg.stream_retry_s
        while True:
            await asyncio.sleep(self._cfg.poll_interval_s)
            stream = None
            if self._cfg.feed != "poll" and time.monotonic() >= retry_at:
                stream = await self._try_stream()
                retry_at = time.monotonic() + self._cfg.stream_retry_s
            try:
                # after a stream opened, one last poll covers what changed before its start
                await self._poll()
            except PyMongoError as exc:
                log.warning("web_feed_poll_failed", error=type(exc).__name__)
                if stream is not None:
                    await self._close(stream)
                continue
            if stream is not None:
                return stream

    async def _try_stream(self) -> Any:
        """A fresh change stream if it opens and answers a getMore in time, else None."""
        stall_s = self._cfg.stream_stall_s
        try:
            stream = await self._bounded(self._open_stream(None), stall_s)
        except (PyMongoError, TimeoutError):
            return None
        try:  # a server may open streams and then never answer on them
            change = await self._bounded(stream.try_next(), stall_s)
        except (PyMongoError, TimeoutError):
            await self._close(stream)
            return None
        if change is not None:
            self._on_change(change)
        return stream

    async def _poll(self) -> set[Key]:
        """Read the watched window and publish what differs; returns the documents it sent."""
        return self._apply(await self._read())

    async def _read(self) -> dict[str, list[Doc]]:
        """The watched window: fixtures kicking off near today, their goals and clips."""
        now = self._clock()
        window = timedelta(days=self._cfg.poll_window_days, hours=12)
        db = self._store
        fixtures = [d async for d in db.fixtures.find(
            {"kickoff": {"$gte": now - window, "$lt": now + window}}, HEAVY_FIELDS)]
        ids = [d["_id"] for d in fixtures]
        goals = [d async for d in db.goals.find({"fixture_id": {"$in": ids}}, HEAVY_FIELDS)]
        clips = [d async for d in db.clips.find({"fixture_id": {"$in": ids}}, HEAVY_FIELDS)]
        return {"fixtures": fixtures, "goals": goals, "clips": clips}

    def _apply(self, read: dict[str, list[Doc]]) -> set[Key]:
        """Publish what differs from what was sent (a baseline only remembers it)."""
        known, current, published = self._known, {}, set()
        for collection, docs in read.items():
            kind, view = KINDS[collection]
            current[collection] = {d["_id"] for d in docs}
            for d in docs:
                if known is None:
                    self._sink.remember(kind, d["_id"], view(d))
                elif self._sink.publish(collection, d["_id"], view(d)) is not None:
                    published.add((collection, d["_id"]))
            for gone in (known or {}).get(collection, set()) - current[collection]:
                if self._sink.publish(collection, gone, None) is not None:
                    published.add((collection, gone))
        self._known = current
        return published
