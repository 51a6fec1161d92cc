"""Simulated API-Football v3 over HTTP (aiohttp): scripted matches, plan limits, fault injection."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from aiohttp import web

from footyd.sim.clock import MANUAL_BASE, ManualClock, ScaledClock, SimClock
from footyd.sim.football_extras import extras
from footyd.sim.football_script import (
    LIVE_STATUSES,
    SHOOTOUT,
    STATUS_LONG,
    FixtureScript,
    MatchView,
    Script,
    is_scoring,
    load_script,
    many,
    matchday,
    player_id,
    render,
    script_path,
)

__all__ = ["FAULTS", "MANUAL_BASE", "ManualClock", "ScaledClock", "SimCall", "SimClock",
           "SimFootball", "load_script", "many", "matchday", "script_path"]

FaultKind = Literal["rate_limit_429", "rate_limit_200", "daily_exhausted", "http_500", "http_499",
                    "slow", "timeout", "malformed_json", "errors_200", "broken_item",
                    "item_huge_timestamp", "item_huge_number", "item_deep", "event_null_minute",
                    "event_unknown_detail", "event_no_team", "oversized_body", "live_drop",
                    "vanish"]
FAULTS: frozenset[str] = frozenset(FaultKind.__args__)  # type: ignore[attr-defined]
TOKEN_ERROR = ("Error/Missing application key. Go to https://www.api-football.com/documentation-v3"
               " to learn how to get your API application key.")
DAILY_ERROR = ("You have reached the request limit for the day, Go to "
               "https://dashboard.api-football.com to upgrade your plan.")
DEEP_LEVELS = 5_000  # `item_deep`: 5x json's recursion limit (1,000); deeper only costs test time
HUGE = 2**70  # `item_huge_number`: past BSON's int64
_DEEP_MARK = "__sim_deep__"
_ALLOWED_X_HEADERS = {"direct": {"x-apisports-key"}, "rapidapi": {"x-rapidapi-key",
                                                                  "x-rapidapi-host"}}


@dataclass(frozen=True)
class SimCall:
    """One request the sim received; `counted` if it spent daily quota."""

    path: str
    params: dict[str, str]
    at: float  # time.monotonic()
    status: int
    outcome: str
    counted: bool


@dataclass
class _Fault:
    kind: str
    remaining: int | None  # None: forever
    delay_s: float = 0.0
    errors: dict[str, str] = field(default_factory=lambda: {"bug": "Simulated upstream bug."})
    index: int = 0
    size_bytes: int = 0
    fixture_id: int | None = None  # item faults: alter this fixture's item (not `index`)


def _envelope(path: str, params: dict[str, str], response: Any,
              errors: dict[str, str] | None = None) -> dict[str, Any]:
    n = len(response) if isinstance(response, list) else (1 if response else 0)
    return {"get": path.strip("/"), "parameters": params or [], "errors": errors or [],
            "results": n, "paging": {"current": 1, "total": 1}, "response": response}


def _first_goal(item: dict[str, Any]) -> dict[str, Any] | None:
    return next((e for e in item.get("events") or [] if e.get("type") == "Goal"), None)


def _alter_item(kind: str, item: dict[str, Any]) -> dict[str, Any]:
    """One hostile or garbled item for the `broken_item`/`item_*`/`event_*` faults."""
    item = copy.deepcopy(item)
    if kind == "broken_item":
        item["teams"] = None
    elif kind == "item_huge_timestamp":
        item["fixture"].update(date="+99999999-01-01", timestamp=HUGE)
    elif kind == "item_huge_number":
        item["goals"] = {"home": HUGE, "away": 0}
        item["fixture"]["status"]["elapsed"] = HUGE
    elif kind == "item_deep":
        item["teams"] = _DEEP_MARK  # replaced by DEEP_LEVELS nested arrays in the body
    elif kind.startswith("event_") and (goal := _first_goal(item)) is not None:
        if kind == "event_null_minute":
            goal["time"]["elapsed"] = None
        elif kind == "event_unknown_detail":
            goal["detail"] = "Goal (reviewed)"
        elif kind == "event_no_team":
            goal["team"] = {"name": goal["team"]["name"]}
    return item


class SimFootball:
    """A loopback API-Football; `calls` lists every quota-spending request, `requests` all."""

    def __init__(self, script: Script | Sequence[FixtureScript] | Path | str | None = None, *,
                 clock: SimClock | None = None, key: str = "test-key",
                 mode: Literal["direct", "rapidapi"] = "direct", daily_limit: int = 75_000,
                 per_minute_limit: int = 450, minute_window_s: float = 60.0,
                 plan: str = "Ultra", full_payloads: bool = True) -> None:
        self.clock: SimClock = clock or ManualClock()
        self.key, self.mode, self.plan = key, mode, plan
        self.daily_limit, self.per_minute_limit = daily_limit, per_minute_limit
        self.minute_window_s = minute_window_s
        self.full_payloads = full_payloads  # lineups/statistics/players in `ids` answers
        self.fixtures: list[FixtureScript] = self._resolve(script)
        self.calls: list[SimCall] = []
        self.requests: list[SimCall] = []
        self.daily_used = 0
        self.streamed_bytes = 0  # bytes of the last `oversized_body` answer actually sent
        self._window: deque[float] = deque()
        self._faults: dict[str, list[_Fault]] = {}
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    @staticmethod
    def _resolve(script: Script | Sequence[FixtureScript] | Path | str | None) -> list[FixtureScript]:
        if script is None:
            return []
        if isinstance(script, Script):
            return list(script.fixtures)
        if isinstance(script, Path | str):
            path = Path(script)
            return list(load_script(path if path.suffix == ".toml" and path.exists()
                                    else script_path(str(script))).fixtures)
        return list(script)

    # ------------------------------------------------------------ control

    def inject(self, route: str = "/fixtures", fault: str = "http_500", count: int | None = 1, *,
               delay_s: float = 0.0, errors: dict[str, str] | None = None, index: int = 0,
               size_bytes: int = 0, fixture_id: int | None = None) -> None:
        """Answer the next `count` requests to `route` with `fault` (count None: forever).

        `index` (or `fixture_id`) picks the item an `item_*`/`event_*` fault alters;
        `size_bytes` pads `oversized_body`.
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {sorted(FAULTS)}")
        f = _Fault(fault, count, delay_s, index=index, size_bytes=size_bytes,
                   fixture_id=fixture_id)
        if errors is not None:
            f.errors = errors
        self._faults.setdefault(route, []).append(f)

    def clear_faults(self) -> None:
        self._faults.clear()

    def reset_quota(self) -> None:
        """A new day upstream: the daily counter restarts."""
        self.daily_used = 0

    def set_fixtures(self, script: Script | Sequence[FixtureScript] | Path | str) -> None:
        self.fixtures = self._resolve(script)

    # ------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.router.add_get("/fixtures", self._fixtures)
        app.router.add_get("/status", self._status)
        app.router.add_get("/leagues", self._leagues)
        app.router.add_post("/_sim/inject", self._http_inject)
        app.router.add_post("/_sim/clock", self._http_clock)
        app.router.add_get("/_sim/calls", self._http_calls)
        self._stopping.clear()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self.base_url = f"http://{bound_host}:{bound_port}"
        return self.base_url

    async def stop(self) -> None:
        self._stopping.set()  # releases handlers parked by `timeout` / `slow`
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimFootball:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    # ------------------------------------------------------------ plumbing

    def _record(self, req: web.Request, status: int, outcome: str, counted: bool) -> None:
        call = SimCall(req.path, dict(req.query), time.monotonic(), status, outcome, counted)
        self.requests.append(call)
        if counted:
            self.calls.append(call)

    def _limit_headers(self) -> dict[str, str]:
        now = time.monotonic()
        while self._window and self._window[0] <= now - self.minute_window_s:
            self._window.popleft()
        return {"x-ratelimit-requests-limit": str(self.daily_limit),
                "x-ratelimit-requests-remaining": str(max(0, self.daily_limit - self.daily_used)),
                "X-RateLimit-Limit": str(self.per_minute_limit),
                "X-RateLimit-Remaining": str(max(0, self.per_minute_limit - len(self._window)))}

    def _authorized(self, req: web.Request) -> bool:
        allowed = _ALLOWED_X_HEADERS[self.mode]
        sent = {h.lower() for h in req.headers if h.lower().startswith("x-")}
        if sent != allowed:
            return False
        key_header = "x-apisports-key" if self.mode == "direct" else "x-rapidapi-key"
        return req.headers.get(key_header) == self.key

    def _take_fault(self, route: str) -> _Fault | None:
        queue = self._faults.get(route)
        if not queue:
            return None
        fault = queue[0]
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.pop(0)
        return fault

    async def _park(self, delay_s: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), delay_s)
        except TimeoutError:
            pass

    async def _guard(self, req: web.Request, *, free: bool = False
                     ) -> tuple[web.StreamResponse | None, _Fault | None]:
        """Auth, injected faults and plan limits; returns a response to send instead, if any."""
        params = dict(req.query)
        if not self._authorized(req):
            self._record(req, 200, "token", False)
            return web.json_response(_envelope(req.path, params, [], {"token": TOKEN_ERROR})), None
        fault = self._take_fault(req.path)
        kind = fault.kind if fault else None
        if fault is not None and kind in ("slow", "timeout"):
            await self._park(fault.delay_s if kind == "slow" else 3600.0)
            if kind == "timeout":
                self._record(req, 0, "timeout", False)
                return web.Response(status=504, text="sim stopping"), None
        if kind == "daily_exhausted" or (not free and self.daily_used >= self.daily_limit):
            self._record(req, 200, "daily_exhausted", False)
            body = _envelope(req.path, params, [], {"requests": DAILY_ERROR})
            return web.json_response(body), None
        headers = self._limit_headers()
        if kind == "rate_limit_429" or (not free and len(self._window) >= self.per_minute_limit):
            self._record(req, 429, "rate_limited", False)
            headers["X-RateLimit-Remaining"] = "0"
            return web.json_response({"message": "Too many requests"}, status=429,
                                     headers=headers), None
        if kind == "rate_limit_200":
            self._record(req, 200, "rate_limited", False)
            err = {"rateLimit": "Too many requests. Your rate limit is "
                                f"{self.per_minute_limit} requests per minute."}
            return web.json_response(_envelope(req.path, params, [], err), headers=headers), None
        if kind in ("http_500", "http_499"):
            status = 500 if kind == "http_500" else 499
            self._record(req, status, kind, False)
            return web.Response(status=status, text="Something went wrong"), None
        if not free:
            self.daily_used += 1
            self._window.append(time.monotonic())
        self._record(req, 200, kind or "ok", not free)
        return None, fault

    def _reply(self, req: web.Request, response: Any, fault: _Fault | None) -> web.Response:
        params = dict(req.query)
        if fault is not None and fault.kind == "malformed_json":
            return web.Response(text='{"get": "fixtures", "respo', content_type="application/json",
                                headers=self._limit_headers())
        errors = fault.errors if fault is not None and fault.kind == "errors_200" else None
        if errors:
            response = []
        if fault is not None and isinstance(response, list) and response:
            if fault.fixture_id is None:
                i: int | None = min(fault.index, len(response) - 1)
            else:
                i = next((n for n, item in enumerate(response)
                          if item["fixture"]["id"] == fault.fixture_id), None)
            if i is not None:
                response[i] = _alter_item(fault.kind, response[i])
        body = json.dumps(_envelope(req.path, params, response, errors))
        if fault is not None and fault.kind == "item_deep":
            body = body.replace(f'"{_DEEP_MARK}"', "[" * DEEP_LEVELS + "]" * DEEP_LEVELS, 1)
        return web.Response(text=body, content_type="application/json",
                            headers=self._limit_headers())

    # ------------------------------------------------------------ API routes

    def _view(self, fx: FixtureScript) -> MatchView:
        return render(fx, self.clock.now_min() - fx.kickoff_min)

    def _item(self, fx: FixtureScript, view: MatchView, with_events: bool, *,
              full: bool = False) -> dict[str, Any]:
        kickoff = self.clock.to_datetime(view.kickoff_min)
        side = {"home": fx.home, "away": fx.away}
        evs = view.events
        count = {s: sum(1 for e in evs if is_scoring(e) and e["team"] == s) for s in side}
        pens = {s: sum(1 for e in evs if e.get("comments") == SHOOTOUT and e["team"] == s
                       and e["detail"] == "Penalty") for s in side}
        done = view.status in ("FT", "AET", "PEN")
        winner: dict[str, bool | None] = {"home": None, "away": None}
        ref = pens if view.status == "PEN" else count
        if done and ref["home"] != ref["away"]:
            winner = {"home": ref["home"] > ref["away"], "away": ref["away"] > ref["home"]}
        goals = {s: (count[s] if view.started else None) for s in side}
        item: dict[str, Any] = {
            "fixture": {"id": fx.id, "referee": None, "timezone": "UTC",
                        "date": kickoff.isoformat(), "timestamp": int(kickoff.timestamp()),
                        "periods": {"first": None, "second": None},
                        "venue": {"id": None, "name": fx.venue, "city": None},
                        "status": {"long": STATUS_LONG[view.status], "short": view.status,
                                   "elapsed": view.elapsed, "extra": view.extra}},
            "league": {"id": fx.league.id, "name": fx.league.name, "country": fx.league.country,
                       "season": fx.league.season, "round": fx.round},
            "teams": {s: {"id": t.id, "name": t.name, "winner": winner[s]} for s, t in side.items()},
            "goals": goals,
            "score": {"halftime": {s: (sum(1 for e in evs if is_scoring(e) and e["team"] == s
                                           and e["elapsed"] <= 45)
                                       if view.started and view.status != "1H" else None)
                                   for s in side},
                      "fulltime": goals if done else {"home": None, "away": None},
                      "extratime": {"home": None, "away": None},
                      "penalty": pens if view.status in ("P", "PEN") else
                      {"home": None, "away": None}},
        }
        if with_events:
            item["events"] = [self._event(e, side) for e in evs]
        if full and self.full_payloads:  # like upstream: only `id`/`ids` answers carry these
            item.update(extras(fx.id, (fx.home.id, fx.home.name), (fx.away.id, fx.away.name)))
        return item

    @staticmethod
    def _event(e: dict[str, Any], side: dict[str, Any]) -> dict[str, Any]:
        team = side[e["team"]]
        return {"time": {"elapsed": e["elapsed"], "extra": e["extra"]},
                "team": {"id": team.id, "name": team.name},
                "player": {"id": player_id(e["player"], e["player_id"]), "name": e["player"]},
                "assist": {"id": player_id(e["assist"], e["assist_id"]), "name": e["assist"]},
                "type": e["type"], "detail": e["detail"], "comments": e["comments"]}

    def _select(self, q: dict[str, str]) -> tuple[list[tuple[FixtureScript, MatchView]], bool]:
        """Fixtures matching the query, and whether events are embedded."""
        if "id" in q or "ids" in q:
            raw = q["id"] if "id" in q else q["ids"]
            wanted = [int(x) for x in raw.split("-") if x.strip().isdigit()]
            if len(wanted) > 20:
                return [], True  # like upstream: silently nothing
            order = {fid: i for i, fid in enumerate(wanted)}
            picked = sorted((fx for fx in self.fixtures if fx.id in order),
                            key=lambda fx: order[fx.id])
            return [(fx, self._view(fx)) for fx in picked], True
        pairs = [(fx, self._view(fx)) for fx in self.fixtures]
        if "live" in q:
            leagues = None if q["live"] == "all" else {int(x) for x in q["live"].split("-")}
            return [p for p in pairs if p[1].status in LIVE_STATUSES
                    and (leagues is None or p[0].league.id in leagues)], True
        if "league" in q:
            pairs = [p for p in pairs if p[0].league.id == int(q["league"])]
        if "season" in q:
            pairs = [p for p in pairs if p[0].league.season == int(q["season"])]
        if "team" in q:
            tid = int(q["team"])
            pairs = [p for p in pairs if tid in (p[0].home.id, p[0].away.id)]

        def day(p: tuple[FixtureScript, MatchView]) -> date:
            return self.clock.to_datetime(p[1].kickoff_min).date()

        if "date" in q:
            pairs = [p for p in pairs if day(p) == date.fromisoformat(q["date"])]
        if "from" in q and "to" in q:
            lo, hi = date.fromisoformat(q["from"]), date.fromisoformat(q["to"])
            pairs = [p for p in pairs if lo <= day(p) <= hi]
        return sorted(pairs, key=lambda p: p[1].kickoff_min), False

    async def _fixtures(self, req: web.Request) -> web.StreamResponse:
        blocked, fault = await self._guard(req)
        if blocked is not None:
            return blocked
        q = dict(req.query)
        if ("from" in q or "to" in q) and "season" not in q:
            return web.json_response(_envelope(req.path, q, [], {
                "season": "The Season field is required."}), headers=self._limit_headers())
        try:
            picked, with_events = self._select(q)
        except ValueError as exc:
            return web.json_response(_envelope(req.path, q, [], {"parameters": str(exc)}),
                                     headers=self._limit_headers())
        if fault is not None and fault.kind == "oversized_body":
            return await self._stream_oversized(req, fault.size_bytes)
        full = "id" in q or "ids" in q
        if fault is not None and (fault.kind == "vanish"
                                  or (fault.kind == "live_drop" and "live" in q)):
            picked = [p for p in picked if p[0].id != fault.fixture_id]  # a flaky answer
        return self._reply(req, [self._item(fx, v, with_events, full=full) for fx, v in picked],
                           fault)

    async def _stream_oversized(self, req: web.Request, size_bytes: int) -> web.StreamResponse:
        """A chunked body (no Content-Length) of `size_bytes`; `streamed_bytes` says how much
        the client let through before hanging up."""
        resp = web.StreamResponse(headers={"Content-Type": "application/json",
                                           **self._limit_headers()})
        resp.enable_chunked_encoding()
        await resp.prepare(req)
        self.streamed_bytes = 0
        piece = b" " * 65536
        try:
            while self.streamed_bytes < size_bytes:
                await resp.write(piece)
                self.streamed_bytes += len(piece)
            await resp.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client hung up at its cap
        return resp

    async def _status(self, req: web.Request) -> web.StreamResponse:
        blocked, fault = await self._guard(req, free=True)
        if blocked is not None:
            return blocked
        body = {"account": {"firstname": "Sim", "lastname": "User", "email": "sim@example.invalid"},
                "subscription": {"plan": self.plan, "end": "2027-01-01T00:00:00+00:00",
                                 "active": True},
                "requests": {"current": self.daily_used, "limit_day": self.daily_limit}}
        return self._reply(req, body, fault)

    async def _leagues(self, req: web.Request) -> web.StreamResponse:
        blocked, fault = await self._guard(req)
        if blocked is not None:
            return blocked
        lid = int(req.query.get("id", "0") or 0)
        leagues = [fx.league for fx in self.fixtures if fx.league.id == lid]
        response: list[dict[str, Any]] = []
        if leagues:
            lg = max(leagues, key=lambda lg: lg.season)
            response.append({
                "league": {"id": lg.id, "name": lg.name, "type": "League", "logo": None},
                "country": {"name": lg.country, "code": None, "flag": None},
                "seasons": [{"year": lg.season, "start": f"{lg.season}-08-01",
                             "end": f"{lg.season + 1}-05-31", "current": True}]})
        return self._reply(req, response, fault)

    # ------------------------------------------------------------ control over HTTP

    async def _http_inject(self, req: web.Request) -> web.StreamResponse:
        body = await req.json()
        try:
            self.inject(route=body.get("route", "/fixtures"), fault=body["fault"],
                        count=body.get("count", 1), delay_s=float(body.get("delay_s", 0.0)),
                        errors=body.get("errors"), index=int(body.get("index", 0)))
        except (KeyError, ValueError) as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        return web.json_response({"ok": True})

    async def _http_clock(self, req: web.Request) -> web.StreamResponse:
        body = await req.json()
        if not isinstance(self.clock, ManualClock):
            return web.json_response({"ok": False, "error": "clock is not manual"}, status=409)
        if "set" in body:
            self.clock.set(float(body["set"]))
        if "advance" in body:
            self.clock.advance(float(body["advance"]))
        return web.json_response({"ok": True, "minute": self.clock.now_min()})

    async def _http_calls(self, req: web.Request) -> web.StreamResponse:
        calls = self.requests if req.query.get("all") else self.calls
        return web.json_response([{"path": c.path, "params": c.params, "at": c.at,
                                   "status": c.status, "outcome": c.outcome} for c in calls])
