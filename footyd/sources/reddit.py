"""Reddit: goal posts of r/soccer's newest listing, one shared poll per interval for every goal.

aiohttp directly, not asyncpraw: one dependency fewer, and the session, timeouts, body caps and
rate-limit handling are the same as the other sources'.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import structlog

from footyd.config import RedditConfig
from footyd.config.findings import Finding, SourceVerdict, is_set
from footyd.errors import Permanent, RateLimited, Retryable
from footyd.sources.base import MAX_URL_CHARS, Candidate, GoalQuery, is_fetchable_url
from footyd.sources.guard import Clock, RateLimiter, Sleep
from footyd.sources.plumbing import HttpSource, read_json_capped, standard_guard
from footyd.sources.reddit_titles import THREAD_RE, ParsedTitle, mismatch, parse_title

log = structlog.get_logger(__name__)

LISTING_LIMIT = 100
WINDOW_MAX_POSTS = 2000  # a flood of posts cannot grow the window without bound
TOKEN_MAX_BYTES = 64 * 1024
TOKEN_MARGIN_S = 60.0  # refresh this long before the token expires
TOKEN_MAX_LIFE_S = 24 * 3600.0
DEFAULT_RETRY_AFTER_S = 60.0
REDDIT_HOSTS = ("reddit.com", "www.reddit.com", "old.reddit.com", "np.reddit.com")


@dataclass(frozen=True)
class RedditPost:
    """One link post of the listing, already checked."""

    post_id: str
    title: str
    url: str  # the linked media page (v.redd.it, streamable, a mirror): what yt-dlp resolves
    permalink: str
    created_at: datetime
    flair: str | None
    parsed: ParsedTitle  # parsed once per post, matched against every goal


def _linked_url(data: Mapping[str, Any]) -> str | None:
    """The media link: the post's own, or the crossposted parent's when it links back to Reddit."""
    url = data.get("url_overridden_by_dest") or data.get("url")
    parents = data.get("crosspost_parent_list")
    if isinstance(url, str) and url.startswith("/"):
        url = None  # a relative link to another Reddit page
    if (url is None or _is_reddit_page(url)) and isinstance(parents, list) and parents:
        parent = parents[0]
        if isinstance(parent, dict):
            url = parent.get("url_overridden_by_dest") or parent.get("url")
    if not isinstance(url, str) or not is_fetchable_url(url):
        return None
    parts = urlsplit(url)
    if parts.username or parts.password or _is_reddit_page(url):
        return None  # credentials in a link, or a text post / gallery: nothing to download
    return url


def _is_reddit_page(url: str) -> bool:
    return (urlsplit(url).hostname or "").lower() in REDDIT_HOSTS


def parse_listing(body: Any, *, flairs: Sequence[str], source: str = "reddit") -> list[RedditPost]:
    """The listing's goal posts: flaired as configured, not removed, linking to media."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise Retryable(f"{source}: listing is not a JSON object")
    children = body["data"].get("children")
    if not isinstance(children, list):
        raise Retryable(f"{source}: listing has no children")
    wanted = {f.casefold() for f in flairs}
    out: list[RedditPost] = []
    for child in children[:LISTING_LIMIT * 2]:
        data = child.get("data") if isinstance(child, dict) else None
        if not isinstance(data, dict) or child.get("kind") != "t3":
            continue
        post_id, title, created = data.get("id"), data.get("title"), data.get("created_utc")
        flair = data.get("link_flair_text")
        flair = flair if isinstance(flair, str) else None
        if not isinstance(post_id, str) or not isinstance(title, str):
            continue
        if data.get("removed_by_category") or data.get("is_self") or title in ("[removed]",
                                                                                "[deleted]"):
            continue
        if wanted and (flair is None or flair.casefold() not in wanted):
            continue
        if flair is not None and THREAD_RE.search(flair):
            continue  # a thread flair ("Match Thread", "Post Match Thread") is never a clip
        if not isinstance(created, int | float) or isinstance(created, bool):
            continue
        url = _linked_url(data)
        permalink = data.get("permalink")
        if url is None or not isinstance(permalink, str) or not permalink.startswith("/r/"):
            continue
        try:
            created_at = datetime.fromtimestamp(float(created), UTC)
        except (OverflowError, ValueError, OSError):
            continue
        parsed = parse_title(title)
        if parsed is None:
            continue  # not a goal post (a match thread, news, a transfer rumour)
        out.append(RedditPost(post_id[:20], title, url,
                              "https://www.reddit.com" + permalink[:MAX_URL_CHARS], created_at,
                              flair, parsed))
    return out


class RedditSource(HttpSource):
    """Matches r/soccer goal posts to goals from one listing window shared by all searches."""

    def __init__(
        self,
        cfg: RedditConfig,
        *,
        name: str = "reddit",
        session: aiohttp.ClientSession | None = None,
        max_wait_s: float = 10.0,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.name = name
        self._cfg = cfg
        self._use_session(session)
        self._clock = clock
        self._wall_clock = wall_clock
        self._limiter = RateLimiter(cfg.requests_per_min, 60.0, max_wait_s=max_wait_s, clock=clock,
                                    sleep=sleep)
        self.guard = standard_guard(name, self._limiter, clock=clock, wall_clock=wall_clock)
        self._token: str | None = None
        self._token_expires_at = 0.0  # monotonic
        self._posts: dict[str, RedditPost] = {}  # the window, by post id
        self._fetched_at: float | None = None  # monotonic time of the last good listing
        self._inflight: asyncio.Future[None] | None = None
        self.listing_fetches = 0  # listing requests sent (the shared poll is measured by it)
        self.feed_interval_s = cfg.poll_s  # a feed: its posts are pushed to goals as they arrive
        self.token_fetches = 0

    # -- the shared window -----------------------------------------------------------------

    async def search(self, query: GoalQuery, since: datetime) -> list[Candidate]:
        """Posts of the window that match the goal's title, posted since `since`."""
        await self._fresh_window()
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
        out = []
        for post in sorted(self._posts.values(), key=lambda p: p.created_at, reverse=True):
            if post.created_at < since:
                continue
            if mismatch(post.parsed, query, minute_drift=self._cfg.minute_drift_min) is not None:
                continue
            out.append(Candidate(source=self.name, post_url=post.url, media_url=None,
                                 posted_at=post.created_at, text=post.title,
                                 permalink=post.permalink))
        log.info("reddit_searched", goal_id=query.goal_id, window=len(self._posts),
                 candidates=len(out))
        return out

    async def refresh_feed(self) -> None:
        """Read the listing now (the feed pass, every poll_s); a read in flight is shared."""
        await self._fresh_window(max_age_s=0.0)

    async def _fresh_window(self, max_age_s: float | None = None) -> None:
        """Refresh the window when it is older than poll_s; concurrent callers share one fetch."""
        max_age_s = self._cfg.poll_s if max_age_s is None else max_age_s
        if self._fetched_at is not None and self._clock() - self._fetched_at < max_age_s:
            return
        if self._inflight is None:
            # owned by the source: cancelled in aclose, never outlives it
            self._inflight = asyncio.ensure_future(self.guard.call(self._refresh))
            self._inflight.add_done_callback(self._fetch_done)
        await asyncio.shield(self._inflight)

    def _fetch_done(self, fut: asyncio.Future[None]) -> None:
        self._inflight = None
        if not fut.cancelled():
            fut.exception()  # retrieved: every waiter re-raises it; none is left unobserved

    async def _refresh(self) -> None:
        fetched: list[RedditPost] = []
        for subreddit in self._cfg.subreddits:
            fetched.extend(await self._listing(subreddit))
        now = datetime.fromtimestamp(self._wall_clock(), UTC)
        oldest = now - timedelta(minutes=self._cfg.max_age_min)
        posts = {p.post_id: p for p in self._posts.values() if p.created_at >= oldest}
        seen_urls = {p.url for p in posts.values()}
        for post in sorted(fetched, key=lambda p: p.created_at):
            if post.created_at >= oldest and post.url not in seen_urls:  # crossposts: once
                posts.setdefault(post.post_id, post)
                seen_urls.add(post.url)
        newest = sorted(posts.values(), key=lambda p: p.created_at, reverse=True)
        self._posts = {p.post_id: p for p in newest[:WINDOW_MAX_POSTS]}
        self._fetched_at = self._clock()
        log.info("reddit_listing_polled", posts=len(fetched), window=len(self._posts))

    # -- HTTP ------------------------------------------------------------------------------

    def _timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self._cfg.timeout_s)

    def _max_bytes(self) -> int:
        return int(self._cfg.max_response_mb * 1024 * 1024)

    async def _access_token(self) -> str:
        """The app-only token, fetched again shortly before it expires."""
        if self._token is not None and self._clock() < self._token_expires_at - TOKEN_MARGIN_S:
            return self._token
        cid, secret = self._cfg.client_id, self._cfg.client_secret
        if cid is None or secret is None or not cid.get_secret_value():
            raise Permanent("reddit: client_id / client_secret not configured")
        pair = f"{cid.get_secret_value()}:{secret.get_secret_value()}".encode()
        auth = "Basic " + base64.b64encode(pair).decode("ascii")
        self.token_fetches += 1
        async with self._http().post(
            self._cfg.auth_url, data={"grant_type": "client_credentials"},
            headers={"Authorization": auth, "User-Agent": self._cfg.user_agent},
            timeout=self._timeout(),
            allow_redirects=False,
        ) as resp:
            if resp.status in (400, 401, 403):
                raise Permanent(f"reddit: client credentials rejected (HTTP {resp.status})")
            if resp.status == 429:
                raise RateLimited("reddit: token endpoint HTTP 429",
                                  retry_after_s=self._reset_s(resp.headers) or DEFAULT_RETRY_AFTER_S)
            if resp.status != 200:
                raise Retryable(f"reddit: token endpoint HTTP {resp.status}")
            body = await read_json_capped(resp, self.name, TOKEN_MAX_BYTES)
        token = body.get("access_token") if isinstance(body, dict) else None
        expires = body.get("expires_in") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token or len(token) > 4096:
            raise Retryable("reddit: token response has no access_token")
        life_s = float(expires) if isinstance(expires, int | float) and expires > 0 else 3600.0
        self._token = token
        self._token_expires_at = self._clock() + min(life_s, TOKEN_MAX_LIFE_S)
        log.info("reddit_token_fetched", expires_in_s=round(life_s))
        return token

    def _reset_s(self, headers: Mapping[str, str]) -> float | None:
        raw = headers.get("x-ratelimit-reset") or headers.get("retry-after")
        try:
            return min(3600.0, max(0.0, float(raw))) if raw else None
        except ValueError:
            return None

    def _read_rate_headers(self, headers: Mapping[str, str]) -> None:
        """Send nothing more before the reset once X-Ratelimit-Remaining is spent."""
        remaining, reset_s = headers.get("x-ratelimit-remaining"), self._reset_s(headers)
        try:
            spent = remaining is not None and float(remaining) < 1
        except ValueError:
            return
        if spent and reset_s is not None:
            self._limiter.block_until(self._clock() + reset_s)
            log.info("reddit_rate_window_spent", used=headers.get("x-ratelimit-used"),
                     reset_in_s=round(reset_s, 1))

    async def _listing(self, subreddit: str) -> list[RedditPost]:
        try:
            return await self._get_listing(subreddit, retry_auth=True)
        except TimeoutError:
            raise Retryable(f"reddit: no answer within {self._cfg.timeout_s} s") from None
        except aiohttp.ClientError as exc:
            raise Retryable(f"reddit: {type(exc).__name__}") from None

    async def _get_listing(self, subreddit: str, *, retry_auth: bool) -> list[RedditPost]:
        token = await self._access_token()
        url = f"{self._cfg.api_base_url.rstrip('/')}/r/{subreddit}/new"
        headers = {"Authorization": f"bearer {token}", "User-Agent": self._cfg.user_agent}
        self.listing_fetches += 1
        async with self._http().get(url, params={"limit": str(LISTING_LIMIT), "raw_json": "1"},
                                    headers=headers, timeout=self._timeout(),
                                    allow_redirects=False) as resp:
            self._read_rate_headers(resp.headers)
            if resp.status == 401 and retry_auth:
                self._token = None  # expired or revoked early: one fresh token, one retry
            elif resp.status == 429:
                retry_s = self._reset_s(resp.headers) or DEFAULT_RETRY_AFTER_S
                self._limiter.block_until(self._clock() + retry_s)
                raise RateLimited("reddit: HTTP 429", retry_after_s=retry_s)
            elif resp.status in (401, 403):
                raise Permanent(f"reddit: listing refused (HTTP {resp.status})")
            elif resp.status != 200:
                raise Retryable(f"reddit: HTTP {resp.status}")
            else:
                body = await read_json_capped(resp, self.name, self._max_bytes())
                return parse_listing(body, flairs=self._cfg.flairs, source=self.name)
        return await self._get_listing(subreddit, retry_auth=False)

    async def aclose(self) -> None:
        """Cancel an in-flight poll, then close the session if this source opened it."""
        if self._inflight is not None:
            self._inflight.cancel()
            await asyncio.gather(self._inflight, return_exceptions=True)
        await super().aclose()


def check_config(cfg: RedditConfig) -> SourceVerdict:
    """Reddit needs an app's credentials, and throttles the placeholder user agent."""
    if not (is_set(cfg.client_id) and is_set(cfg.client_secret)):
        return SourceVerdict(can_search=False, errors=[Finding(
            "sources.reddit.client_id", "reddit is in search.sources but has no client_id / "
            "client_secret",
            "create a free app at reddit.com/prefs/apps (type \"script\"), then "
            "FOOTYD_SOURCES__REDDIT__CLIENT_ID and FOOTYD_SOURCES__REDDIT__CLIENT_SECRET (or "
            "client_secret_file), or remove reddit from search.sources")])
    if "CHANGE_ME" in cfg.user_agent:
        return SourceVerdict(warnings=[Finding(
            "sources.reddit.user_agent", "still the placeholder: Reddit throttles or blocks "
            "generic user agents", 'e.g. "linux:footyd:1.0 (by /u/<your reddit user>)"')])
    return SourceVerdict()
