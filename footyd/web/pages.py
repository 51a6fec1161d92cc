"""The HTML pages (fan page, one goal with Open Graph tags, a day, the operator view) and /feed.atom."""

from __future__ import annotations

import asyncio
import hmac
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

from aiohttp import web

from footyd.clients.store import Store
from footyd.config import WebConfig
from footyd.web import atom, fan
from footyd.web.views import BadParam, View, parse_day, parse_doc_id, parse_int_param

STATIC_DIR = Path(__file__).parent / "static"
OG_MARK = "<!--og-->"
SITE = "footyd"
FEED_DAYS = 3  # /feed.atom: goals of matches that kicked off this many days back at most
FEED_ENTRIES = 50
NO_CACHE = {"Cache-Control": "no-cache"}


def token_of(request: web.Request) -> str:
    """The token a request presents: a bearer header, else ?token=."""
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.query.get("token", "")


class Pages:
    """Serves the page shells (with server-rendered Open Graph tags) and the Atom feed."""

    def __init__(self, cfg: WebConfig, store: Store) -> None:
        self._cfg = cfg
        self._store = store
        self._templates: dict[str, str] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.index)
        app.router.add_get("/day/{day}", self.day)
        app.router.add_get("/goal/{goal_id}", self.goal)
        app.router.add_get("/ops", self.ops)
        app.router.add_get("/feed.atom", self.feed)

    async def _template(self, name: str) -> str:
        if name not in self._templates:
            self._templates[name] = await asyncio.to_thread((STATIC_DIR / name).read_text, "utf-8")
        return self._templates[name]

    async def _page(self, tags: str, *, status: int = 200) -> web.Response:
        html = (await self._template("fan.html")).replace(OG_MARK, tags, 1)
        return web.Response(text=html, status=status, content_type="text/html", headers=NO_CACHE)

    def _authorized(self, request: web.Request) -> bool:
        """Whether this request may see goal facts (always, unless a token guards the API)."""
        secret = self._cfg.token.get_secret_value() if self._cfg.token else ""
        return not secret or hmac.compare_digest(token_of(request).encode(), secret.encode())

    def base_url(self, request: web.Request) -> str:
        """Where links point: `web.public_url`, else this request's scheme and (allowed) host."""
        return self._cfg.public_url or f"{request.scheme}://{request.host}"

    def _media_query(self, request: web.Request) -> str:
        """The ?token= media links need when a token guards the API (they are fetched by others)."""
        return f"?token={token_of(request)}" if self._cfg.token else ""

    async def index(self, request: web.Request) -> web.Response:
        """GET /: today's goals, newest first."""
        return await self._page(_site_tags(self.base_url(request) + "/"))

    async def day(self, request: web.Request) -> web.Response:
        """GET /day/YYYY-MM-DD: that day's goals."""
        try:
            day, _, _ = parse_day(request.match_info["day"], datetime.now(UTC))
        except BadParam:
            raise web.HTTPNotFound(text="no such day: use /day/YYYY-MM-DD") from None
        return await self._page(_site_tags(f"{self.base_url(request)}/day/{day.isoformat()}",
                                           title=f"Goals of {day.isoformat()} · {SITE}"))

    async def goal(self, request: web.Request) -> web.Response:
        """GET /goal/{id}: the page opened on one goal, with Open Graph tags for link previews."""
        try:
            goal_id = parse_doc_id(request.match_info["goal_id"], "goal")
        except BadParam:
            raise web.HTTPNotFound(text="no such goal") from None
        base = self.base_url(request)
        if not self._authorized(request):
            return await self._page(_site_tags(f"{base}/goal/{goal_id}"))  # no facts without it
        goals = await fan.fan_goals(self._store, {"_id": goal_id}, limit=1)
        if not goals:
            return await self._page(_site_tags(f"{base}/goal/{goal_id}", title=f"Goal not found · {SITE}"),
                                    status=404)
        return await self._page(_goal_tags(goals[0], base, self._media_query(request)))

    async def ops(self, _request: web.Request) -> web.FileResponse:
        """GET /ops: the operator's view (every clip, duplicate, rejection and reason)."""
        return web.FileResponse(STATIC_DIR / "ops.html", headers=NO_CACHE)

    async def feed(self, request: web.Request) -> web.Response:
        """GET /feed.atom[?team=ID][&league=ID]: the newest public goals with their best clip."""
        unknown = set(request.query) - {"team", "league", "token"}
        if unknown:
            raise BadParam(f"unknown query parameter {sorted(unknown)[0]!r}")
        team = parse_int_param(request.query.get("team"), "team")
        league = parse_int_param(request.query.get("league"), "league")
        now = datetime.now(UTC)
        query = fan.fixture_query(now - timedelta(days=FEED_DAYS), now + timedelta(days=1),
                                  team=team, league=league)
        goals = [g for g in await fan.goals_of_matches(self._store, query, limit=FEED_ENTRIES)
                 if not g["disallowed"]]
        base = self.base_url(request)
        self_url = f"{base}{request.rel_url.path}"
        if team is not None or league is not None:
            self_url += "?" + "&".join(f"{k}={v}" for k, v in (("team", team), ("league", league))
                                       if v is not None)
        body = atom.render(goals, base=base, self_url=self_url, media_query=self._media_query(request),
                           now=now)
        return web.Response(body=body, content_type="application/atom+xml", charset="utf-8",
                            headers=NO_CACHE)


def _meta(prop: str, value: Any) -> str:
    attr = "name" if prop.startswith("twitter:") else "property"
    return f'<meta {attr}="{prop}" content="{escape(str(value), quote=True)}">'


def _site_tags(url: str, *, title: str = f"{SITE} · live goals") -> str:
    return "\n".join([f"<title>{escape(title)}</title>", _meta("og:site_name", SITE),
                      _meta("og:type", "website"), _meta("og:title", title), _meta("og:url", url)])


def describe(goal: View) -> str:
    """A goal's one-line description: the match, the league, the assist."""
    fx = goal["fixture"]
    parts = []
    if fx is not None:
        parts.append(f"{fx['home']['name'] or 'Home'} v {fx['away']['name'] or 'Away'}")
        if fx["league"]["name"]:
            parts.append(fx["league"]["name"])
    if goal["assist"]:
        parts.append(f"assist {goal['assist']}")
    return " · ".join(parts)


def _goal_tags(goal: View, base: str, media_query: str) -> str:
    title = goal["title"]
    tags = [f"<title>{escape(title)} · {SITE}</title>", _meta("og:site_name", SITE),
            _meta("og:title", title), _meta("og:description", describe(goal)),
            _meta("og:url", f"{base}{goal['url']}"), _meta("twitter:title", title)]
    best = goal["best"]
    if best is None:
        return "\n".join([*tags, _meta("og:type", "article"), _meta("twitter:card", "summary")])
    tags += [_meta("og:type", "video.other"),
             _meta("og:video", f"{base}{best['video_url']}{media_query}"),
             _meta("og:video:type", "video/mp4")]
    if best["width"] and best["height"]:
        tags += [_meta("og:video:width", best["width"]), _meta("og:video:height", best["height"])]
    if best["poster_url"]:
        tags += [_meta("og:image", f"{base}{best['poster_url']}{media_query}"),
                 _meta("twitter:card", "summary_large_image")]
    return "\n".join(tags)
