"""A real Debian Chromium driven by selenium (chromedriver), with async wrappers for in-loop servers."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import JavascriptException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = os.environ.get("FOOTYD_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("FOOTYD_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
INSTALL_HINT = "apt-get install -y chromium chromium-driver   (.ci/run does this when they are missing)"
PHONE = (430, 932)  # CSS pixels: a large phone in portrait
MIN_WINDOW_WIDTH_PX = 500  # headless Chromium's narrowest window; narrower sizes are emulated
T = TypeVar("T")

# JS: state of the first <video> in a kept-clip figure (what "plays" means in the tests)
VIDEO_STATE_FN = """
function videoState(sel) {
  const v = document.querySelector(sel);
  if (!v) return null;
  return {readyState: v.readyState, currentTime: v.currentTime, paused: v.paused,
          error: v.error ? v.error.code : null, width: v.videoWidth, height: v.videoHeight};
}
"""
PLAY_JS = """
const done = arguments[arguments.length - 1];
const v = document.querySelector(arguments[0]);
v.muted = true;
v.play().then(() => done("playing"), (e) => done("play failed: " + e));
"""


def _find(path: str, name: str) -> str:
    found = path if os.access(path, os.X_OK) else shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found at {path} (nor on PATH): install it with `{INSTALL_HINT}`",
                    pytrace=False)
    return found


def start_chromium(tmp: Path, size: tuple[int, int] = PHONE, *,
                   autoplay_anything: bool = True) -> WebDriver:
    """Headless Chromium from Debian; fails (never skips) with the install hint when missing.

    `autoplay_anything=False` keeps Chromium's own autoplay policy (muted video only, as on a
    phone), for tests of what plays without a tap.
    """
    options = webdriver.ChromeOptions()
    options.binary_location = _find(CHROMIUM, "chromium")
    args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--mute-audio", "--no-first-run", "--disable-extensions",
            "--disable-background-networking", f"--window-size={size[0]},{size[1]}",
            f"--user-data-dir={tmp / 'chromium-profile'}"]
    if autoplay_anything:
        args.append("--autoplay-policy=no-user-gesture-required")
    for arg in args:
        options.add_argument(arg)
    service = Service(executable_path=_find(CHROMEDRIVER, "chromedriver"),
                      log_output=str(tmp / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


class Browser:
    """Async face of a WebDriver: every call runs in a thread, so servers on this loop keep serving."""

    def __init__(self, driver: WebDriver, tmp: Path) -> None:
        self.driver = driver
        self.tmp = tmp

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    async def get(self, url: str) -> None:
        await self.call(self.driver.get, url)

    async def js(self, script: str, *args: Any) -> Any:
        return await self.call(self.driver.execute_script, script, *args)

    async def js_async(self, script: str, *args: Any) -> Any:
        return await self.call(self.driver.execute_async_script, script, *args)

    async def wait_js(self, script: str, *args: Any, timeout_s: float = 20.0,
                      what: str = "condition") -> Any:
        """Wait until a JS expression returns something truthy; return it."""

        def until() -> Any:
            def probe(d: WebDriver) -> Any:
                try:
                    return d.execute_script(script, *args)
                except JavascriptException:
                    return None

            return WebDriverWait(self.driver, timeout_s, poll_frequency=0.1).until(probe)

        try:
            return await self.call(until)
        except TimeoutException:
            logs = await self.console()
            raise AssertionError(f"browser: {what} not met in {timeout_s} s; console: {logs}") from None

    async def console(self) -> list[str]:
        try:
            entries = await self.call(self.driver.get_log, "browser")
        except Exception:  # not every driver keeps logs
            return []
        return [str(e.get("message")) for e in entries]

    async def screenshot(self, path: Path, *, full_page: bool = True) -> Path:
        """PNG of the page (the whole scroll height when full_page)."""
        if full_page:
            # window = content height + the window's own frame; no scrollbar in the picture
            width, height, frame = await self.js(
                "document.documentElement.style.overflow = 'hidden';"
                "return [window.outerWidth, document.documentElement.scrollHeight,"
                " window.outerHeight - window.innerHeight]")
            await self.call(self.driver.set_window_size, int(width), max(int(height) + int(frame), 400))
        await self.call(self.driver.save_screenshot, str(path))
        return path

    async def play_video(self, selector: str, *, advance_s: float = 0.5,
                         timeout_s: float = 20.0) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start a <video> and wait until it has data and its clock moved by `advance_s`."""
        first = await self.wait_js(
            "const v = document.querySelector(arguments[0]); return v && v.readyState >= 1 && v.readyState",
            selector, timeout_s=timeout_s, what=f"{selector} has metadata")
        assert first, first
        result = await self.js_async(PLAY_JS, selector)
        state = await self.js(VIDEO_STATE_FN + "return videoState(arguments[0]);", selector)
        assert result == "playing", f"{result}; video state {state}"
        start = await self.wait_js(
            VIDEO_STATE_FN + "const s = videoState(arguments[0]); return s && s.readyState >= 2 && s",
            selector, timeout_s=timeout_s, what=f"{selector} readyState >= 2")
        later = await self.wait_js(
            VIDEO_STATE_FN + "const s = videoState(arguments[0]); "
            f"return s && s.currentTime >= arguments[1] + {advance_s} && s",
            selector, start["currentTime"], timeout_s=timeout_s, what=f"{selector} currentTime advances")
        return start, later


README_SHOT_ENV = "FOOTYD_README_SCREENSHOT"  # e.g. docs/page.png: the test also writes it there
README_DIR_ENV = "FOOTYD_README_DIR"  # e.g. docs: the fan page tests write their pictures there


README_WIDTH_PX = 760  # the README picture: a narrow desktop window, whole page


async def readme_screenshot(browser: Browser, name: str = "page.png", *,
                            target: str | None = None, full_page: bool = True) -> Path:
    """Save a screenshot in the test's tmp dir; also to `target` (default $FOOTYD_README_SCREENSHOT,
    at README_WIDTH_PX wide); with a `target`, the window keeps its size."""
    resize = target is None
    target = target or os.environ.get(README_SHOT_ENV)
    if target and resize:
        await browser.call(browser.driver.set_window_size, README_WIDTH_PX, 800)
    path = await browser.screenshot(browser.tmp / name, full_page=full_page)
    if target:
        import cv2  # highest zlib level: the README copy stays small

        image = await asyncio.to_thread(cv2.imread, str(path), cv2.IMREAD_COLOR)
        assert image is not None, f"cannot read {path}"
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        ok = await asyncio.to_thread(cv2.imwrite, target, image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        assert ok, f"cannot write {target}"
    return path


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    """A fresh headless Chromium per test (phone-sized window)."""
    driver = await asyncio.to_thread(start_chromium, tmp_path)
    try:
        yield Browser(driver, tmp_path)
    finally:
        await asyncio.to_thread(driver.quit)


OpenBrowser = Callable[..., Awaitable[Browser]]


@pytest.fixture
async def open_browser(tmp_path: Path) -> AsyncIterator[OpenBrowser]:
    """Start Chromiums of a given window size, Chromium's own autoplay policy unless told."""
    drivers: list[WebDriver] = []

    async def _open(size: tuple[int, int], *, autoplay_anything: bool = False) -> Browser:
        home = tmp_path / f"chromium-{len(drivers)}"
        home.mkdir()
        driver = await asyncio.to_thread(start_chromium, home, size,
                                         autoplay_anything=autoplay_anything)
        drivers.append(driver)
        if size[0] < MIN_WINDOW_WIDTH_PX:  # narrower than a desktop window can be: a phone
            await asyncio.to_thread(driver.execute_cdp_cmd, "Emulation.setDeviceMetricsOverride",
                                    {"width": size[0], "height": size[1], "deviceScaleFactor": 2,
                                     "mobile": True})
        return Browser(driver, home)

    yield _open
    for driver in drivers:
        await asyncio.to_thread(driver.quit)
