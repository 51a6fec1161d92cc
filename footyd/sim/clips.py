"""Simulated clip world: a catalogue of generated clips, an HTTP clip host and a fake search.

Time: the host reads sim time from `clock()` (a tz-aware datetime; default the wall clock; tests
pass a `ManualClock`, scenarios can pass `lambda: sim.clock.to_datetime(sim.clock.now_min())`).
A goal's time is set by `goal_at(key, at)` (or `POST /_clips/goal_at {"key", "at"}`), else by the
script's `at_s` seconds after `start()`. A candidate is revealed at goal time + `delay_s`, which is
also its `posted_at`; `reveal_all()` (or `POST /_clips/reveal_all`) reveals everything at once.
"""

from __future__ import annotations

import asyncio
import tomllib
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from footyd.sim.clipgen import CATALOGUE, ClipSpec, generate_catalogue

__all__ = ["CATALOGUE", "ClipHost", "ClipScript", "ManualClock", "generate_catalogue",
           "load_script"]

_CHUNK = bytes(1 << 20)
SCRIPTS_DIR = Path(__file__).parent / "scripts"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScriptCandidate(_Model):
    """One post carrying a clip, revealed `delay_s` after its goal."""

    clip: str
    delay_s: float = Field(ge=0)
    via: Literal["media", "post"] = "media"
    text: str = ""
    meta: bool = True  # include duration_s/width/height in search results
    id: str = ""

    @field_validator("clip")
    @classmethod
    def _known_clip(cls, v: str) -> str:
        if v not in CATALOGUE:
            raise ValueError(f"unknown catalogue clip {v!r}")
        return v


class ScriptGoal(_Model):
    """A goal's search terms (all must appear in q) and its candidates."""

    key: str
    match: tuple[str, ...] = Field(min_length=1)
    at_s: float | None = None  # goal time as seconds after host start, unless goal_at() is used
    candidates: tuple[ScriptCandidate, ...] = ()

    @field_validator("candidates")
    @classmethod
    def _ids(cls, v: tuple[ScriptCandidate, ...],
             info: ValidationInfo) -> tuple[ScriptCandidate, ...]:
        key = info.data.get("key", "goal")
        return tuple(c if c.id else c.model_copy(update={"id": f"{key}-{i}"})
                     for i, c in enumerate(v))


class ClipScript(_Model):
    """Which clips appear for which goal, and when (`footyd/sim/scripts/clips_*.toml`)."""

    goals: tuple[ScriptGoal, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> ClipScript:
        ids = [c.id for g in self.goals for c in g.candidates]
        if len(ids) != len(set(ids)) or len({g.key for g in self.goals}) != len(self.goals):
            raise ValueError("goal keys and candidate ids must be unique")
        return self

    def goal(self, key: str) -> ScriptGoal:
        """The goal with `key` (KeyError if absent)."""
        for g in self.goals:
            if g.key == key:
                return g
        raise KeyError(key)

    def candidate(self, cand_id: str) -> ScriptCandidate | None:
        """The candidate with id `cand_id`, if any."""
        return next((c for g in self.goals for c in g.candidates if c.id == cand_id), None)


def load_script(name_or_path: str | Path) -> ClipScript:
    """Load a clip script by path, or by short name (`demo` -> scripts/clips_demo.toml)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SCRIPTS_DIR / f"clips_{name_or_path}.toml"
    with path.open("rb") as fh:
        return ClipScript.model_validate(tomllib.load(fh))


class ManualClock:
    """A settable UTC clock for tests: call it for the current time."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def __call__(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`."""
        self._now += timedelta(seconds=seconds)

    def set(self, at: datetime) -> None:
        """Jump to `at`."""
        self._now = at


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _norm(text: str) -> str:
    """Casefold, strip accents, collapse non-alphanumerics to single spaces, pad with spaces."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = "".join(c if c.isalnum() else " " for c in ascii_text.casefold()).split()
    return " " + " ".join(words) + " "


@dataclass(frozen=True)
class _Reveal:
    goal: ScriptGoal
    cand: ScriptCandidate
    posted_at: datetime


class ClipHost:
    """aiohttp server for `GET /media/{name}` (catalogue behaviours) and `GET /search`."""

    def __init__(self, clip_dir: Path, *, script: ClipScript | None = None,
                 clock: Callable[[], datetime] | None = None,
                 oversized_bytes: int = 120 * 1024 * 1024, slow_head_bytes: int = 64 * 1024,
                 trickle_interval_s: float = 0.5, stall_max_s: float = 600.0) -> None:
        self.clip_dir = Path(clip_dir)
        self.script = script or ClipScript(goals=())
        self.clock: Callable[[], datetime] = clock or _utcnow
        self.oversized_bytes = oversized_bytes
        self.slow_head_bytes = slow_head_bytes
        self.trickle_interval_s = trickle_interval_s
        self.stall_max_s = stall_max_s
        self.hits: Counter[str] = Counter()  # media requests per catalogue name
        self.sent_bytes: Counter[str] = Counter()  # body bytes written by streamed entries
        self._hit_events: dict[str, asyncio.Event] = {}
        self.searches: list[str] = []  # every q received, in order
        self._goal_times: dict[str, datetime] = {}
        self._reveal_all = False
        self._started_at: datetime | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self._base_url = ""

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT` once started."""
        if not self._base_url:
            raise RuntimeError("ClipHost not started")
        return self._base_url

    def media_url(self, name: str) -> str:
        """URL of a catalogue entry (served as `.mp4` so yt-dlp's generic extractor takes it)."""
        return f"{self.base_url}/media/{name}.mp4"

    def post_url(self, post_id: str) -> str:
        """URL of a post page wrapping one clip in an HTML5 <video>."""
        return f"{self.base_url}/post/{post_id}"

    async def wait_hit(self, name: str) -> None:
        """Return once `name` has been requested at least once (tests await this)."""
        if self.hits[name]:
            return
        await self._hit_events.setdefault(name, asyncio.Event()).wait()

    def goal_at(self, key: str, at: datetime) -> None:
        """Tell the host when goal `key` happened; its candidates reveal relative to this."""
        if at.tzinfo is None:
            raise ValueError("goal time must be timezone-aware")
        self.script.goal(key)  # KeyError for unknown goals
        self._goal_times[key] = at

    def reveal_all(self, on: bool = True) -> None:
        """Reveal every candidate of every goal regardless of time."""
        self._reveal_all = on

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Bind and serve; returns the base URL."""
        generate_catalogue(self.clip_dir)
        self._stopping = asyncio.Event()
        self._started_at = self.clock()
        for goal in self.script.goals:
            if goal.at_s is not None and goal.key not in self._goal_times:
                self._goal_times[goal.key] = self._started_at + timedelta(seconds=goal.at_s)
        app = web.Application()
        app.router.add_get("/media/{name}", self._media)
        app.router.add_get("/post/{post_id}", self._post)
        app.router.add_get("/search", self._search)
        app.router.add_post("/_clips/reveal_all", self._http_reveal_all)
        app.router.add_post("/_clips/goal_at", self._http_goal_at)
        runner = web.AppRunner(app, shutdown_timeout=2.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        self._base_url = f"http://{bound_host}:{bound_port}"
        return self._base_url

    async def stop(self) -> None:
        """Release stalled responses and close the server."""
        if self._stopping is not None:
            self._stopping.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> ClipHost:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    # -- search ---------------------------------------------------------------------------

    def revealed(self, q: str, since: datetime | None = None) -> list[_Reveal]:
        """Candidates visible now whose goal terms all appear in `q`, newest first."""
        now = self.clock()
        query = _norm(q)
        found: list[_Reveal] = []
        for goal in self.script.goals:
            if not all(_norm(term) in query for term in goal.match):
                continue
            goal_time = self._goal_times.get(goal.key)
            for cand in goal.candidates:
                base = goal_time or self._started_at or now
                posted_at = base + timedelta(seconds=cand.delay_s)
                visible = self._reveal_all or (goal_time is not None and posted_at <= now)
                if visible and (since is None or posted_at >= since):
                    found.append(_Reveal(goal, cand, posted_at))
        found.sort(key=lambda r: r.posted_at, reverse=True)
        return found

    def _result(self, r: _Reveal) -> dict[str, Any]:
        spec = CATALOGUE[r.cand.clip]
        item: dict[str, Any] = {
            "posted_at": r.posted_at.isoformat().replace("+00:00", "Z"),
            "text": r.cand.text or f"GOAL! {' '.join(r.goal.match)}",
        }
        if r.cand.via == "media":
            item["post_url"] = self.post_url(r.cand.id)
            item["media_url"] = self.media_url(r.cand.clip)
        else:
            item["post_url"] = self.media_url(r.cand.clip) + f"?post={r.cand.id}"
        if r.cand.meta and spec.kind == "clip":
            item.update(duration_s=spec.seconds, width=spec.width, height=spec.height)
        return item

    async def _search(self, req: web.Request) -> web.StreamResponse:
        q = req.query.get("q", "")
        self.searches.append(q)
        try:
            since = datetime.fromisoformat(req.query["since"]) if "since" in req.query else None
            limit = max(1, min(100, int(req.query.get("limit", "20"))))
        except ValueError:
            return web.json_response({"error": "bad since or limit"}, status=400)
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return web.json_response([self._result(r) for r in self.revealed(q, since)[:limit]])

    async def _http_reveal_all(self, req: web.Request) -> web.StreamResponse:
        body = await req.json() if req.can_read_body else {}
        self.reveal_all(bool(body.get("on", True)))
        return web.json_response({"ok": True})

    async def _http_goal_at(self, req: web.Request) -> web.StreamResponse:
        body = await req.json()
        try:
            self.goal_at(str(body["key"]), datetime.fromisoformat(str(body["at"])))
        except (KeyError, ValueError) as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        return web.json_response({"ok": True})

    # -- media ----------------------------------------------------------------------------

    async def _post(self, req: web.Request) -> web.StreamResponse:
        post_id = req.match_info["post_id"]
        cand = self.script.candidate(post_id)
        if cand is None:
            raise web.HTTPNotFound()
        src = self.media_url(cand.clip)
        html = (f"<html><head><title>post {post_id}</title></head><body>"
                f'<video controls><source src="{src}" type="video/mp4"></video></body></html>')
        return web.Response(text=html, content_type="text/html")

    async def _media(self, req: web.Request) -> web.StreamResponse:
        name = req.match_info["name"].removesuffix(".mp4")
        spec = CATALOGUE.get(name)
        if spec is None:
            raise web.HTTPNotFound()
        self.hits[name] += 1
        self._hit_events.setdefault(name, asyncio.Event()).set()
        if spec.kind == "status":
            headers = {"Retry-After": "30"} if spec.status == 429 else {}
            return web.Response(status=spec.status, text=spec.note, headers=headers)
        if spec.kind in ("clip", "garbage"):
            return web.FileResponse(self.clip_dir / spec.filename,
                                    headers={"Content-Type": "video/mp4"})
        return await self._stream(req, spec)

    async def _stream(self, req: web.Request, spec: ClipSpec) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        if spec.kind == "oversized":
            resp.content_length = self.oversized_bytes
        elif spec.kind == "oversized_nolength":
            resp.enable_chunked_encoding()
        else:  # slow/trickle declare a modest size they never finish sending
            resp.content_length = 8 * 1024 * 1024
        await resp.prepare(req)
        assert self._stopping is not None
        try:
            if spec.kind.startswith("oversized"):
                left = self.oversized_bytes
                while left > 0 and not self._stopping.is_set():
                    await resp.write(_CHUNK[: min(left, len(_CHUNK))])
                    self.sent_bytes[spec.name] += min(left, len(_CHUNK))
                    left -= len(_CHUNK)
                return resp
            await resp.write(_CHUNK[: self.slow_head_bytes])
            if spec.kind == "slow":
                await asyncio.wait_for(self._stopping.wait(), self.stall_max_s)
            else:
                while not self._stopping.is_set():
                    await resp.write(_CHUNK[:1024])
                    await asyncio.sleep(self.trickle_interval_s)
        except (ConnectionError, TimeoutError):
            pass  # the client gave up, or the stall ran out: both end this response
        return resp
