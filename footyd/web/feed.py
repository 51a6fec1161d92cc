"""The change feed behind /api/stream: changes (see follow.py) into numbered events for clients."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import structlog

from footyd.clients.store import Store
from footyd.clock import Clock
from footyd.config import WebConfig
from footyd.web.follow import KINDS, Follower
from footyd.web.views import View

log = structlog.get_logger(__name__)

SEEN_MAX = 100_000  # per-document digests kept to drop no-op updates (LRU)
SUBSCRIBER_QUEUE = 1000  # events buffered per client; a slower client is dropped and resumes


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

    def __init__(self, cfg: WebConfig, store: Store, *, clock: Clock | None = None) -> None:
        self._follower = Follower(cfg, store, self, clock or (lambda: datetime.now(UTC)))
        self.epoch = f"{int(time.time() * 1000):x}{os.getpid() % 4096:03x}"
        self._seq = 0
        self._buffer: deque[Event] = deque(maxlen=cfg.resume_buffer)
        self._seen: OrderedDict[tuple[str, Any], str] = OrderedDict()
        self._subscribers: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def __aenter__(self) -> ChangeFeed:
        stream = await self._follower.start()
        self._task = asyncio.create_task(self._follower.run(stream), name="web-feed")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._follower.close()
        for sub in list(self._subscribers):
            sub.push(None)

    @property
    def source(self) -> str:
        """Where changes come from now: change_stream or poll."""
        return self._follower.source

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
        if not self.remember(kind, doc_id, data):
            return None
        return self._emit(kind, data)

    def remember(self, kind: str, doc_id: Any, data: View) -> bool:
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

    def reset(self, why: str) -> None:
        """Forget what was sent and tell clients to reload."""
        log.warning("web_feed_reset", reason=why)
        self._seen.clear()
        self._emit("reset", {"reason": why})
