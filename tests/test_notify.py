"""Notify stage against a real aiohttp receiver, MongoDB-wire server and S3 (moto)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from footyd import config as config_mod
from footyd.cli.ops import render
from footyd.cli.status import status_report
from footyd.clients.blobs import S3BlobStore
from footyd.clients.retry_after import retry_after_s
from footyd.clients.store import Store
from footyd.clients.webhooks import WebhookClient
from footyd.config import Config
from footyd.metrics import STAGE_OUTCOMES
from footyd.pipeline import Pipeline, StageSpec
from footyd.procpool import ProcessPool
from footyd.runtime.wiring import open_video_pipeline
from footyd.stages.notify import NotifyStage, delivery_id
from footyd.stages.notify_body import discord_body, slack_body
from tests.plugins.clips import CLIP_T0, ClipHostFactory
from tests.plugins.notify import HANG, Receiver, receiver, seed_events

SECRET = "s3cret-hmac-key"


def _cfg(hooks: list[dict[str, Any]], **notify: Any) -> Config:
    return Config.model_validate({"notify": {"webhooks": hooks, "backoff_base_s": 0.05,
                                             "backoff_max_s": 0.2, **notify}})


@asynccontextmanager
async def running(cfg: Config, store: Store, blobs: S3BlobStore
                  ) -> AsyncIterator[tuple[NotifyStage, Pipeline]]:
    """The notify stage on a real pipeline with a fast due scan."""
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(WebhookClient())
        stage = NotifyStage(cfg, store, blobs, client)
        pipeline = await stack.enter_async_context(Pipeline(
            [StageSpec("notify", stage.handle, cfg.notify.workers, due=stage.due)],
            scan_interval_s=0.05))
        yield stage, pipeline


async def _states(store: Store) -> dict[str, dict[str, Any]]:
    return {d["event_id"] + "@" + d["webhook"]: d async for d in store.notifications.find({})}


async def _settled(store: Store, pipeline: Pipeline, n: int) -> None:
    """After the receiver saw the last answer: the handler in flight records it."""
    await pipeline.idle()
    assert await store.notifications.count_documents({"state": {"$ne": "pending"}}) == n


async def test_every_event_delivered_once_signed_with_a_presigned_clip_url(
        store: Store, s3_store: S3BlobStore, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    ids = await seed_events(store, s3_store, now, tmp_path)
    async with receiver() as rx:
        cfg = _cfg([{"url": rx.url("hook"), "secret": SECRET, "name": "main"}])
        async with running(cfg, store, s3_store) as (_stage, pipeline):
            await rx.wait(lambda: len(rx.ok("hook")) >= len(ids))
            await _settled(store, pipeline, len(ids))
            for _ in range(3):  # more due scans: nothing may be derived or sent again
                assert await pipeline.scan_once() == {"notify": 0}
                await pipeline.idle()
        got = rx.ok("hook")
        assert sorted(r.event_id for r in got) == sorted(ids.values())  # each exactly once
        for r in got:
            assert verify(SECRET, r.headers["X-Footyd-Signature"], r.event_id, r.body)
            assert r.json["id"] == r.event_id
        # a replay is refused by the receiver's check: an old time, another event, another body
        r = got[0]
        sig = r.headers["X-Footyd-Signature"]
        assert not verify(SECRET, sig, r.event_id, r.body, now_s=time.time() + 301)
        assert not verify(SECRET, sig, got[1].event_id, r.body)
        assert not verify(SECRET, sig, r.event_id, r.body + b" ")
        assert not verify("another secret", sig, r.event_id, r.body)
        body = next(r.json for r in got if r.event_id == ids["kept_new"])
        assert body["event"] == "clip_kept"
        assert body["fixture"]["home"]["name"] == "Bayer Leverkusen"
        assert body["fixture"]["away"]["name"] == "Bayern <@everyone>"
        assert (body["goal"]["score_home"], body["goal"]["score_away"]) == (1, 0)
        assert body["goal"]["minute"] == 23 and body["goal"]["scorer_name"] == "Florian Wirtz"
        async with aiohttp.ClientSession() as http, http.get(body["clip"]["url"]) as resp:
            assert resp.status == 200  # the presigned URL fetches the stored clip
            assert await resp.read() == b"not really a video, but bytes in S3"
        replaced = next(r.json for r in got if r.event_id == ids["replaced"])
        assert replaced["clip"]["id"] == "c-new" and replaced["replaced_clip_id"] == "c-old"
    goal = await store.goals.find_one({"_id": "g-ok"})
    assert goal is not None
    nid = delivery_id(ids["kept_new"], "main")
    assert goal["notifications"][nid]["state"] == "delivered"
    assert goal["notify_marks"]  # the source is marked once its deliveries are written


def verify(secret: str, header: str, event_id: str, body: bytes, *,
           now_s: float | None = None, tolerance_s: float = 300) -> bool:
    """A receiver's check, written from README's description (not footyd's code)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    if not parts.get("t", "").isdigit() or "v1" not in parts:
        return False
    if abs((time.time() if now_s is None else now_s) - int(parts["t"])) > tolerance_s:
        return False
    signed = parts["t"].encode() + b"." + event_id.encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


async def test_retried_on_500_and_on_timeout_then_delivered_once(
        store: Store, s3_store: S3BlobStore, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    await seed_events(store, s3_store, now, tmp_path)
    async with receiver() as rx:
        rx.script = {"flaky": [500, 503], "slow": [HANG]}
        cfg = _cfg([{"url": rx.url("flaky"), "name": "flaky", "events": ["goal_cancelled"]},
                    {"url": rx.url("slow"), "name": "slow", "events": ["goal_cancelled"],
                     "timeout_s": 0.5}])
        async with running(cfg, store, s3_store) as (_stage, pipeline):
            await rx.wait(lambda: rx.ok("flaky") and rx.ok("slow"))
            await _settled(store, pipeline, 2)
        states = await _states(store)
        flaky = states["goal_cancelled:g-var@flaky"]
        slow = states["goal_cancelled:g-var@slow"]
        assert (flaky["state"], flaky["attempts"]) == ("delivered", 3)
        assert [r.status for r in rx.on("flaky")] == [500, 503, 200]
        assert (slow["state"], slow["attempts"]) == ("delivered", 2)
        assert [r.status for r in rx.on("slow")] == [HANG, 200]
        assert len({r.event_id for r in rx.requests}) == 1  # every attempt names the same event
    goal = await store.goals.find_one({"_id": "g-var"})
    assert goal is not None
    assert goal["notifications"][delivery_id("goal_cancelled:g-var", "flaky")]["attempts"] == 3


@pytest.mark.parametrize("header", ["nan", "inf", "-5", "1e9", "²", "soon",
                                    "Wed, 99 Foo 2026 25:61:00 GMT"])
async def test_a_garbage_retry_after_is_no_hint_and_the_delivery_retries(
        store: Store, s3_store: S3BlobStore, tmp_path: Path, header: str) -> None:
    now = datetime.now(UTC)
    await seed_events(store, s3_store, now, tmp_path)
    async with receiver() as rx:
        rx.script = {"picky": [429]}
        rx.headers = {"picky": {"Retry-After": header}}
        cfg = _cfg([{"url": rx.url("picky"), "name": "picky", "events": ["goal_cancelled"]}])
        errors = STAGE_OUTCOMES.labels("notify", "error")._value.get()
        async with running(cfg, store, s3_store) as (_stage, pipeline):
            await rx.wait(lambda: rx.ok("picky"))
            await _settled(store, pipeline, 1)
    assert STAGE_OUTCOMES.labels("notify", "error")._value.get() == errors  # the handler never broke
    assert [r.status for r in rx.on("picky")] == [429, 200]
    goal = await store.goals.find_one({"_id": "g-var"})
    assert goal is not None
    record = goal["notifications"][delivery_id("goal_cancelled:g-var", "picky")]
    assert (record["state"], record["attempts"]) == ("delivered", 2)


@pytest.mark.parametrize(("header", "want"), [
    ("7", 7.0), (" 120 ", 120.0), ("0", 0.0), ("99999999999999", 3600.0), (None, None),
    ("", None), ("nan", None), ("inf", None), ("-5", None), ("1.5", None), ("1e9", None),
    ("²", None), ("x" * 100, None), ("Thu, 03 Dec 2026 12:00:30 GMT", 30.0),
    ("Thu, 03 Dec 2026 11:00:00 GMT", 0.0), ("Fri, 04 Dec 2027 12:00:00 GMT", 3600.0)])
def test_retry_after_is_digits_or_an_http_date_and_bounded(header: str | None,
                                                           want: float | None) -> None:
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert retry_after_s(header, max_s=3600.0, now=now) == want


async def test_a_hanging_receiver_blocks_nothing(store: Store, s3_store: S3BlobStore,
                                                 tmp_path: Path) -> None:
    now = datetime.now(UTC)
    ids = await seed_events(store, s3_store, now, tmp_path)
    async with receiver() as rx:
        rx.default = 200
        rx.script = {"stuck": [HANG] * 50}
        cfg = _cfg([{"url": rx.url("stuck"), "name": "stuck", "timeout_s": 60},
                    {"url": rx.url("fine"), "name": "fine"}], workers=2)
        async with running(cfg, store, s3_store) as (stage, _pipeline):
            # every event reaches the healthy receiver while the stuck one still holds requests
            await rx.wait(lambda: len(rx.ok("fine")) == len(ids))
            assert rx.on("stuck") and not rx.released.is_set()
            started = asyncio.get_running_loop().time()
            assert await stage.due(datetime.now(UTC), 10) == []  # the due scan answers at once
            assert asyncio.get_running_loop().time() - started < 5


async def test_permanent_4xx_fails_once_and_is_recorded_on_the_goal(
        store: Store, s3_store: S3BlobStore, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    await seed_events(store, s3_store, now, tmp_path)
    async with receiver() as rx:
        rx.default = 404
        cfg = _cfg([{"url": rx.url("gone"), "name": "gone", "events": ["goal_confirmed"]}])
        async with running(cfg, store, s3_store) as (_stage, pipeline):
            await rx.wait(lambda: len(rx.on("gone")) == 2)
            await _settled(store, pipeline, 2)
        assert len(rx.on("gone")) == 2  # one attempt per event, no retries
    goal = await store.goals.find_one({"_id": "g-ok"})
    assert goal is not None
    record = goal["notifications"][delivery_id("goal_confirmed:g-ok", "gone")]
    assert record["state"] == "failed" and record["error"] == "HTTP 404"


async def test_old_events_and_unsubscribed_kinds_are_not_announced(
        store: Store, s3_store: S3BlobStore, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    await seed_events(store, s3_store, now, tmp_path)
    async with receiver() as rx:
        cfg = _cfg([{"url": rx.url("k"), "name": "k", "events": ["clip_kept"]}],
                   max_event_age_s=60)
        client = WebhookClient()
        stage = NotifyStage(cfg, store, s3_store, client)
        later = datetime.fromtimestamp(now.timestamp() + 3600, UTC)
        assert await stage.derive(later) == 0  # an hour later: too old to announce
        assert await stage.derive(now) == 6  # every event is looked at and marked ...
        assert await stage.derive(now) == 0  # ... once
        assert sorted(d["event_id"] for d in await store.notifications.find({}).to_list(None)) == [
            "clip_kept:c-new", "clip_kept:c-old"]


def test_discord_and_slack_bodies_escape_untrusted_names() -> None:
    facts = {"fixture": {"home": {"name": "A*b"}, "away": {"name": "@everyone <x>"}},
             "goal": {"score_home": 1, "score_away": 0, "minute": 9, "scorer_name": "_Z_"}}
    discord = json.loads(discord_body("clip_kept", facts, "https://s3/x?a=1&b=2"))
    assert discord["allowed_mentions"] == {"parse": []}
    assert "\\@everyone" in discord["content"] and "A\\*b" in discord["content"]
    assert discord["content"].endswith("https://s3/x?a=1&b=2")
    slack = json.loads(slack_body("clip_kept", facts, "https://s3/x?a=1&b=2"))
    assert "&lt;x&gt;" in slack["text"] and "<https://s3/x?a=1&amp;b=2|clip>" in slack["text"]


def test_webhook_urls_and_secrets_are_secrets(tmp_path: Path) -> None:
    secret_file = tmp_path / "hook-secret"
    secret_file.write_text("from-a-file\n")
    cfg = config_mod.build({"notify": {"webhooks": [
        {"url": "https://discord.com/api/webhooks/1/TOKEN", "format": "discord",
         "secret_file": str(secret_file)}]}}, env={})
    hook = cfg.notify.webhooks[0]
    assert hook.secret is not None and hook.secret.get_secret_value() == "from-a-file"
    shown = json.dumps(config_mod.masked(cfg))
    assert "TOKEN" not in shown and "from-a-file" not in shown
    assert {"https://discord.com/api/webhooks/1/TOKEN", "from-a-file"} <= set(
        config_mod.secret_values(cfg))  # redacted from every log line
    assert "TOKEN" not in hook.key


def test_bad_webhook_configs_are_rejected() -> None:
    for bad in ({"url": "ftp://x"}, {"url": "https://x", "events": ["goal_scored"]},
                {"url": "https://x", "format": "teams"}):
        try:
            config_mod.build({"notify": {"webhooks": [bad]}}, env={})
        except config_mod.ConfigError as exc:
            assert "ftp://x" not in str(exc.errors)
        else:
            raise AssertionError(f"accepted {bad}")


async def test_removed_webhook_drops_its_pending_deliveries(
        store: Store, s3_store: S3BlobStore, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    await seed_events(store, s3_store, now, tmp_path)
    async with receiver() as rx:
        cfg = _cfg([{"url": rx.url("a"), "name": "a", "events": ["goal_cancelled"]}])
        stage = NotifyStage(cfg, store, s3_store, WebhookClient())
        await stage.derive(now)
        stage.apply_config(_cfg([{"url": rx.url("b"), "name": "b"}]))
        await stage.handle(delivery_id("goal_cancelled:g-var", "a"))
        assert rx.requests == []
    doc = await store.notifications.find_one({})
    assert doc is not None and doc["state"] == "dropped"


Receiver.__test__ = False  # type: ignore[attr-defined]  # not a test class


async def test_real_pipeline_announces_kept_and_replaced_clips_once(
        store: Store, s3_store: S3BlobStore, clip_host_factory: ClipHostFactory,
        tmp_path: Path) -> None:
    """Events derived from the states the real search, download and dedup stages write."""
    host = await clip_host_factory("demo")
    clock = host.clock
    await store.goals.insert_one({
        "_id": "g-wirtz", "fixture_id": 1, "league_id": 78, "kickoff": CLIP_T0, "team_id": 168,
        "team_name": "Bayer Leverkusen", "opponent_name": "Bayern Munich", "elapsed": 23,
        "extra": None, "minute": 23, "scorer_name": "Florian Wirtz", "detail": "Normal Goal",
        "score_home": 1, "score_away": 0, "state": "confirmed", "first_seen_at": CLIP_T0,
        "confirmed_at": CLIP_T0, "next_search_at": CLIP_T0, "search_attempt_ids": []})
    async with receiver() as rx, AsyncExitStack() as stack:
        cfg = Config.model_validate({
            "search": {"sources": ["fake"], "attempts": 10, "interval_s": 60, "schedule": []},
            "sources": {"fake": {"base_url": host.base_url}},
            "download": {"scratch_dir": str(tmp_path / "scratch"), "max_size_mb": 20,
                         "timeout_s": 3, "socket_timeout_s": 1, "max_attempts": 1,
                         "allow_private_addresses": True},  # the clip host is loopback
            "dedup": {"workers": 1},
            "notify": {"webhooks": [{"url": rx.url("hook"), "name": "hook"}]}})
        pool = ProcessPool(1)
        stack.callback(pool.shutdown)
        pipeline, _stages = await open_video_pipeline(
            stack, cfg, store=store, blobs=s3_store, pool=pool, clock=clock, scan_interval_s=3600)
        for _minute in range(16):
            await pipeline.scan_once()
            await pipeline.idle()
            clock.advance(60)
        await pipeline.scan_once()
        await pipeline.idle()
        got = [r.json for r in rx.ok("hook")]
        clips = {c["_id"]: c async for c in store.clips.find({})}
        kept = {i for i, c in clips.items() if c["state"] == "kept"}
        replaced = {i for i, c in clips.items() if c["state"] == "duplicate" and c.get("kept_at")}
        assert len(kept) == 2 and replaced  # earlier best A copies lost to better ones
        ids = [b["id"] for b in got]
        assert len(ids) == len(set(ids))  # once each
        assert set(ids) == ({"goal_confirmed:g-wirtz"} | {f"clip_kept:{i}" for i in kept | replaced}
                            | {f"clip_replaced:{i}" for i in replaced})
        swaps = [b for b in got if b["event"] == "clip_replaced"]
        assert {b["replaced_clip_id"] for b in swaps} == replaced
        swap = next(b for b in swaps if b["clip"]["id"] in kept)  # the last swap: HD arrived
        winner = clips[swap["clip"]["id"]]
        async with aiohttp.ClientSession() as http, http.get(swap["clip"]["url"]) as resp:
            assert resp.status == 200 and len(await resp.read()) == winner["size_bytes"]


async def test_an_event_is_queued_once_per_webhook_however_often_derived(
        store: Store, s3_store: S3BlobStore, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    await seed_events(store, s3_store, now, tmp_path)
    cfg = _cfg([{"url": "http://127.0.0.1:9/a", "name": "a"}])
    stage = NotifyStage(cfg, store, s3_store, WebhookClient())
    await stage.derive(now)
    n = await store.notifications.count_documents({})
    # a crash after the outbox write but before the marks: the next scan derives them again
    await store.goals.update_many({}, {"$unset": {"notify_marks": ""}})
    await store.clips.update_many({}, {"$unset": {"notify_marks": ""}})
    assert await stage.derive(now) == 6
    assert await store.notifications.count_documents({}) == n == 6


async def test_status_counts_webhook_deliveries_by_state(store: Store, s3_store: S3BlobStore,
                                                         tmp_path: Path) -> None:
    now = datetime.now(UTC)
    await seed_events(store, s3_store, now, tmp_path)
    stage = NotifyStage(_cfg([{"url": "http://127.0.0.1:9/a", "name": "a"}]), store, s3_store,
                        WebhookClient())
    await stage.derive(now)
    await store.notifications.update_one({"event_id": "clip_kept:c-new"},
                                         {"$set": {"state": "delivered"}})
    report = await status_report(store, now)
    assert report["notifications"] == {"pending": 5, "delivered": 1}
    assert "webhook deliveries: delivered 1, pending 5" in render(report, now)


async def test_the_drain_finishes_a_delivery_in_flight_within_its_budget(
        store: Store, s3_store: S3BlobStore, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    await seed_events(store, s3_store, now, tmp_path)
    async with receiver() as rx:
        rx.script = {"slowish": [HANG]}
        cfg = _cfg([{"url": rx.url("slowish"), "name": "slowish", "events": ["goal_cancelled"],
                     "timeout_s": 60}])
        async with running(cfg, store, s3_store) as (_stage, pipeline):
            await rx.wait(lambda: rx.on("slowish"))  # the attempt is in flight, unanswered
            rx.released.set()  # the receiver answers 200 now; the drain waits for the record
            left = await pipeline.drain({"notify": 10.0})
        assert left == {"notify": 0}
    (doc,) = (await _states(store)).values()
    assert (doc["state"], doc["attempts"]) == ("delivered", 1)


async def test_a_delivery_cut_by_the_drain_budget_is_due_again_at_once(
        store: Store, s3_store: S3BlobStore, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    await seed_events(store, s3_store, now, tmp_path)
    async with receiver() as rx:
        rx.script = {"stuck": [HANG]}
        cfg = _cfg([{"url": rx.url("stuck"), "name": "stuck", "events": ["goal_cancelled"],
                     "timeout_s": 60}])
        async with running(cfg, store, s3_store) as (_stage, pipeline):
            await rx.wait(lambda: rx.on("stuck"))
            left = await pipeline.drain({"notify": 0.2})
        assert left == {"notify": 1}
    (doc,) = (await _states(store)).values()
    assert (doc["state"], doc["attempts"], doc["last_error"]) == ("pending", 1, "cut by shutdown")
    # due now, not after the backoff the claim had set: the next start sends it first
    assert doc["next_attempt_at"] <= datetime.now(UTC)
