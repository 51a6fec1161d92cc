"""A Reddit-shaped feed on loopback: the OAuth token endpoint and /r/{sub}/new, with faults."""

from __future__ import annotations

import base64
import itertools
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

WallClock = Callable[[], float]
# Reddit counts 100 requests a minute per client id over 10-minute periods
RATE_WINDOW_S = 600.0
RATE_WINDOW_LIMIT = 1000


def slug(title: str) -> str:
    """The permalink slug Reddit derives from a title."""
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")[:50] or "post"


def goal_title(home: str, away: str, score: tuple[int, int], side: str, scorer: str | None,
               elapsed: int, extra: int | None, detail: str = "Normal Goal") -> str:
    """An r/soccer goal-post title: `Home [1] - 0 Away - M. Striker 12'` (bracket: scoring side)."""
    h, a = (f"[{score[0]}]", str(score[1])) if side == "home" else (str(score[0]), f"[{score[1]}]")
    mark = {"Own Goal": " (OG)", "Penalty": " pen."}.get(detail, "")
    minute = f"{elapsed}+{extra}'" if extra else f"{elapsed}'"
    return f"{home} {h} - {a} {away} - {scorer or 'Unknown'}{mark} {minute}"


class FakeReddit:
    """Just enough of Reddit's API for the reddit source: app-only tokens and a listing."""

    def __init__(self, client_id: str = "demo-client", client_secret: str = "demo-secret", *,
                 token_ttl_s: int = 3600, clock: WallClock = time.time) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl_s = token_ttl_s
        self.clock = clock
        self.posts: list[dict[str, Any]] = []  # newest last
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.listing_requests = 0
        self.user_agents: list[str] = []
        self.fail_status: int | None = None  # every listing answers this status
        self.rate_limited_for_s: float | None = None  # the next listing answers 429 with reset
        self.remaining: float | None = None  # X-Ratelimit-Remaining to send (None: the period's)
        self._window_start: float | None = None
        self._window_used = 0
        self._ids = itertools.count(0x1A2B3C)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # -- posts ------------------------------------------------------------------------------

    def add_post(self, title: str, url: str, *, flair: str | None = "Media",
                 age_s: float = 0.0, subreddit: str = "soccer", removed: bool = False,
                 crosspost_of: str | None = None, at: float | None = None) -> str:
        """Add a link post (or a crosspost of `crosspost_of`), listed from `at` (epoch s) on."""
        post_id = format(next(self._ids), "x")
        created = float(int(self.clock() - age_s)) if at is None else at
        data: dict[str, Any] = {
            "id": post_id, "name": f"t3_{post_id}", "title": title, "subreddit": subreddit,
            "subreddit_name_prefixed": f"r/{subreddit}", "author": "goalbot_fan",
            "created_utc": created, "link_flair_text": flair,
            "link_flair_css_class": flair.lower() if flair else None, "is_self": False,
            "is_video": False, "over_18": False, "stickied": False, "spoiler": False,
            "score": 1, "num_comments": 0, "upvote_ratio": 1.0,
            "permalink": f"/r/{subreddit}/comments/{post_id}/{slug(title)}/",
            "url": url, "url_overridden_by_dest": url,
            "domain": url.split("/")[2] if "://" in url else "self." + subreddit,
            "removed_by_category": "moderator" if removed else None,
            "media": None, "secure_media": None, "thumbnail": "default",
        }
        if crosspost_of is not None:
            parent = next(p for p in self.posts if p["id"] == crosspost_of)
            data["crosspost_parent"] = parent["name"]
            data["crosspost_parent_list"] = [dict(parent)]
            data["url"] = data["url_overridden_by_dest"] = parent["permalink"]
        self.posts.append(data)
        return post_id

    def add_self_post(self, title: str, *, flair: str | None = "Discussion") -> str:
        """A text post (match threads): nothing to download."""
        post_id = self.add_post(title, "", flair=flair)
        post = self.posts[-1]
        post.update(is_self=True, url=f"https://www.reddit.com{post['permalink']}",
                    url_overridden_by_dest=None, selftext="Lineups...")
        return post_id

    def revoke_tokens(self) -> None:
        """Every issued token stops working (an early expiry)."""
        self.tokens.clear()

    # -- HTTP -------------------------------------------------------------------------------

    async def _token(self, req: web.Request) -> web.StreamResponse:
        self.token_requests += 1
        header = req.headers.get("Authorization", "")
        try:
            login, _, password = base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
        except ValueError:
            login = password = ""
        form = await req.post()
        if (login, password) != (self.client_id, self.client_secret):
            return web.json_response({"message": "Unauthorized", "error": 401}, status=401)
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        token = "-" + secrets.token_urlsafe(24)
        self.tokens.add(token)
        return web.json_response({"access_token": token, "token_type": "bearer",
                                  "expires_in": self.token_ttl_s, "scope": "*"})

    def _rate_headers(self) -> dict[str, str]:
        """Reddit's counters: requests used and left in the current 10-minute period."""
        if self.remaining is not None:  # a test's fixed answer
            return {"x-ratelimit-used": str(self.listing_requests),
                    "x-ratelimit-remaining": f"{self.remaining:.1f}", "x-ratelimit-reset": "300"}
        now = self.clock()
        if self._window_start is None or now - self._window_start >= RATE_WINDOW_S:
            self._window_start, self._window_used = now, 0
        self._window_used += 1
        left = max(0, RATE_WINDOW_LIMIT - self._window_used)
        reset = max(1, round(RATE_WINDOW_S - (now - self._window_start)))
        return {"x-ratelimit-used": str(self._window_used), "x-ratelimit-remaining": f"{left:.1f}",
                "x-ratelimit-reset": str(reset)}

    async def _listing(self, req: web.Request) -> web.StreamResponse:
        self.listing_requests += 1
        self.user_agents.append(req.headers.get("User-Agent", ""))
        if self.rate_limited_for_s is not None:
            reset, self.rate_limited_for_s = self.rate_limited_for_s, None
            return web.json_response({"message": "Too Many Requests", "error": 429}, status=429,
                                     headers={"x-ratelimit-used": "100",
                                              "x-ratelimit-remaining": "0.0",
                                              "x-ratelimit-reset": f"{reset:g}"})
        auth = req.headers.get("Authorization", "")
        if not auth.lower().startswith("bearer ") or auth[7:] not in self.tokens:
            return web.json_response({"message": "Unauthorized", "error": 401}, status=401)
        if self.fail_status is not None:
            return web.Response(status=self.fail_status, text="upstream error")
        sub = req.match_info["sub"]
        limit = min(100, int(req.query.get("limit", "25")))
        now = self.clock()
        newest = sorted((p for p in self.posts if p["subreddit"] == sub and p["created_utc"] <= now),
                        key=lambda p: -p["created_utc"])[:limit]
        children: list[dict[str, Any]] = [{"kind": "t3", "data": p} for p in newest]
        body = {"kind": "Listing", "data": {
            "after": children[-1]["data"]["name"] if children else None, "dist": len(children),
            "modhash": "", "geo_filter": "", "children": children, "before": None}}
        return web.json_response(body, headers=self._rate_headers())

    def app(self) -> web.Application:
        """The aiohttp app (tests may serve it themselves)."""
        app = web.Application()
        app.router.add_post("/api/v1/access_token", self._token)
        app.router.add_get("/r/{sub}/new", self._listing)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0: any free port); return the base URL."""
        self._runner = web.AppRunner(self.app())
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound, real_port = self._runner.addresses[0][:2]
        self.base_url = f"http://{bound}:{real_port}"
        return self.base_url

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def source_config(self) -> dict[str, Any]:
        """The [sources.reddit] settings that point footyd at this feed."""
        return {"client_id": self.client_id, "client_secret": self.client_secret,
                "auth_url": self.base_url + "/api/v1/access_token",
                "api_base_url": self.base_url, "user_agent": "linux:footyd-sim:1.0 (by /u/footyd)"}
