"""The fan page in a real Chromium at phone and desktop sizes, with Chromium's own autoplay policy."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from footyd.clients.blobs import LocalBlobStore
from footyd.clients.store import Store
from tests.plugins.browser import README_DIR_ENV, Browser, OpenBrowser, readme_screenshot
from tests.plugins.web import StartWeb, add_goal, seed_fan_day

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` skips it

PHONE_390 = (390, 844)
DESKTOP = (1280, 900)
# the state of a card's main clip: playing means not paused, data there, clock moving
BEST_JS = """
const v = document.querySelector(`[data-goal-id="${arguments[0]}"] video.best`);
if (!v) return null;
return {paused: v.paused, muted: v.muted, time: v.currentTime, ready: v.readyState,
        clip: v.dataset.clipId, poster: v.getAttribute('poster'), width: v.clientWidth,
        top: v.getBoundingClientRect().top};
"""


async def playing_untouched(browser: Browser, goal_id: str) -> dict[str, object]:
    """Wait until the goal's main clip plays by itself (no click, no script calling play())."""
    state: dict[str, object] = await browser.wait_js(
        BEST_JS + "", goal_id, what=f"{goal_id}'s clip present")
    return await browser.wait_js(  # type: ignore[no-any-return]
        BEST_JS.replace("return {", "const s = {") + "return !s.paused && s.ready >= 2 && s.time > 0.3 && s",
        goal_id, what=f"{goal_id}'s clip playing") or state


def shot_target(name: str) -> str | None:
    folder = os.environ.get(README_DIR_ENV)
    return str(Path(folder) / name) if folder else None


async def test_on_a_phone_the_newest_goal_plays_without_a_tap_and_new_goals_arrive_live(
        store: Store, local_store: LocalBlobStore, h264_video: Path, start_web: StartWeb,
        open_browser: OpenBrowser, tmp_path: Path) -> None:
    day = await seed_fan_day(store, local_store, h264_video, tmp_path)
    web = await start_web(local_store)
    phone = await open_browser(PHONE_390)
    await phone.get(web.url + "/")
    newest = day.goals["searching"]
    first = await phone.wait_js("const c = document.querySelector('#goals > li');"
                                " return c && c.dataset.goalId", what="goal cards")
    assert first == newest
    state = await playing_untouched(phone, newest)
    assert state["muted"] is True and state["clip"] == day.clips["kept_hd"]
    assert state["poster"] == f"/api/clips/{day.clips['kept_hd']}/poster"
    # the first screen: the clip is in view and spans the phone's width, nothing scrolls sideways
    layout = await phone.js("return [window.innerWidth, document.documentElement.scrollWidth,"
                            " window.innerHeight]")
    assert layout[1] <= layout[0] == PHONE_390[0]
    assert int(str(state["width"])) >= PHONE_390[0] - 24 and float(str(state["top"])) < layout[2] / 2
    text = await phone.js(f"return document.querySelector('[data-goal-id=\"{newest}\"]').innerText")
    # the other kept copy is one tap away, not on the first screen
    assert await phone.js(f"return document.querySelector('[data-goal-id=\"{newest}\"] .others')"
                          ".getBoundingClientRect().height") == 0
    await phone.js(f"document.querySelector('[data-goal-id=\"{newest}\"] button.more').click()")
    await phone.wait_js(f"return document.querySelector('[data-goal-id=\"{newest}\"] .others')"
                        ".getBoundingClientRect().height > 100", what="the other clip shown")
    assert "Bukayo Saka" in text and "Arsenal" in text and "1–0" in text
    assert "Assist: Martin Ødegaard" in text and "1 more clip" in text
    assert "duplicate" not in text.lower() and "rejected" not in text.lower()  # the operator's words
    ids = await phone.js("return [...document.querySelectorAll('[data-goal-id]')].map(e => e.dataset.goalId)")
    assert day.goals["pending"] not in ids  # searched before confirmation: not shown
    await phone.js("window.__noReload = true")

    # a goal confirmed with a kept clip arrives on top and plays, without a reload or a tap
    gid, clip_id = await add_goal(store, local_store, h264_video, elapsed=88, scorer="Gabriel Jesus")
    await store.goals.update_one({"_id": gid}, {"$set": {"score_home": 3, "score_away": 1}})
    await phone.wait_js("const c = document.querySelector('#goals > li');"
                        " return c && c.dataset.goalId === arguments[0]", gid, what="new goal on top")
    live = await playing_untouched(phone, gid)
    assert live["clip"] == clip_id
    # the pending goal shows up once the monitor confirms it
    await store.goals.update_one({"_id": day.goals["pending"]}, {"$set": {
        "state": "confirmed", "confirmed_at": day.now, "score_home": 2, "score_away": 1}})
    await phone.wait_js(f"return document.querySelector('[data-goal-id=\"{day.goals['pending']}\"]')",
                        what="confirmed goal appears")
    assert await phone.js("return window.__noReload === true"), "the page reloaded"
    assert not [m for m in await phone.console() if "SEVERE" in m], await phone.console()
    await phone.js("window.scrollTo(0, 0)")
    shot = await readme_screenshot(phone, "fan-phone.png", target=shot_target("fan-phone.png"),
                                   full_page=False)
    assert shot.stat().st_size > 10_000


async def test_a_shared_goal_link_opens_that_clip_and_days_and_filters_browse(
        store: Store, local_store: LocalBlobStore, h264_video: Path, start_web: StartWeb,
        open_browser: OpenBrowser, tmp_path: Path) -> None:
    day = await seed_fan_day(store, local_store, h264_video, tmp_path)
    web = await start_web(local_store)
    desk = await open_browser(DESKTOP)
    # the README picture first: today with two goals that have clips
    later, _ = await add_goal(store, local_store, h264_video, elapsed=71, scorer="Declan Rice")
    await store.goals.update_one({"_id": later}, {"$set": {"score_home": 2, "score_away": 1,
                                                           "assist_name": "Bukayo Saka"}})
    await desk.get(web.url + "/")
    await playing_untouched(desk, later)
    await playing_untouched(desk, day.goals["searching"])
    shot = await readme_screenshot(desk, "fan-desktop.png", target=shot_target("fan-desktop.png"),
                                   full_page=False)
    assert shot.stat().st_size > 10_000
    await store.goals.delete_one({"_id": later})

    gid = day.goals["done"]  # not the newest: the link must open this one, not the top of the day
    await store.clips.update_many({"_id": {"$in": [day.clips["kept_sd"], day.clips["kept_hd"]]}},
                                  {"$set": {"goal_id": gid}})
    await desk.get(f"{web.url}/goal/{gid}")
    cards = await desk.wait_js("const ids = [...document.querySelectorAll('#goals > li')]"
                               ".map(e => e.dataset.goalId); return ids.length && ids", what="card")
    assert cards == [gid]
    state = await playing_untouched(desk, gid)
    assert state["clip"] == day.clips["kept_hd"]
    # the other kept copy is on the same screen in goal view; the back link names the day
    others = await desk.js(f"const o = document.querySelector('[data-goal-id=\"{gid}\"] .others');"
                           " return [o.hidden, o.querySelectorAll('video').length]")
    assert others == [False, 1]
    today = day.now.date().isoformat()
    back = await desk.js("return document.getElementById('back-link').getAttribute('href')")
    assert back == f"/day/{today}"
    assert await desk.js("return document.title") == "Goal 61' · Arsenal 3–0 Chelsea · footyd"

    # today, then the day before through the arrow, then a team filter
    await desk.get(web.url + "/")
    await desk.wait_js("return document.querySelectorAll('#goals > li').length === 3", what="today")
    await desk.js("document.getElementById('prev').click()")
    await desk.wait_js("return location.pathname === arguments[0] &&"
                       " document.querySelector(`[data-goal-id='${arguments[1]}']`)",
                       f"/day/{(day.now - timedelta(days=1)).date().isoformat()}", day.goals["yesterday"],
                       what="yesterday's goal")
    await desk.get(web.url + "/")
    await desk.wait_js("return document.querySelectorAll('#team option').length > 1", what="team choices")
    await desk.js("const s = document.getElementById('team');"
                  " s.value = [...s.options].find(o => o.text === 'Lyon').value;"
                  " s.dispatchEvent(new Event('change'))")
    await desk.wait_js("return !document.getElementById('empty').hidden &&"
                       " document.querySelectorAll('#goals > li').length === 0", what="Lyon: no goals")
    assert "team=" in await desk.js("return location.search")
    await desk.js("const s = document.getElementById('team'); s.value = '';"
                  " s.dispatchEvent(new Event('change'))")
    await desk.wait_js("return document.querySelectorAll('#goals > li').length === 3", what="all again")
    await playing_untouched(desk, gid)
