"""The page in a real Chromium: live updates without reload, and a kept clip plays inline."""

from __future__ import annotations

from pathlib import Path

from footyd.clients.blobs import LocalBlobStore
from footyd.clients.store import Store
from tests.plugins.browser import Browser, readme_screenshot
from tests.plugins.web import FX_LIVE, StartWeb, add_goal, seed_day

NO_RELOAD_MARK = "window.__footydNoReload"


async def test_goal_appears_live_and_its_kept_clip_plays(
        store: Store, local_store: LocalBlobStore, h264_video: Path, start_web: StartWeb,
        browser: Browser, tmp_path: Path) -> None:
    seeded = await seed_day(store, local_store, h264_video)
    web = await start_web(local_store)
    await browser.get(web.url + "/")
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
    head = await browser.js(f"return document.querySelector('{goal_sel} .goal-head').textContent")
    assert "78'" in head and "Martin Ødegaard" in head and "searching" in head and "1 kept" in head
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
    dups = await browser.wait_js(f"return document.querySelector('{seeded_sel} details.dups')",
                                 what="duplicates listed")
    assert dups
    text = await browser.js(f"""
        const g = document.querySelector('{seeded_sel}');
        g.querySelectorAll('details').forEach((d) => d.open = true);
        return g.querySelector('.goal-body').innerText""")
    assert "1 duplicate\n" in text and f"duplicate of {seeded.clips['kept_hd']}" in text
    assert "filtered: aspect 0.56 (portrait)" in text and "not_found: HTTP 404" in text
    assert await browser.js(f"return document.querySelectorAll('{seeded_sel} video').length") == 2
    await browser.js(f"document.querySelector('{goal_sel}').scrollIntoView({{block: 'end'}})")
    shot = await readme_screenshot(browser)
    assert shot.stat().st_size > 10_000
    full = await browser.screenshot(tmp_path / "page-full.png")
    assert full.stat().st_size > 10_000
