"""The page in a real Chromium: live updates without reload, and a kept clip plays inline."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

import aiohttp
import pytest

from footyd.clients.blobs import LocalBlobStore
from footyd.clients.store import Store
from footyd.demo.runner import DemoOptions, started_demo
from footyd.errors import ExitCode
from tests.plugins.browser import README_SHOT_ENV, Browser, readme_screenshot
from tests.plugins.servers import MongoServer
from tests.plugins.web import FX_LIVE, StartWeb, add_goal, seed_day

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` skips it

NO_RELOAD_MARK = "window.__footydNoReload"


async def test_goal_appears_live_and_its_kept_clip_plays(
        store: Store, local_store: LocalBlobStore, h264_video: Path, start_web: StartWeb,
        browser: Browser, tmp_path: Path) -> None:
    seeded = await seed_day(store, local_store, h264_video)
    web = await start_web(local_store, token="page-token")  # the page passes ?token= on
    await browser.get(web.url + "/ops?token=page-token")
    await browser.wait_js(
        f"return document.querySelector('[data-goal-id=\"{seeded.goals['searching']}\"]')",
        what="seeded goals rendered")
    await browser.wait_js("return document.getElementById('conn').dataset.state === 'live'",
                          what="stream connected")
    score = await browser.js(f"return document.querySelector('[data-fixture-id=\"{FX_LIVE}\"] .score')"
                             ".textContent")
    assert score == "2 – 1"
    await browser.js(f"{NO_RELOAD_MARK} = true")

    # the pipeline confirms a new goal and keeps a clip; the score moves
    gid, clip_id = await add_goal(store, local_store, h264_video)
    await store.fixtures.update_one({"_id": FX_LIVE}, {"$set": {"score.home": 3, "elapsed": 78}})
    goal_sel = f'[data-goal-id="{gid}"]'
    await browser.wait_js(f"return document.querySelector('{goal_sel}')", what="new goal appears")
    # the goal and its clip arrive as separate stream events: wait for the count to follow
    head = await browser.wait_js(
        f"const t = document.querySelector('{goal_sel} .goal-head').textContent;"
        " return t.includes('1 kept') ? t : null", what="kept count follows the clip event")
    assert "78'" in head and "Martin Ødegaard" in head and "searching" in head
    await browser.wait_js(f"return document.querySelector('[data-fixture-id=\"{FX_LIVE}\"] .score')"
                          ".textContent === '3 – 1'", what="live score")
    assert await browser.js(f"return {NO_RELOAD_MARK} === true"), "the page reloaded"

    # open it: the kept clip is a playable <video>
    await browser.js(f"document.querySelector('{goal_sel} .goal-head').click()")
    video_sel = f'{goal_sel} figure[data-clip-id="{clip_id}"] video'
    start, later = await browser.play_video(video_sel)
    assert start["readyState"] >= 2 and start["error"] is None
    assert later["currentTime"] > start["currentTime"] and (later["width"], later["height"]) == (640, 360)
    print(f"video readyState={start['readyState']}->{later['readyState']} "
          f"currentTime={start['currentTime']:.3f}->{later['currentTime']:.3f}")

    # duplicates and rejected of the seeded goal expand with their reasons
    seeded_sel = f'[data-goal-id="{seeded.goals["searching"]}"]'
    await browser.js(f"document.querySelector('{seeded_sel} .goal-head').click()")
    # the body (and its lists) exist hidden from the start: wait for the click's render to show them
    dups = await browser.wait_js(
        f"const d = document.querySelector('{seeded_sel} details.dups');"
        f" return d && !d.hidden && !document.querySelector('{seeded_sel} .goal-body').hidden",
        what="duplicates listed")
    assert dups
    text = await browser.js(f"""
        const g = document.querySelector('{seeded_sel}');
        g.querySelectorAll('details').forEach((d) => d.open = true);
        return g.querySelector('.goal-body').innerText""")
    assert "1 duplicate\n" in text and "duplicate of the 1280×720 clip" in text
    assert "filtered: aspect 0.56 (portrait)" in text and "not_found: HTTP 404" in text
    assert await browser.js(f"return document.querySelectorAll('{seeded_sel} video').length") == 2
    await browser.js(f"document.querySelector('{goal_sel}').scrollIntoView({{block: 'end'}})")
    shot = await browser.screenshot(tmp_path / "page.png", full_page=False)
    assert shot.stat().st_size > 10_000
    full = await browser.screenshot(tmp_path / "page-full.png")
    assert full.stat().st_size > 10_000


GOAL_IDS_JS = "return [...document.querySelectorAll('[data-goal-id]')].map((e) => e.dataset.goalId)"
NEW_GOAL_JS = GOAL_IDS_JS.replace("return ", "return ", 1) + ".find((id) => !arguments[0].includes(id))"
# a goal whose search is over with a kept clip: its kept clips no longer change under the test
KEPT_GOAL_JS = """
return [...document.querySelectorAll('.goal.done[data-goal-id]')]
  .filter((e) => /^[1-9]\\d* kept/.test(e.querySelector('.counts').textContent))
  .map((e) => e.dataset.goalId)[0]"""


async def wait_page(url: str, timeout_s: float = 30.0) -> None:
    """Wait until the daemon's web server answers (it starts with the daemon, in the background)."""
    async def probe() -> None:
        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    async with http.get(url + "api/fixtures") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)  # another component's port coming up: nothing to await

    await asyncio.wait_for(probe(), timeout_s)


# $FOOTYD_README_SCREENSHOT set: play the whole day at the demo's own speed for the README picture
README_MODE = bool(os.environ.get(README_SHOT_ENV))


@pytest.mark.timeout(300 if README_MODE else 120)
async def test_during_a_demo_run_a_goal_appears_and_its_kept_clip_plays(
        mongo_server: MongoServer, demo_cache: Path, tmp_path: Path, browser: Browser) -> None:
    opts = DemoOptions(short=not README_MODE, speed=1.0 if README_MODE else 2.0,
                       dir=tmp_path / "demo", mongo_uri=mongo_server.uri,
                       plain=True, out=io.StringIO(), env={"XDG_CACHE_HOME": str(demo_cache)})
    async with started_demo(opts) as demo:
        assert demo.page_url is not None
        playing = asyncio.create_task(demo.wait())
        await wait_page(demo.page_url)
        await browser.get(demo.page_url + "ops")
        await browser.wait_js("return document.getElementById('conn').dataset.state === 'live' "
                              "&& document.querySelector('[data-fixture-id]')", what="fixtures loaded")
        before = await browser.js(GOAL_IDS_JS)
        await browser.js(f"{NO_RELOAD_MARK} = true")
        new_goal = await browser.wait_js(NEW_GOAL_JS, before, timeout_s=60, what="a goal appears")
        kept_goal = await browser.wait_js(KEPT_GOAL_JS, timeout_s=60, what="a goal with a kept clip")
        assert await browser.js(f"return {NO_RELOAD_MARK} === true"), "the page reloaded"
        goal_sel = f'[data-goal-id="{kept_goal}"]'
        await browser.js(f"document.querySelector('{goal_sel} .goal-head').click()")
        video_sel = f"{goal_sel} figure video"
        start, later = await browser.play_video(video_sel)
        assert start["readyState"] >= 2 and start["error"] is None
        assert later["currentTime"] > start["currentTime"]
        print(f"demo: goal {new_goal} appeared live; kept clip of {kept_goal}: "
              f"readyState={start['readyState']}->{later['readyState']} "
              f"currentTime={start['currentTime']:.3f}->{later['currentTime']:.3f} "
              f"size={later['width']}x{later['height']}")
        result = await asyncio.wait_for(playing, 280 if README_MODE else 110)
        assert result.exit_code == ExitCode.OK, result.summary
        assert await browser.js(f"return {NO_RELOAD_MARK} === true"), "the page reloaded"
        await browser.js(f"document.querySelectorAll('{goal_sel} video').forEach((v) => v.pause())")
        body = await browser.js(f"""
            const g = document.querySelector('{goal_sel}');
            g.querySelectorAll('details:not([hidden])').forEach((d) => d.open = true);
            return g.querySelector('.goal-body').innerText""")
        assert "duplicate of the " in body and "rejected" in body, body
        shot = await readme_screenshot(browser, "demo-page.png")
        assert shot.stat().st_size > 10_000


async def test_the_page_renders_from_the_json_api_before_any_stream_event(
        store: Store, local_store: LocalBlobStore, h264_video: Path, start_web: StartWeb,
        browser: Browser) -> None:
    """With the stream blocked (no hello, no event ever), the day's goals still render."""
    seeded = await seed_day(store, local_store, h264_video)
    web = await start_web(local_store)
    await browser.call(browser.driver.execute_cdp_cmd, "Network.enable", {})
    await browser.call(browser.driver.execute_cdp_cmd, "Network.setBlockedURLs",
                       {"urls": ["*/api/stream*"]})
    await browser.get(web.url + "/ops")
    await browser.wait_js(
        f"return document.querySelector('[data-goal-id=\"{seeded.goals['searching']}\"]')",
        what="goals rendered without the stream")
    assert await browser.js("return document.getElementById('conn').dataset.state") != "live"


async def test_the_page_words_own_goals_cancellations_and_duplicates_for_people(
        store: Store, local_store: LocalBlobStore, h264_video: Path, start_web: StartWeb,
        browser: Browser) -> None:
    seeded = await seed_day(store, local_store, h264_video)
    dup, kept_hd = seeded.clips["duplicate"], seeded.clips["kept_hd"]
    await store.clips.update_one({"_id": dup}, {"$set": {
        "reason": f"same clip as {kept_hd} at offset +1.0s, lower resolution", "source": "reddit"}})
    await store.goals.update_one({"_id": seeded.goals["done"]}, {"$set": {
        "detail": "Own Goal", "scorer_name": "D. Defender"}})
    # a drawn cup tie decided on penalties, today
    await store.fixtures.update_one({"_id": FX_LIVE}, {"$set": {
        "status": "PEN", "score": {"home": 2, "away": 2, "penalty": {"home": 3, "away": 4}}}})
    web = await start_web(local_store)
    await browser.get(web.url + "/ops")
    sel = {k: f'[data-goal-id="{g}"]' for k, g in seeded.goals.items()}
    await browser.wait_js(f"return document.querySelector('{sel['done']}')", what="goals")
    score = await browser.js(f"const s = document.querySelector('[data-fixture-id=\"{FX_LIVE}\"] "
                             ".score'); return [s.textContent, s.title]")
    assert score == ["2 – 2 (3–4 pens)", "Chelsea won the shootout 4–3"]
    own = await browser.js(f"return document.querySelector('{sel['done']} .goal-head').textContent")
    assert "D. Defender" in own and "own goal, counts for Arsenal" in own and "Own Goal" not in own
    for key in ("cancelled", "searching"):
        await browser.js(f"document.querySelector('{sel[key]} .goal-head').click()")
    cancelled = await browser.wait_js(
        f"const b = document.querySelector('{sel['cancelled']} .goal-body');"
        " return b && !b.hidden && b.textContent", what="cancelled goal opened")
    assert "cancelled" in cancelled and "VAR" in cancelled and "no kept clips yet" not in cancelled
    text = await browser.wait_js(f"""
        const g = document.querySelector('{sel["searching"]}');
        const d = g.querySelector('details.dups');
        if (!d || d.hidden) return null;
        d.open = true; return d.innerText""", what="duplicates listed")
    assert "duplicate of the 1280×720 clip (fake, 3.0 s)" in text
    assert "lower resolution; starts 1.0 s into it" in text and kept_hd not in text
