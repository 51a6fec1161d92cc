"""The demo's match-day script: fixtures, the clips posted for each goal, and what must happen.

A demo script (`footyd/sim/scripts/demo_*.toml`) holds simulator fixtures (the football sim's
format), clip kits (candidate posts, `after_min` match minutes after the goal), one `[[goals]]`
entry per scoring event saying which posts appear for it and what the daemon must make of it,
and one `[[results]]` entry per fixture. Times are in match minutes; `minute_s` maps them to
real seconds, so the whole day scales with `footyd demo --speed`.
"""

from __future__ import annotations

import tomllib
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from footyd.sim.clipgen import CATALOGUE
from footyd.sim.clips import ClipScript
from footyd.sim.clock import SimClock
from footyd.sim.football_script import FixtureScript, GoalStep, Script, is_scoring, render
from footyd.sim.reddit import goal_title

SCRIPTS_DIR = Path(__file__).parent.parent / "sim" / "scripts"
DEFAULT_SCRIPT = SCRIPTS_DIR / "demo_day.toml"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KitPost(_Model):
    """One post carrying a catalogue clip, `after_min` match minutes after the goal."""

    clip: str
    after_min: float = Field(ge=0)
    meta: bool = True  # the post says duration and size (so a portrait clip is filtered unseen)
    via: Literal["media", "post", "reddit"] = "media"  # reddit: on the fake Reddit's listing
    text: str = ""

    @model_validator(mode="after")
    def _known(self) -> KitPost:
        if self.clip not in CATALOGUE:
            raise ValueError(f"unknown catalogue clip {self.clip!r}")
        return self


class Posts(_Model):
    """Posts found by a search whose query holds every `match` term."""

    match: tuple[str, ...] = Field(min_length=1)
    kit: str


class GoalExpect(_Model):
    """What the daemon must make of one goal (fields left out are not checked)."""

    state: Literal["done", "cancelled"] = "done"
    scorer: str | None = None
    detail: str | None = None
    candidates: int | None = None
    kept: int | None = None
    duplicates: int | None = None
    rejected: int | None = None
    failed: int | None = None
    scorer_changes: int | None = None  # entries in scorer_history beyond the first


class DemoGoal(_Model):
    """A scoring event of the script (by fixture and event key), its posts and expectations."""

    fixture: int
    key: str
    posts: tuple[Posts, ...] = ()
    expect: GoalExpect = Field(default_factory=GoalExpect)
    note: str = ""


class FixtureResult(_Model):
    """The final state of one fixture."""

    fixture: int
    status: str
    score: tuple[int, int]
    goals: int  # goal documents, cancelled ones included


class DemoScript(_Model):
    name: str
    description: str = ""
    minute_s: float = Field(0.5, gt=0, le=60)  # real seconds per match minute at speed 1
    poll_min: float = Field(1.0, gt=0)  # monitor poll interval, match minutes
    search_attempts: int = Field(5, ge=1, le=20)
    search_interval_min: float = Field(3.0, gt=0)
    short_fixtures: tuple[int, ...] = ()  # the short variant plays only these
    kits: dict[str, tuple[KitPost, ...]]
    fixtures: tuple[FixtureScript, ...]
    goals: tuple[DemoGoal, ...]
    results: tuple[FixtureResult, ...]

    @model_validator(mode="after")
    def _consistent(self) -> DemoScript:
        by_id = {fx.id: fx for fx in self.fixtures}
        scoring = {(fx.id, key) for fx in self.fixtures for key, _at, _g in scoring_steps(fx)}
        named = {(g.fixture, g.key) for g in self.goals}
        if scoring != named:
            raise ValueError(f"[[goals]] must name every scoring event exactly once: missing "
                             f"{sorted(scoring - named)}, unknown {sorted(named - scoring)}")
        for g in self.goals:
            for p in g.posts:
                if p.kit not in self.kits:
                    raise ValueError(f"goal {g.fixture}/{g.key}: unknown kit {p.kit!r}")
        if {r.fixture for r in self.results} != set(by_id):
            raise ValueError("[[results]] must give one entry per fixture")
        if not set(self.short_fixtures) <= set(by_id):
            raise ValueError("short_fixtures names an unknown fixture")
        return self

    def variant(self, short: bool) -> DemoScript:
        """The whole day, or only the `short_fixtures` (with their goals and results)."""
        if not short or not self.short_fixtures:
            return self
        keep = set(self.short_fixtures)
        return self.model_copy(update={
            "name": f"{self.name} (short)",
            "description": f"only fixture(s) {', '.join(map(str, sorted(keep)))} of the day.",
            "fixtures": tuple(f for f in self.fixtures if f.id in keep),
            "goals": tuple(g for g in self.goals if g.fixture in keep),
            "results": tuple(r for r in self.results if r.fixture in keep),
        })

    def fixture(self, fixture_id: int) -> FixtureScript:
        return next(f for f in self.fixtures if f.id == fixture_id)

    def goal_minute(self, goal: DemoGoal) -> float:
        """Sim minute (since the sim started) at which the goal event appears."""
        fx = self.fixture(goal.fixture)
        at = next(at for key, at, _g in scoring_steps(fx) if key == goal.key)
        return fx.kickoff_min + at

    def end_minute(self) -> float:
        """Sim minute of the last timeline step of the day."""
        return max(fx.kickoff_min + max((s.at for s in fx.timeline), default=0.0)
                   for fx in self.fixtures)

    def sim_script(self) -> Script:
        return Script(name=self.name, description=self.description, fixtures=list(self.fixtures))

    def clip_script(self, minute_s: float) -> ClipScript:
        """The clip host's script: one host goal per `posts` entry, delays in real seconds."""
        goals = []
        for g in self.goals:
            for i, p in enumerate(g.posts):
                key = host_key(g, i)
                goals.append({"key": key, "match": list(p.match), "candidates": [
                    {"clip": c.clip, "delay_s": c.after_min * minute_s, "meta": c.meta,
                     "via": c.via, "text": c.text or f"GOAL {' '.join(p.match)}",
                     "id": f"{key}-{j}"}
                    for j, c in enumerate(self.kits[p.kit]) if c.via != "reddit"]})
        return ClipScript.model_validate({"goals": goals})

    def team_goals(self, fixture_id: int, side: str) -> list[DemoGoal]:
        """The fixture's scoring events credited to `side`, in timeline order."""
        fx = self.fixture(fixture_id)
        keys = [key for key, _at, g in scoring_steps(fx) if _final_side(fx, key, g) == side]
        mine = {g.key: g for g in self.goals if g.fixture == fixture_id}
        return [mine[k] for k in keys]


def reddit_posts(script: DemoScript, clock: SimClock) -> list[tuple[str, str, datetime]]:
    """(title, clip, when) of each `via = "reddit"` kit post: r/soccer-shaped, as posted then."""
    out = []
    for g in script.goals:
        fx = script.fixture(g.fixture)
        at = next(at for key, at, _g in scoring_steps(fx) if key == g.key)
        view = render(fx, at)
        goals = [e for e in view.events if is_scoring(e)]
        event = goals[-1]  # the step's own goal: the last scoring event rendered at its minute
        score = (sum(e["team"] == "home" for e in goals), sum(e["team"] == "away" for e in goals))
        title = goal_title(fx.home.name, fx.away.name, score, event["team"], event.get("player"),
                           event["elapsed"], event.get("extra"), event.get("detail", ""))
        for p in g.posts:
            for c in script.kits[p.kit]:
                if c.via == "reddit":
                    when = clock.to_datetime(script.goal_minute(g) + c.after_min)
                    out.append((title, c.clip, when))
    return out


def host_key(goal: DemoGoal, index: int) -> str:
    """The clip host's key for one `posts` entry of a goal."""
    return f"{goal.fixture}-{goal.key}-{index}"


def scoring_steps(fx: FixtureScript) -> list[tuple[str, float, GoalStep]]:
    """(key, at, goal) for each goal event that counts (shootout kicks and misses do not)."""
    out = []
    for step in fx.timeline:
        g = step.goal
        if g is None or not is_scoring({"type": "Goal", "detail": g.detail, "comments": g.comments}):
            continue
        if g.key is None:
            raise ValueError(f"fixture {fx.id}: the goal at {step.at} needs a key")
        out.append((g.key, step.at, g))
    return out


def _final_side(fx: FixtureScript, key: str, goal: GoalStep) -> str:
    """The side a goal ends up credited to (a correction may move it)."""
    side: str = goal.team
    for step in fx.timeline:
        if step.correct is not None and step.correct.key == key and step.correct.team is not None:
            side = step.correct.team
    return side


def final_score(fx: FixtureScript) -> tuple[int, int]:
    """Home and away goals once the whole timeline has played."""
    view = render(fx, max((s.at for s in fx.timeline), default=0.0))
    home = sum(1 for e in view.events if is_scoring(e) and e["team"] == "home")
    away = sum(1 for e in view.events if is_scoring(e) and e["team"] == "away")
    return home, away


def load(path: Path | str | None = None) -> DemoScript:
    """Read and validate a demo script (default: the shipped demo day)."""
    with Path(path or DEFAULT_SCRIPT).open("rb") as fh:
        return DemoScript.model_validate(tomllib.load(fh))


def goal_time(script: DemoScript, goal: DemoGoal, clock: SimClock) -> datetime:
    """Real time of a goal on the simulator's clock."""
    return clock.to_datetime(script.goal_minute(goal))
