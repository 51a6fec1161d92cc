"""snscrape's Twitter search: blocked by X since June 2023, so it fails soft and fast."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import threading
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog

from footyd.config import SnscrapeConfig
from footyd.config.findings import Finding, SourceVerdict
from footyd.sources.base import (
    Candidate,
    GoalQuery,
    is_http_url,
    is_truncated_tweet_url,
)
from footyd.sources.guard import CircuitBreaker, Clock, SourceGuard, SourceUnavailable
from footyd.sources.plumbing import GuardedSource
from footyd.sources.query import x_query_string

log = structlog.get_logger(__name__)

MODULE = "snscrape.modules.twitter"
FIRST_BACKOFF_S = 60.0
THREAD_NAME = "footyd-snscrape"
T = TypeVar("T")


def _settle(fut: asyncio.Future[T], result: T | None, exc: BaseException | None) -> None:
    if fut.done():
        return  # the caller timed out or was cancelled: nobody wants the answer
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)  # type: ignore[arg-type]


def run_in_own_thread(fn: Callable[[], T]) -> tuple[asyncio.Future[T], threading.Event]:
    """Run fn in a new daemon thread; its answer lands in the future, the event says fn returned.

    A Python thread cannot be stopped: one stuck in a blocked scraper must not hold a worker of
    the default executor (hashing, local storage) nor, being a daemon, delay process exit.
    """
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()
    finished = threading.Event()

    def work() -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = fn()
        except BaseException as exc:  # handed to the awaiting task, which decides
            error = exc
        finished.set()  # before the answer is handed over: the next caller may start at once
        try:
            loop.call_soon_threadsafe(_settle, fut, result, error)
        except RuntimeError:
            pass  # the loop is closed: the daemon is exiting

    threading.Thread(target=work, name=THREAD_NAME, daemon=True).start()
    return fut, finished


def _best_variant(media: Any) -> tuple[str | None, int | None, float | None]:
    """(url, bitrate, duration_s) of the highest-bitrate mp4 variant of a snscrape Video."""
    best: tuple[str | None, int | None] = (None, None)
    for v in getattr(media, "variants", None) or []:
        url, rate = getattr(v, "url", None), getattr(v, "bitrate", None)
        if getattr(v, "contentType", None) != "video/mp4" or not isinstance(url, str):
            continue
        if best[0] is None or (rate or 0) > (best[1] or 0):
            best = (url, rate if isinstance(rate, int) else None)
    duration = getattr(media, "duration", None)
    return best[0], best[1], float(duration) if isinstance(duration, int | float) else None


def _to_candidate(tweet: Any, source: str) -> Candidate | None:
    url = getattr(tweet, "url", None)
    if not isinstance(url, str) or not is_http_url(url) or is_truncated_tweet_url(url):
        return None
    videos = [m for m in getattr(tweet, "media", None) or [] if hasattr(m, "variants")]
    if not videos:
        return None
    media_url, bitrate, duration_s = _best_variant(videos[0])
    posted_at = getattr(tweet, "date", None)
    text = getattr(tweet, "rawContent", None) or getattr(tweet, "content", None) or ""
    return Candidate(
        source=source,
        post_url=url,
        media_url=media_url if media_url and is_http_url(media_url) else None,
        posted_at=posted_at if isinstance(posted_at, datetime) else None,
        text=str(text),
        duration_s=duration_s,
        bitrate=bitrate,
    )


def _scrape(module_name: str, query: str, max_results: int, source: str) -> list[Candidate]:
    """Runs in a worker thread: import snscrape lazily and collect up to max_results posts."""
    try:
        with warnings.catch_warnings():
            # snscrape 0.7 warns on import under 3.11; pytest's -W error would turn that fatal.
            warnings.simplefilter("ignore", DeprecationWarning)
            module = importlib.import_module(module_name)
    except ImportError:
        raise SourceUnavailable("snscrape not installed") from None
    out: list[Candidate] = []
    for tweet in module.TwitterSearchScraper(query).get_items():
        candidate = _to_candidate(tweet, source)
        if candidate is not None:
            out.append(candidate)
        if len(out) >= max_results:
            break
    return out


class SnscrapeSource(GuardedSource):
    """snscrape Twitter search; any failure blocks it behind an exponentially growing backoff."""

    def __init__(
        self,
        cfg: SnscrapeConfig,
        *,
        name: str = "snscrape",
        module_name: str = MODULE,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
    ) -> None:
        self.name = name
        self._cfg = cfg
        self._module_name = module_name
        breaker = CircuitBreaker(
            failure_threshold=1,
            base_backoff_s=min(FIRST_BACKOFF_S, cfg.backoff_max_s),
            max_backoff_s=cfg.backoff_max_s,
            clock=clock,
        )
        self.guard = SourceGuard(name, breaker=breaker, block_on_failure=True,
                                 wall_clock=wall_clock)
        self._finished: threading.Event | None = None  # the last scrape's, maybe still stuck

    async def _search(self, query: GoalQuery, since: datetime) -> list[Candidate]:
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
        text = x_query_string(
            query,
            operators=("filter:native_video", "-filter:retweets",
                       f"since_time:{int(since.timestamp())}"),
        )
        if self._finished is not None and not self._finished.is_set():
            raise SourceUnavailable("snscrape: the previous scrape is still running")
        fut, self._finished = run_in_own_thread(
            lambda: _scrape(self._module_name, text, self._cfg.max_results, self.name))
        try:
            return await asyncio.wait_for(fut, self._cfg.timeout_s)
        except TimeoutError:
            raise SourceUnavailable(f"snscrape: no answer within {self._cfg.timeout_s} s") from None
        except SourceUnavailable:
            raise
        except Exception as exc:
            # X answers snscrape with "blocked (404)" since 2023-06-30: expected, not a crash.
            raise SourceUnavailable(f"snscrape: {type(exc).__name__}: {exc}"[:300]) from None


def check_config(cfg: SnscrapeConfig) -> SourceVerdict:
    """snscrape is an optional extra: enabled without it, the source never finds clips."""
    if importlib.util.find_spec("snscrape") is not None:
        return SourceVerdict()
    return SourceVerdict(can_search=False, warnings=[Finding(
        "search.sources", "snscrape is enabled but not installed (it never finds clips)",
        "pip install 'footyd[snscrape]' or remove it from search.sources")])
