"""The page's change feed against a MongoDB that restarts or whose change streams stop answering."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from pymongo.errors import PyMongoError

from footyd.clients.store import Store
from footyd.config import MongoConfig, WebConfig
from footyd.sim.mongo import start_secantus, stop_secantus
from footyd.sim.net import free_port
from footyd.web.feed import ChangeFeed, Event, Subscriber

FID = 9101
BOUND_S = 30.0  # generous: the suite runs four workers on two cores


def _fixture() -> dict[str, Any]:
    return {"_id": FID, "kickoff": datetime.now(UTC), "status": "1H", "status_long": "First Half",
            "elapsed": 1, "league_id": 39, "league_name": "Premier League", "season": 2026,
            "stage": "live", "home": {"id": 1, "name": "Home"}, "away": {"id": 2, "name": "Away"},
            "score": {"home": 0, "away": 0}}


class StallProxy:
    """A TCP relay to MongoDB that, while `stall` is set, swallows getMore (and so never answers it)."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream = upstream_port
        self.stall = False
        self.stalled = 0  # getMore commands swallowed
        self._tasks: set[asyncio.Task[None]] = set()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    inspect: bool) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                if inspect and self.stall and b"getMore\x00" in chunk:
                    self.stalled += 1
                    await reader.read()  # hold this connection, answer nothing, until it closes
                    break
                writer.write(chunk)
                await writer.drain()
        writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream)
        pumps = [asyncio.create_task(self._pump(reader, up_writer, True)),
                 asyncio.create_task(self._pump(up_reader, writer, False))]
        self._tasks.update(pumps)
        await asyncio.gather(*pumps, return_exceptions=True)
        self._tasks.difference_update(pumps)

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[int]:
        server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        try:
            yield server.sockets[0].getsockname()[1]
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()


async def _next(sub: Subscriber, kinds: set[str]) -> Event:
    """The subscriber's next event of one of `kinds` (others are skipped)."""
    async with asyncio.timeout(BOUND_S):
        while True:
            event = await sub.queue.get()
            assert event is not None, "the feed ended the stream"
            if event.kind in kinds:
                return event


async def _minute(sub: Subscriber, minute: int) -> Event:
    """The fixture event showing `minute` (earlier states may come first); never a reset."""
    while True:
        event = await _next(sub, {"fixture", "reset"})
        assert event.kind == "fixture", event
        if event.data.get("minute") == minute:
            return event


async def _until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(BOUND_S):
        while not check():  # noqa: ASYNC110 - the feed's source switch has no event to await
            await asyncio.sleep(0.05)


async def _write_elapsed(store: Store, minute: int) -> None:
    """Set the fixture's minute, retrying while the restarted server is not reachable yet."""
    # an upsert: SecantusDB may lose its last writes to a SIGKILL
    doc = {k: v for k, v in _fixture().items() if k != "_id"} | {"elapsed": minute}
    async with asyncio.timeout(BOUND_S):
        while True:
            try:
                await store.fixtures.update_one({"_id": FID}, {"$set": doc}, upsert=True)
                return
            except PyMongoError:
                await asyncio.sleep(0.2)


@pytest.fixture
def own_mongo(tmp_path: Path) -> Any:
    """A MongoDB-wire server of this test's own, on a fixed port so it can be restarted on it."""
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> str:
        proc, uri = start_secantus(tmp_path, port=port)
        procs.append(proc)
        return uri

    def kill() -> None:
        procs[-1].send_signal(signal.SIGKILL)
        procs[-1].wait(timeout=30)

    start.kill = kill  # type: ignore[attr-defined]
    start.port = port  # type: ignore[attr-defined]
    yield start
    for proc in procs:
        stop_secantus(proc)


async def test_the_stream_follows_mongodb_through_a_kill_and_restart(own_mongo: Any) -> None:
    uri = own_mongo()
    cfg = MongoConfig(uri=SecretStr(uri), database="feed", server_selection_timeout_s=1.0)
    async with Store(cfg) as store:
        await store.fixtures.insert_one(_fixture())
        # no stall under load: a SIGKILLed SecantusDB restarting on a loaded CI machine was seen
        # silent for 8 s
        web = WebConfig(feed="change_stream", stream_stall_s=20.0, stream_audit_s=1.0)
        async with ChangeFeed(web, store) as feed:
            sub, _ = feed.subscribe(None)
            await _write_elapsed(store, 10)
            assert (await _next(sub, {"fixture"})).data["minute"] == 10
            own_mongo.kill()  # mid-getMore: the feed is always waiting on one
            own_mongo()  # back on the same port, same data
            await _write_elapsed(store, 11)
            # SecantusDB answers a stream resumed across its restart but never delivers on it (a
            # MongoDB would): the audit's poll sends minute 11 and the feed opens a fresh stream
            await _minute(sub, 11)
            assert feed.source == "change_stream"
            await _write_elapsed(store, 12)  # and it follows on
            await _minute(sub, 12)
            assert feed.source == "change_stream"


async def test_a_stream_that_stops_answering_falls_back_to_polling_and_comes_back(
        own_mongo: Any) -> None:
    own_mongo()
    proxy = StallProxy(own_mongo.port)
    async with proxy.serve() as port:
        cfg = MongoConfig(uri=SecretStr(f"mongodb://127.0.0.1:{port}/?retryWrites=false&directConnection=true"),
                          database="stall", server_selection_timeout_s=1.0)
        async with Store(cfg) as store:
            await store.fixtures.insert_one(_fixture())
            web = WebConfig(feed="auto", stream_stall_s=1.0, stream_retry_s=1.0, poll_interval_s=0.2)
            async with ChangeFeed(web, store) as feed:
                assert feed.source == "change_stream"
                sub, _ = feed.subscribe(None)
                await _write_elapsed(store, 20)
                assert (await _next(sub, {"fixture"})).data["minute"] == 20

                proxy.stall = True  # the server still answers queries, never a getMore
                reset = await _next(sub, {"reset"})  # changes may have been missed: clients reload
                assert "silent" in reset.data["reason"] and feed.source == "poll"
                await _write_elapsed(store, 21)
                polled = await _next(sub, {"fixture"})
                assert polled.data["minute"] == 21 and feed.source == "poll"
                # retries open a stream every second, but one that does not answer is not taken
                await _until(lambda: proxy.stalled >= 3)
                assert feed.source == "poll"

                proxy.stall = False
                await _until(lambda: feed.source == "change_stream")
                await _write_elapsed(store, 22)
                back = await _next(sub, {"fixture", "reset"})
                assert back.kind == "fixture" and back.data["minute"] == 22
                assert feed.source == "change_stream"


async def test_an_audit_that_races_a_write_waits_for_the_stream(own_mongo: Any) -> None:
    """A write between the stream's last read and the audit's poll is sent by the poll and then
    delivered by the stream: late, not missed, so the stream is kept. A stream that delivers
    nothing still counts as missing it."""
    uri = own_mongo()
    cfg = MongoConfig(uri=SecretStr(uri), database="race", server_selection_timeout_s=1.0)
    async with Store(cfg) as store:
        await store.fixtures.insert_one(_fixture())
        feed = ChangeFeed(WebConfig(feed="change_stream", stream_stall_s=20.0), store)
        follower = feed._follower  # not entered: the test plays the stream loop's audit itself
        stream = await follower.start()
        silent = await store.db.watch([{"$match": {"ns.coll": "nothing"}}], max_await_time_ms=200)
        try:
            sub, _ = feed.subscribe(None)
            await _write_elapsed(store, 30)  # the stream has not read it yet
            assert await follower._audit(stream) == 0
            assert (await _next(sub, {"fixture"})).data["minute"] == 30  # sent once, by the poll
            assert sub.queue.empty()  # the stream's copy was the same view: not sent again

            await _write_elapsed(store, 31)
            assert await follower._audit(silent) == 1
            assert (await _next(sub, {"fixture"})).data["minute"] == 31
        finally:
            await silent.close()
            await stream.close()
            await follower.close()
