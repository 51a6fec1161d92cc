"""The fan surfaces over HTTP: /api/goals, posters, /goal/{id} with Open Graph tags, /day, /feed.atom."""

from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import aiohttp
import pytest

from footyd.clients.blobs import LocalBlobStore
from footyd.clients.store import Store
from footyd.web.server import WebServer
from tests.plugins.web import FX_LIVE, FX_YESTERDAY, SeededDay, StartWeb, seed_fan_day

ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
async def day(store: Store, local_store: LocalBlobStore, h264_video: Path,
              tmp_path: Path) -> SeededDay:
    return await seed_fan_day(store, local_store, h264_video, tmp_path)


async def get(url: str, **kw: Any) -> tuple[int, Any, Any]:
    async with aiohttp.ClientSession() as http, http.get(url, **kw) as resp:
        if resp.content_type == "application/json":
            return resp.status, await resp.json(), resp.headers
        return resp.status, await resp.read(), resp.headers


class Meta(HTMLParser):
    """The <meta property|name=... content=...> tags and the <title> of a page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: dict[str, str] = {}
        self.title = ""
        self._in_title = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "meta" and (a.get("property") or a.get("name")):
            self.tags[str(a.get("property") or a.get("name"))] = str(a.get("content"))
        self._in_title = tag == "title"

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False


async def test_the_day_lists_public_goals_newest_first_each_with_its_best_clip(
        day: SeededDay, local_store: LocalBlobStore, start_web: StartWeb) -> None:
    web = await start_web(local_store)
    status, body, _ = await get(f"{web.url}/api/goals")
    assert status == 200 and body["date"] == day.now.date().isoformat()
    ids = [g["id"] for g in body["goals"]]
    # newest first; the pending goal (searched before confirmation) is not there
    assert ids == [day.goals["searching"], day.goals["cancelled"], day.goals["done"]]
    goal = body["goals"][0]
    assert goal["title"] == "Bukayo Saka 23' · Arsenal 1–0 Chelsea"
    assert goal["assist"] == "Martin Ødegaard" and goal["url"] == f"/goal/{goal['id']}"
    best = goal["best"]
    assert best["id"] == day.clips["kept_hd"] and (best["width"], best["height"]) == (1280, 720)
    assert best["poster_url"] == f"/api/clips/{best['id']}/poster"
    assert best["post_url"].startswith("https://www.reddit.com/")  # the permalink, not the media
    assert [c["id"] for c in goal["more"]] == [day.clips["kept_sd"]]
    cancelled = body["goals"][1]
    assert cancelled["disallowed"] is True and cancelled["best"] is None
    assert {t["name"] for t in body["teams"]} == {"Arsenal", "Chelsea", "Lyon", "Nice"}
    assert [lg["name"] for lg in body["leagues"]] == ["Premier League"]

    # another day; a team (any side of its matches); a league; one goal
    yesterday = (day.now - timedelta(days=1)).date().isoformat()
    status, body, _ = await get(f"{web.url}/api/goals", params={"date": yesterday})
    assert [g["id"] for g in body["goals"]] == [day.goals["yesterday"]]
    chelsea = FX_LIVE * 10 + 2
    _, body, _ = await get(f"{web.url}/api/goals", params={"team": str(chelsea)})
    assert len(body["goals"]) == 3
    _, body, _ = await get(f"{web.url}/api/goals", params={"team": "70022"})  # Nice: no goals
    assert body["goals"] == []
    _, body, _ = await get(f"{web.url}/api/goals", params={"league": "140"})
    assert body["goals"] == []
    status, body, _ = await get(f"{web.url}/api/goals", params={"goal": day.goals["searching"]})
    assert status == 200 and [g["id"] for g in body["goals"]] == [day.goals["searching"]]
    for params in ({"goal": day.goals["pending"]}, {"goal": "nope"}):
        status, body, _ = await get(f"{web.url}/api/goals", params=params)
        assert status == 404, params
    for params in ({"team": "arsenal"}, {"league": "-1"}, {"date": "2026-02-30"}, {"sort": "x"}):
        status, body, _ = await get(f"{web.url}/api/goals", params=params)
        assert status == 400 and body["error"], params


async def test_a_pending_goal_appears_once_confirmed(
        day: SeededDay, store: Store, local_store: LocalBlobStore, start_web: StartWeb) -> None:
    web = await start_web(local_store)
    await store.goals.update_one({"_id": day.goals["pending"]}, {"$set": {
        "state": "searching", "confirmed_at": day.now}})
    _, body, _ = await get(f"{web.url}/api/goals")
    assert day.goals["pending"] in [g["id"] for g in body["goals"]]


async def test_the_poster_is_served(day: SeededDay, local_store: LocalBlobStore,
                                    start_web: StartWeb) -> None:
    web = await start_web(local_store)
    status, body, headers = await get(f"{web.url}/api/clips/{day.clips['kept_hd']}/poster")
    assert status == 200 and body == day.poster and headers["Content-Type"] == "image/jpeg"
    status, body, _ = await get(f"{web.url}/api/clips/{day.clips['kept_sd']}/poster")
    assert status == 404 and "no poster" in body["error"]


async def test_a_goal_link_carries_open_graph_tags_for_its_clip(
        day: SeededDay, local_store: LocalBlobStore, start_web: StartWeb) -> None:
    web = await start_web(local_store)
    gid, hd = day.goals["searching"], day.clips["kept_hd"]
    status, body, headers = await get(f"{web.url}/goal/{gid}")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    page = Meta(body.decode())
    assert page.title == "Bukayo Saka 23' · Arsenal 1–0 Chelsea · footyd"
    og = page.tags
    assert og["og:title"] == "Bukayo Saka 23' · Arsenal 1–0 Chelsea"
    assert og["og:description"] == "Arsenal v Chelsea · Premier League · assist Martin Ødegaard"
    assert og["og:url"] == f"{web.url}/goal/{gid}"
    assert og["og:type"] == "video.other" and og["og:video"] == f"{web.url}/api/clips/{hd}/video"
    assert (og["og:video:width"], og["og:video:height"]) == ("1280", "720")
    assert og["og:image"] == f"{web.url}/api/clips/{hd}/poster"
    assert og["twitter:card"] == "summary_large_image"
    assert '<script src="/static/fan.js"' in body.decode()
    # a pending goal, or an unknown one, is not found (and its facts are not in the page)
    for missing in (day.goals["pending"], "g-unknown"):
        status, body, _ = await get(f"{web.url}/goal/{missing}")
        assert status == 404 and "Declan Rice" not in body.decode()
    status, _, _ = await get(f"{web.url}/goal/bad%2Fid")
    assert status == 404


async def test_a_token_guards_the_facts_the_feed_and_the_media_links(
        day: SeededDay, local_store: LocalBlobStore, start_web: StartWeb) -> None:
    web = await start_web(local_store, token="fan-token-123456")
    gid, hd = day.goals["searching"], day.clips["kept_hd"]
    status, body, _ = await get(f"{web.url}/goal/{gid}")
    assert status == 200 and "Saka" not in body.decode()  # the shell only
    status, body, _ = await get(f"{web.url}/goal/{gid}", params={"token": "fan-token-123456"})
    og = Meta(body.decode()).tags
    assert og["og:video"] == f"{web.url}/api/clips/{hd}/video?token=fan-token-123456"
    status, _, _ = await get(f"{web.url}/feed.atom")
    assert status == 401
    status, _, _ = await get(f"{web.url}/feed.atom", params={"token": "fan-token-123456"})
    assert status == 200


async def test_day_and_operator_pages(day: SeededDay, local_store: LocalBlobStore,
                                      start_web: StartWeb) -> None:
    web = await start_web(local_store)
    today = day.now.date().isoformat()
    status, body, _ = await get(f"{web.url}/day/{today}")
    assert status == 200 and Meta(body.decode()).tags["og:url"] == f"{web.url}/day/{today}"
    for bad in ("2026-13-01", "yesterday", "2026-1-1"):
        status, _, _ = await get(f"{web.url}/day/{bad}")
        assert status == 404, bad
    status, body, _ = await get(f"{web.url}/ops")
    assert status == 200 and b"operator view" in body and b"/static/app.js" in body
    status, body, _ = await get(f"{web.url}/")
    assert status == 200 and b"/static/fan.js" in body


async def test_the_atom_feed_lists_goals_with_their_best_clip(
        day: SeededDay, local_store: LocalBlobStore, start_web: StartWeb) -> None:
    web = await start_web(local_store)
    status, body, headers = await get(f"{web.url}/feed.atom")
    assert status == 200 and headers["Content-Type"].startswith("application/atom+xml")
    feed = ET.fromstring(body)
    assert feed.tag == f"{ATOM}feed" and feed.findtext(f"{ATOM}id") == f"{web.url}/feed.atom"
    entries = feed.findall(f"{ATOM}entry")
    # newest first; neither the pending goal nor the disallowed one
    assert [e.findtext(f"{ATOM}id") for e in entries] == [
        f"{web.url}/goal/{g}" for g in (day.goals["searching"], day.goals["done"], day.goals["yesterday"])]
    saka = entries[0]
    assert saka.findtext(f"{ATOM}title") == "Bukayo Saka 23' · Arsenal 1–0 Chelsea"
    links = {ln.get("rel"): ln.get("href") for ln in saka.findall(f"{ATOM}link")}
    assert links == {"alternate": f"{web.url}/goal/{day.goals['searching']}",
                     "enclosure": f"{web.url}/api/clips/{day.clips['kept_hd']}/video"}
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", saka.findtext(f"{ATOM}updated") or "")
    assert "Assist: Martin Ødegaard" in (saka.findtext(f"{ATOM}summary") or "")
    # one team's feed
    _, body, _ = await get(f"{web.url}/feed.atom", params={"team": str(FX_YESTERDAY * 10 + 1)})
    feed = ET.fromstring(body)
    assert [e.findtext(f"{ATOM}id") for e in feed.findall(f"{ATOM}entry")] == [
        f"{web.url}/goal/{day.goals['yesterday']}"]
    assert feed.findtext(f"{ATOM}id") == f"{web.url}/feed.atom?team={FX_YESTERDAY * 10 + 1}"
    status, _, _ = await get(f"{web.url}/feed.atom", params={"team": "x"})
    assert status == 400


async def test_public_url_is_what_links_point_at(
        day: SeededDay, local_store: LocalBlobStore, start_web: StartWeb) -> None:
    web: WebServer = await start_web(local_store, public_url="https://goals.example.org/")
    _, body, _ = await get(f"{web.url}/goal/{day.goals['searching']}")
    og = Meta(body.decode()).tags
    assert og["og:url"] == f"https://goals.example.org/goal/{day.goals['searching']}"
    _, body, _ = await get(f"{web.url}/feed.atom")
    assert ET.fromstring(body).findtext(f"{ATOM}id") == "https://goals.example.org/feed.atom"
