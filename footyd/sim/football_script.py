"""Match scripts for the simulated API-Football: TOML models, loading, generators, match engine."""

from __future__ import annotations

import random
import tomllib
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCRIPTS_DIR = Path(__file__).parent / "scripts"

StatusCode = Literal[
    "TBD", "NS", "1H", "HT", "2H", "ET", "BT", "P", "SUSP", "INT", "LIVE",
    "FT", "AET", "PEN", "PST", "CANC", "ABD", "AWD", "WO",
]
STATUS_LONG: dict[str, str] = {
    "TBD": "Time To Be Defined", "NS": "Not Started", "1H": "First Half", "HT": "Halftime",
    "2H": "Second Half", "ET": "Extra Time", "BT": "Break Time", "P": "Penalty In Progress",
    "SUSP": "Match Suspended", "INT": "Match Interrupted", "LIVE": "In Progress",
    "FT": "Match Finished", "AET": "Match Finished", "PEN": "Match Finished",
    "PST": "Match Postponed", "CANC": "Match Cancelled", "ABD": "Match Abandoned",
    "AWD": "Technical Loss", "WO": "WalkOver",
}
LIVE_STATUSES = frozenset({"1H", "HT", "2H", "ET", "BT", "P", "SUSP", "INT", "LIVE"})
SHOOTOUT = "Penalty Shootout"
SCORING_DETAILS = frozenset({"Normal Goal", "Own Goal", "Penalty"})
Side = Literal["home", "away"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LeagueRef(_Model):
    id: int
    name: str
    season: int
    country: str = "World"


class TeamRef(_Model):
    id: int
    name: str


class GoalStep(_Model):
    """A Goal event; `team` is the side credited (the benefiting side for an own goal)."""

    key: str | None = None
    team: Side
    player: str | None = None
    player_id: int | None = None
    assist: str | None = None
    assist_id: int | None = None
    detail: Literal["Normal Goal", "Own Goal", "Penalty", "Missed Penalty"] = "Normal Goal"
    elapsed: int | None = None  # default: the status clock at `at`
    extra: int | None = None
    comments: str | None = None


class EventStep(_Model):
    """A non-goal event (noise): Card, subst, Var."""

    key: str | None = None
    team: Side
    type: Literal["Card", "subst", "Var"]
    detail: str
    player: str | None = None
    player_id: int | None = None
    assist: str | None = None
    assist_id: int | None = None
    elapsed: int | None = None
    extra: int | None = None
    comments: str | None = None


class Correction(_Model):
    """Fields to change on the event `key`; only the fields written in the script apply."""

    key: str
    team: Side | None = None
    player: str | None = None
    player_id: int | None = None
    assist: str | None = None
    assist_id: int | None = None
    detail: str | None = None
    elapsed: int | None = None
    extra: int | None = None
    comments: str | None = None


class Flicker(_Model):
    key: str
    minutes: float = Field(gt=0)


class Postpone(_Model):
    kickoff_min: float | None = None  # new kickoff (sim minutes); None: date unknown


class Step(_Model):
    """One timeline step at match minute `at` (minutes since the scripted kickoff)."""

    at: float
    status: StatusCode | None = None
    elapsed: int | None = None  # with `status`: the clock value the period starts from
    goal: GoalStep | None = None
    event: EventStep | None = None
    cancel: str | None = None
    correct: Correction | None = None
    flicker: Flicker | None = None
    postpone: Postpone | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        acts = [self.status, self.goal, self.event, self.cancel, self.correct, self.flicker,
                self.postpone]
        if sum(a is not None for a in acts) != 1:
            raise ValueError(f"step at {self.at} must have exactly one action")
        if self.elapsed is not None and self.status is None:
            raise ValueError("`elapsed` on a step is only valid with `status`")
        return self


class FixtureScript(_Model):
    id: int
    league: LeagueRef
    home: TeamRef
    away: TeamRef
    kickoff_min: float = 0.0
    coverage: bool = True  # false: no live data, status stays NS
    round: str = "Regular Season - 1"
    venue: str = "Sim Stadium"
    timeline: list[Step] = Field(default_factory=list)

    @model_validator(mode="after")
    def _keys(self) -> FixtureScript:
        keys: set[str] = set()
        for s in self.timeline:
            made = s.goal or s.event
            if made is not None and made.key is not None:
                if made.key in keys:
                    raise ValueError(f"fixture {self.id}: duplicate event key {made.key!r}")
                keys.add(made.key)
        for s in self.timeline:
            ref = s.cancel or (s.correct.key if s.correct else None) or (
                s.flicker.key if s.flicker else None)
            if ref is not None and ref not in keys:
                raise ValueError(f"fixture {self.id}: step at {s.at} refers to unknown key {ref!r}")
        return self


class GeneratorSpec(_Model):
    kind: Literal["many", "matchday"]
    n: int = Field(25, ge=1, le=2000)
    n_leagues: int = Field(5, ge=1, le=50)
    seed: int = 0
    spacing_min: float = Field(15.0, ge=0)
    kickoff_min: float = 0.0


class Script(_Model):
    name: str = ""
    description: str = ""
    fixtures: list[FixtureScript] = Field(default_factory=list)
    generator: GeneratorSpec | None = None

    @model_validator(mode="after")
    def _unique_ids(self) -> Script:
        ids = [f.id for f in self.fixtures]
        if len(ids) != len(set(ids)):
            raise ValueError("fixture ids must be unique")
        return self


def script_path(name: str) -> Path:
    """Path of a shipped script by name (with or without `.toml`)."""
    path = SCRIPTS_DIR / (name if name.endswith(".toml") else f"{name}.toml")
    if not path.is_file():
        raise FileNotFoundError(f"no sim script named {name!r} in {SCRIPTS_DIR}")
    return path


def load_script(path: Path | str) -> Script:
    """Read and validate a TOML script; a `[generator]` table is expanded into fixtures."""
    with Path(path).open("rb") as fh:
        script = Script.model_validate(tomllib.load(fh))
    gen = script.generator
    if gen is None:
        return script
    if gen.kind == "many":
        made = many(gen.n, seed=gen.seed, kickoff_min=gen.kickoff_min, n_leagues=gen.n_leagues)
    else:
        made = matchday(gen.n, gen.n_leagues, seed=gen.seed, spacing_min=gen.spacing_min,
                        start_min=gen.kickoff_min)
    return Script(name=script.name, description=script.description,
                  fixtures=[*script.fixtures, *made.fixtures])


# ---------------------------------------------------------------- generators

_LEAGUES = [(39, "Premier League", "England"), (140, "La Liga", "Spain"),
            (135, "Serie A", "Italy"), (78, "Bundesliga", "Germany"), (61, "Ligue 1", "France"),
            (2, "UEFA Champions League", "World"), (88, "Eredivisie", "Netherlands"),
            (94, "Primeira Liga", "Portugal")]


def _league(i: int, season: int = 2025) -> LeagueRef:
    if i < len(_LEAGUES):
        lid, name, country = _LEAGUES[i]
        return LeagueRef(id=lid, name=name, season=season, country=country)
    return LeagueRef(id=1000 + i, name=f"Sim League {i}", season=season)


def _random_match(rng: random.Random, fid: int, league: LeagueRef, kickoff_min: float) -> FixtureScript:
    """A 90-minute match (HT at 47, 2H at 62, FT at ~110) with random goals and noise."""
    steps: list[dict[str, Any]] = [{"at": 0, "status": "1H"}, {"at": 47, "status": "HT"},
                                   {"at": 62, "status": "2H"},
                                   {"at": 108 + rng.randint(0, 4), "status": "FT"}]

    def at_of(minute: int) -> int:
        return minute if minute <= 45 else minute + 17

    for g in range(rng.choices(range(7), weights=[8, 17, 22, 20, 14, 7, 3])[0]):
        minute = rng.randint(1, 90)
        key = f"g{g}"
        own = rng.random() < 0.06
        steps.append({"at": at_of(minute), "goal": {
            "key": key, "team": rng.choice(["home", "away"]), "elapsed": minute,
            "detail": "Own Goal" if own else rng.choice(["Normal Goal"] * 8 + ["Penalty"]),
            "player": None if rng.random() < 0.1 else f"P. Player{rng.randint(1, 40)}"}})
        roll = rng.random()
        if roll < 0.08:
            steps.append({"at": at_of(minute) + 2, "cancel": key})
        elif roll < 0.16:
            steps.append({"at": at_of(minute) + 5, "correct": {
                "key": key, "player": f"Q. Named{rng.randint(1, 40)}"}})
    for _ in range(rng.randint(2, 6)):
        minute = rng.randint(5, 90)
        kind, detail = rng.choice([("Card", "Yellow Card"), ("subst", "Substitution 1"),
                                   ("Var", "Penalty confirmed")])
        steps.append({"at": at_of(minute), "event": {
            "team": rng.choice(["home", "away"]), "type": kind, "detail": detail,
            "player": f"N. Noise{rng.randint(1, 40)}", "elapsed": minute}})
    steps.sort(key=lambda s: s["at"])  # stable: cancel/correct stay after their goal
    return FixtureScript.model_validate({
        "id": fid, "league": league.model_dump(), "kickoff_min": kickoff_min,
        "home": {"id": 10_000 + 2 * fid % 90_000, "name": f"Home {fid}"},
        "away": {"id": 10_001 + 2 * fid % 90_000, "name": f"Away {fid}"},
        "timeline": steps})


def matchday(n_fixtures: int, n_leagues: int, *, seed: int, spacing_min: float = 15.0,
             start_min: float = 0.0, per_slot: int = 4) -> Script:
    """A day of `n_fixtures` over `n_leagues`, `per_slot` kicking off together every `spacing_min`."""
    rng = random.Random(seed)
    fixtures = [_random_match(rng, 900_000 + i, _league(i % n_leagues),
                              start_min + (i // per_slot) * spacing_min)
                for i in range(n_fixtures)]
    return Script(name=f"matchday-{n_fixtures}", fixtures=fixtures)


def many(n: int = 25, *, seed: int = 0, kickoff_min: float = 0.0, n_leagues: int = 5) -> Script:
    """`n` random matches all kicking off at `kickoff_min`."""
    rng = random.Random(seed)
    fixtures = [_random_match(rng, 800_000 + i, _league(i % n_leagues), kickoff_min)
                for i in range(n)]
    return Script(name=f"many-{n}", fixtures=fixtures)


# ---------------------------------------------------------------- engine

_PERIOD_BASE = {"1H": 0, "2H": 45, "ET": 90, "P": 120}
_PERIOD_CAP = {"1H": 45, "2H": 90, "ET": 120, "P": 120}
_FIXED_ELAPSED = {"HT": 45, "FT": 90, "AET": 120, "PEN": 120}
_NO_ELAPSED = frozenset({"NS", "TBD", "PST", "CANC", "AWD", "WO"})


def player_id(name: str | None, given: int | None) -> int | None:
    """A stable made-up id for a named player ("Unknown" is id 0, as the API does)."""
    if given is not None or name is None:
        return given
    return 0 if name == "Unknown" else 1000 + zlib.crc32(name.encode()) % 900_000


@dataclass
class _Event:
    key: str | None
    order: int
    fields: dict[str, Any]
    hidden_until: float | None = None


@dataclass
class MatchView:
    """The state of one fixture at one match minute."""

    status: str = "NS"
    elapsed: int | None = None
    extra: int | None = None
    kickoff_min: float = 0.0
    started: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)  # visible, API field names


def _clock(status: str, base: int, start: float, minute: float) -> tuple[int, int | None]:
    raw = base + max(1, int(minute - start))
    cap = _PERIOD_CAP[status]
    return (cap, raw - cap) if raw > cap else (raw, None)


def render(fx: FixtureScript, minute: float) -> MatchView:
    """Apply every step with `at <= minute` (match minutes since the scripted kickoff)."""
    view = MatchView(kickoff_min=fx.kickoff_min)
    if not fx.coverage:
        return view
    events: dict[int, _Event] = {}
    by_key: dict[str, _Event] = {}
    base, start, seen_et = 0, 0.0, False
    for i, step in enumerate(s for s in fx.timeline if s.at <= minute):
        if step.status is not None:
            view.status = step.status
            if step.status in _PERIOD_BASE:
                default = 105 if step.status == "ET" and seen_et else _PERIOD_BASE[step.status]
                base = step.elapsed if step.elapsed is not None else default
                start, seen_et = step.at, seen_et or step.status == "ET"
                view.started = True
        elif step.goal is not None or step.event is not None:
            made = step.goal or step.event
            assert made is not None
            data = made.model_dump(exclude={"key"})
            data.setdefault("type", "Goal")
            if data["elapsed"] is None and view.status in _PERIOD_CAP:
                data["elapsed"], data["extra"] = _clock(view.status, base, start, step.at)
            if data["elapsed"] is None:
                data["elapsed"] = view.elapsed if view.elapsed is not None else int(step.at)
            events[i] = ev = _Event(made.key, i, data)
            if made.key is not None:
                by_key[made.key] = ev
        elif step.cancel is not None:
            gone = by_key.pop(step.cancel, None)
            if gone is not None:
                events.pop(gone.order, None)
        elif step.correct is not None and step.correct.key in by_key:
            by_key[step.correct.key].fields.update(
                step.correct.model_dump(include=step.correct.model_fields_set - {"key"}))
        elif step.flicker is not None and step.flicker.key in by_key:
            by_key[step.flicker.key].hidden_until = step.at + step.flicker.minutes
        elif step.postpone is not None:
            view.status = "PST"
            if step.postpone.kickoff_min is not None:
                view.kickoff_min = step.postpone.kickoff_min
        if view.status in _PERIOD_CAP:
            view.elapsed, view.extra = _clock(view.status, base, start, step.at)
        elif view.status in _FIXED_ELAPSED:
            view.elapsed, view.extra = _FIXED_ELAPSED[view.status], None
        elif view.status in _NO_ELAPSED:
            view.elapsed, view.extra = None, None
    if view.status in _PERIOD_CAP:
        view.elapsed, view.extra = _clock(view.status, base, start, minute)
    visible = [e for e in events.values() if e.hidden_until is None or minute >= e.hidden_until]
    visible.sort(key=lambda e: (e.fields["elapsed"], e.fields["extra"] or 0, e.order))
    view.events = [e.fields for e in visible]
    return view


def is_scoring(ev: dict[str, Any]) -> bool:
    """A goal that counts: not a missed penalty, not a shootout kick."""
    return (ev.get("type") == "Goal" and ev.get("detail") in SCORING_DETAILS
            and ev.get("comments") != SHOOTOUT)
