"""The web API against a seeded database: every endpoint, errors, token rule, Range, the SSE stream."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from footyd import config as config_mod
from footyd.clients.blobs import LocalBlobStore, S3BlobStore
from footyd.clients.store import Store
from footyd.errors import ConfigError, ExitCode
from tests.plugins.daemon import DaemonFactory, base_config, free_port, write_toml
from tests.plugins.servers import MongoServer, S3Server
from tests.plugins.web import (
    FX_LATER,
    FX_LIVE,
    FX_YESTERDAY,
    SeededDay,
    StartWeb,
    next_event,
    read_sse,
    seed_day,
)


@pytest.fixture
async def seeded(store: Store, local_store: LocalBlobStore, h264_video: Path) -> SeededDay:
    return await seed_day(store, local_store, h264_video)


async def get(url: str, **kw: Any) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
    async with aiohttp.ClientSession() as http, http.get(url, **kw) as resp:
        body = await resp.json() if resp.content_type == "application/json" else await resp.read()
        return resp.status, body, resp.headers


async def test_fixtures_of_a_day(seeded: SeededDay, local_store: LocalBlobStore,
                                 start_web: StartWeb) -> None:
    web = await start_web(local_store)
    status, body, _ = await get(f"{web.url}/api/fixtures")
    assert status == 200
    assert body["date"] == seeded.now.date().isoformat()
    assert [f["id"] for f in body["fixtures"]] == [FX_LIVE, FX_LATER]
    live = body["fixtures"][0]
    assert live["score"] == {"home": 2, "away": 1, "penalty": None}  # no shootout
    assert (live["status"], live["minute"], live["stage"]) == ("2H", 67, "active")
    assert live["home"]["name"] == "Arsenal" and "api" not in live
    yesterday = (seeded.now - timedelta(days=1)).date().isoformat()
    status, body, _ = await get(f"{web.url}/api/fixtures", params={"date": yesterday})
    assert status == 200 and [f["id"] for f in body["fixtures"]] == [FX_YESTERDAY]


async def test_every_answer_names_the_replica_that_served_it(
        seeded: SeededDay, local_store: LocalBlobStore, start_web: StartWeb) -> None:
    # several replicas may serve the page behind one address: the answer says which one did
    web = await start_web(local_store, replica="host-a-123-abc")
    for path in ("/api/fixtures", "/api/fixtures/999999", "/", "/ops", "/static/app.js"):
        _status, _body, headers = await get(f"{web.url}{path}")
        assert headers["X-Footyd-Replica"] == "host-a-123-abc", path
    _status, body, _ = await get(f"{web.url}/static/fan.js")
    assert b"X-Footyd-Replica" in body  # the page shows it (footer: answered by ...)


@pytest.mark.parametrize("query", [{"date": "2026-13-01"}, {"date": "yesterday"},
                                   {"date": "2026-1-1"}, {"day": "2026-01-01"}])
async def test_fixtures_bad_params_are_400_json(store: Store, local_store: LocalBlobStore,
                                                start_web: StartWeb, query: dict[str, str]) -> None:
    web = await start_web(local_store)
    status, body, _ = await get(f"{web.url}/api/fixtures", params=query)
    assert status == 400 and body["status"] == 400 and body["error"]


async def test_fixture_with_goals_and_clip_counts(seeded: SeededDay, local_store: LocalBlobStore,
                                                  start_web: StartWeb) -> None:
    web = await start_web(local_store)
    status, body, _ = await get(f"{web.url}/api/fixtures/{FX_LIVE}")
    assert status == 200 and body["fixture"]["id"] == FX_LIVE
    goals = body["goals"]
    assert [g["id"] for g in goals] == [seeded.goals[k] for k in ("searching", "cancelled", "done")]
    assert [g["state"] for g in goals] == ["searching", "cancelled", "done"]
    assert goals[0]["scorer"] == "Bukayo Saka" and goals[0]["minute"] == "23'"
    assert goals[2]["scorer"] is None
    assert goals[0]["clip_counts"] | {} == {"kept": 2, "duplicate": 1, "rejected": 1, "failed": 1,
                                            "downloaded": 0, "discovered": 1, "retracted": 0}
    assert goals[1]["clips"] == []


async def test_goal_lists_kept_first_then_duplicates_rejected_failed(
        seeded: SeededDay, local_store: LocalBlobStore, start_web: StartWeb) -> None:
    web = await start_web(local_store)
    status, body, _ = await get(f"{web.url}/api/goals/{seeded.goals['searching']}")
    assert status == 200
    clips = body["goal"]["clips"]
    c = seeded.clips
    assert [x["id"] for x in clips] == [c["kept_hd"], c["kept_sd"], c["duplicate"], c["rejected"],
                                        c["failed"], c["discovered"]]
    by_id = {x["id"]: x for x in clips}
    assert by_id[c["duplicate"]]["duplicate_of"] == c["kept_hd"]
    assert by_id[c["rejected"]]["reason"].startswith("filtered:")
    assert by_id[c["failed"]]["reason"] == "not_found: HTTP 404"
    assert by_id[c["kept_hd"]]["video_url"] == f"/api/clips/{c['kept_hd']}/video"
    assert [x["id"] for x in clips if x["video_url"]] == [c["kept_hd"], c["kept_sd"]]


@pytest.mark.parametrize(("path", "status"), [
    ("/api/fixtures/424242", 404), ("/api/fixtures/abc", 400), ("/api/fixtures/-3", 400),
    ("/api/fixtures/99999999999999999999", 400),
    ("/api/goals/g-unknown", 404), ("/api/goals/bad$id", 400),
    ("/api/clips/c-unknown/video", 404), ("/api/clips/bad$id/video", 400),
    ("/api/nothing-here", 404),
])
async def test_unknown_ids_404_bad_ids_400_json(seeded: SeededDay, local_store: LocalBlobStore,
                                                start_web: StartWeb, path: str, status: int) -> None:
    web = await start_web(local_store)
    got, body, headers = await get(web.url + path)
    assert got == status
    assert headers["Content-Type"].startswith("application/json") and body["status"] == status


async def test_clip_without_stored_video_is_404(seeded: SeededDay, local_store: LocalBlobStore,
                                                start_web: StartWeb) -> None:
    web = await start_web(local_store)
    for role in ("duplicate", "rejected", "discovered"):
        status, body, _ = await get(f"{web.url}/api/clips/{seeded.clips[role]}/video")
        assert status == 404 and "no stored video" in body["error"]


async def test_clip_key_outside_the_store_is_never_served(
        seeded: SeededDay, store: Store, local_store: LocalBlobStore, start_web: StartWeb) -> None:
    web = await start_web(local_store)
    await store.clips.insert_one({"_id": "cevil", "goal_id": seeded.goals["done"], "fixture_id": FX_LIVE,
                                  "source_url": "https://x.example/evil", "state": "kept",
                                  "blob_key": "../../../../etc/passwd"})
    status, body, _ = await get(f"{web.url}/api/clips/cevil/video")
    assert status == 404 and body["status"] == 404


async def test_local_clip_served_with_range(seeded: SeededDay, local_store: LocalBlobStore,
                                            start_web: StartWeb, h264_video: Path) -> None:
    web = await start_web(local_store)
    data = await asyncio.to_thread(h264_video.read_bytes)
    url = f"{web.url}/api/clips/{seeded.clips['kept_hd']}/video"
    status, body, headers = await get(url)
    assert status == 200 and body == data
    assert headers["Content-Type"] == "video/mp4" and headers["Accept-Ranges"] == "bytes"
    status, body, headers = await get(url, headers={"Range": "bytes=100-1123"})
    assert status == 206 and body == data[100:1124]
    assert headers["Content-Range"] == f"bytes 100-1123/{len(data)}"
    status, body, headers = await get(url, headers={"Range": "bytes=-50"})
    assert status == 206 and body == data[-50:]
    status, _, _ = await get(url, headers={"Range": f"bytes={len(data) + 10}-"})
    assert status == 416


async def test_s3_clip_redirects_to_short_lived_presigned_url(
        store: Store, s3_store: S3BlobStore, start_web: StartWeb, h264_video: Path) -> None:
    seeded = await seed_day(store, s3_store, h264_video)
    web = await start_web(s3_store, presign_ttl_s=60)
    url = f"{web.url}/api/clips/{seeded.clips['kept_sd']}/video"
    data = await asyncio.to_thread(h264_video.read_bytes)
    async with aiohttp.ClientSession() as http:
        async with http.get(url, allow_redirects=False) as resp:
            assert resp.status == 302
            location = resp.headers["Location"]
        assert s3_store.bucket in location and "Signature" in location
        assert "Expires=" in location or "X-Amz-Expires=60" in location
        async with http.get(location) as resp:
            assert resp.status == 200 and await resp.read() == data


async def test_token_guards_the_api(seeded: SeededDay, local_store: LocalBlobStore,
                                    start_web: StartWeb) -> None:
    web = await start_web(local_store, token="s3cret-token")
    api = f"{web.url}/api/fixtures"
    status, body, headers = await get(api)
    assert status == 401 and headers["WWW-Authenticate"] == "Bearer" and body["status"] == 401
    assert (await get(api, headers={"Authorization": "Bearer wrong"}))[0] == 401
    assert (await get(api, params={"token": "s3cret-token-"}))[0] == 401
    assert (await get(api, headers={"Authorization": "Bearer s3cret-token"}))[0] == 200
    assert (await get(api, params={"token": "s3cret-token"}))[0] == 200
    video = f"{web.url}/api/clips/{seeded.clips['kept_sd']}/video"
    assert (await get(video))[0] == 401
    assert (await get(video, params={"token": "s3cret-token"}))[0] == 200
    status, page, _ = await get(web.url + "/")  # the page holds no data: it asks for the token
    assert status == 200 and b"fan.js" in page


@pytest.mark.parametrize("listen", ["0.0.0.0:8464", "[::]:8464", "192.168.1.5:80", "example.com:8464"])
def test_token_required_off_loopback(listen: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_mod.build({"web": {"enabled": True, "listen": listen}}, env={})
    assert "web.token" in str(err.value)
    cfg = config_mod.build({"web": {"enabled": True, "listen": listen, "token": "t" * 16}}, env={})
    assert cfg.web.listen == listen
    for ok in ("127.0.0.1:8464", "[::1]:8464", "localhost:1"):
        assert config_mod.build({"web": {"enabled": True, "listen": ok}}, env={}).web.enabled


@pytest.mark.parametrize("command", ["check-config", "run"])
async def test_off_loopback_without_token_exits_78(tmp_path: Path, command: str) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-a-file-0123456789\n")
    bad = write_toml(tmp_path / "bad.toml", {"web": {"enabled": True, "listen": "0.0.0.0:8464"}})
    good = write_toml(tmp_path / "good.toml", {"web": {"enabled": True, "listen": "0.0.0.0:8464",
                                                        "token_file": str(token_file)}})
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOOTYD_")}

    async def run(cfg: Path) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "footyd", command, "-c", str(cfg), env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        return proc.returncode or 0, out.decode()

    code, out = await run(bad)
    assert code == ExitCode.CONFIG, out
    assert "web.token" in out
    if command == "check-config":
        code, out = await run(good)
        assert code == 0, out
        assert "from-a-file" not in out and 'web.listen = "0.0.0.0:8464"' in out


async def open_stream(http: aiohttp.ClientSession, base: str, **headers: str) -> aiohttp.ClientResponse:
    resp = await http.get(f"{base}/api/stream", headers=headers)
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    hello = await read_sse(resp)
    assert hello.event == "hello" and hello.id is None
    return resp


@pytest.mark.parametrize("feed", ["auto", "poll"])
async def test_stream_delivers_a_change_within_a_second(
        seeded: SeededDay, store: Store, local_store: LocalBlobStore, start_web: StartWeb,
        feed: str) -> None:
    web = await start_web(local_store, feed=feed, poll_interval_s=0.2)
    assert web.feed is not None and web.feed.source == ("change_stream" if feed == "auto" else "poll")
    gid = seeded.goals["searching"]
    async with aiohttp.ClientSession() as http:
        resp = await open_stream(http, web.url)
        await store.goals.update_one({"_id": gid}, {"$set": {"scorer_name": "B. Saka", "state": "done"}})
        written = time.monotonic()
        msg = await asyncio.wait_for(next_event(resp, "goal"), timeout=1.0)
        took_s = time.monotonic() - written
        assert msg.data["id"] == gid and msg.data["scorer"] == "B. Saka" and msg.data["state"] == "done"
        assert took_s < 1.0
        await store.clips.update_one({"_id": seeded.clips["discovered"]},
                                     {"$set": {"state": "rejected", "reason": "filtered: too short"}})
        msg = await asyncio.wait_for(next_event(resp, "clip"), timeout=1.0)
        assert msg.data["reason"] == "filtered: too short" and msg.data["goal_id"] == gid
        await store.clips.delete_one({"_id": seeded.clips["failed"]})  # e.g. retention
        msg = await asyncio.wait_for(next_event(resp, "clip"), timeout=1.0)
        assert msg.data == {"id": seeded.clips["failed"], "deleted": True}
        await store.fixtures.update_one({"_id": FX_LIVE}, {"$set": {"elapsed": 68}})
        msg = await asyncio.wait_for(next_event(resp), timeout=1.0)
        assert msg.event == "fixture" and msg.data["minute"] == 68
        # a write that changes nothing shown (every monitor poll) is not an event
        await store.fixtures.update_one({"_id": FX_LIVE}, {"$set": {"last_polled_at": datetime.now(UTC)}})
        await store.fixtures.update_one({"_id": FX_LIVE}, {"$set": {"elapsed": 69}})
        msg = await asyncio.wait_for(next_event(resp), timeout=1.0)
        assert msg.event == "fixture" and msg.data["minute"] == 69
        resp.close()


async def test_stream_resumes_from_last_event_id(seeded: SeededDay, store: Store,
                                                 local_store: LocalBlobStore, start_web: StartWeb) -> None:
    web = await start_web(local_store)
    async with aiohttp.ClientSession() as http:
        resp = await open_stream(http, web.url)
        # one write at a time: updateLookup reads the document as it is when the change is read,
        # so two quick writes may both show the later state (and the second one is then no change)
        await store.fixtures.update_one({"_id": FX_LIVE}, {"$set": {"elapsed": 70}})
        first = await asyncio.wait_for(next_event(resp), 5)
        await store.fixtures.update_one({"_id": FX_LIVE}, {"$set": {"elapsed": 71}})
        second = await asyncio.wait_for(next_event(resp), 5)
        assert [first.data["minute"], second.data["minute"]] == [70, 71]
        resp.close()
        # changes while the client is away (a probe subscriber tells when the feed has them)
        assert web.feed is not None
        probe, _ = web.feed.subscribe(None)
        await store.fixtures.update_one({"_id": FX_LIVE}, {"$set": {"elapsed": 72}})
        await store.goals.update_one({"_id": seeded.goals["done"]}, {"$set": {"scorer_name": "Rice"}})
        for _ in range(2):
            await asyncio.wait_for(probe.queue.get(), 5)
        web.feed.unsubscribe(probe)
        assert first.id is not None
        resp = await open_stream(http, web.url, **{"Last-Event-ID": first.id})
        got = [await asyncio.wait_for(next_event(resp), 5) for _ in range(3)]
        assert [(m.event, m.data.get("minute"), m.data.get("scorer")) for m in got] == [
            ("fixture", 71, None), ("fixture", 72, None), ("goal", "61'", "Rice")]
        assert got[0].id == second.id and got[2].id == web.feed.last_id
        resp.close()
        # an id from another process (or long gone): the client is told to reload
        resp = await open_stream(http, web.url, **{"Last-Event-ID": "0abc-3"})
        reset = await asyncio.wait_for(next_event(resp), 5)
        assert reset.event == "reset" and reset.id == web.feed.last_id
        resp.close()
        status, body, _ = await get(f"{web.url}/api/stream", headers={"Last-Event-ID": "garbage"})
        assert status == 400 and body["status"] == 400


async def test_streams_are_capped(seeded: SeededDay, local_store: LocalBlobStore,
                                  start_web: StartWeb) -> None:
    web = await start_web(local_store, max_streams=1)
    async with aiohttp.ClientSession() as http:
        first = await open_stream(http, web.url)
        status, body, _ = await get(f"{web.url}/api/stream")
        assert status == 503 and body["error"] == "too many open streams"
        first.close()


async def test_stream_sends_keepalive_comments(seeded: SeededDay, local_store: LocalBlobStore,
                                               start_web: StartWeb) -> None:
    web = await start_web(local_store, keepalive_s=0.2)
    async with aiohttp.ClientSession() as http:
        resp = await open_stream(http, web.url)
        msg = await asyncio.wait_for(read_sse(resp), 2)
        assert msg.comment == "keep-alive"
        resp.close()


async def test_daemon_serves_the_web_api_and_stops_with_a_stream_open(
        mongo_server: MongoServer, s3_server: S3Server, tmp_path: Path,
        daemon_factory: DaemonFactory, mongo_cfg: Any) -> None:
    tree = base_config(mongo_server, s3_server, tmp_path, mongo_cfg.database)
    port = free_port()
    tree["web"] = {"enabled": True, "listen": f"127.0.0.1:{port}"}
    daemon = await daemon_factory(tree)
    await daemon.wait_notify("READY=1")
    feed = await daemon.wait_log("web_feed_started")
    assert feed["source"] == "change_stream"  # SecantusDB supports change streams
    base = f"http://127.0.0.1:{port}"
    try:
        status, body, _ = await get(f"{base}/api/fixtures")
        assert status == 200 and body["fixtures"] == []
        status, page, _ = await get(f"{base}/")
        assert status == 200 and b"<title>footyd" in page
        status, js, _ = await get(f"{base}/static/app.js")
        assert status == 200 and b"EventSource" in js
        async with aiohttp.ClientSession() as http:
            resp = await open_stream(http, base)
            daemon.send(signal.SIGTERM)  # an open stream must not hold up the drain
            assert await daemon.wait_exit(30) == ExitCode.OK
            with pytest.raises((EOFError, aiohttp.ClientError)):
                while True:
                    await read_sse(resp)
    finally:
        async with Store(mongo_cfg) as s:
            await s.db.client.drop_database(mongo_cfg.database)

