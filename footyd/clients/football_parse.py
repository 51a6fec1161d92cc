"""API-Football v3 response parsing: envelopes' `response` items into frozen dataclasses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from footyd.errors import MalformedPayload, Permanent

__all__ = ["ApiStatus", "Fixture", "FixturesPage", "MalformedItem", "header_int",
           "parse_current_season", "parse_fixture", "parse_page", "parse_status"]


@dataclass(frozen=True)
class Fixture:
    """One parsed /fixtures item."""

    id: int
    kickoff: datetime
    status_short: str
    status_long: str
    elapsed: int | None
    league_id: int
    league_name: str
    season: int
    home_id: int
    home_name: str
    away_id: int
    away_name: str
    goals_home: int | None
    goals_away: int | None
    events: list[dict[str, Any]]
    raw: dict[str, Any]


@dataclass(frozen=True)
class MalformedItem:
    """An item that failed to parse, with its fixture id when readable."""

    fixture_id: int | None
    reason: str


@dataclass(frozen=True)
class FixturesPage:
    """One /fixtures response: the items that parsed and those that did not."""

    items: list[Fixture]
    malformed: list[MalformedItem]


@dataclass(frozen=True)
class ApiStatus:
    """The /status answer: plan and today's usage."""

    plan: str
    requests_current: int
    limit_day: int


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping) or key not in obj:
            raise MalformedPayload(f"missing {'.'.join(path)}")
        obj = obj[key]
    return obj


def _int(obj: Any, *path: str, optional: bool = False) -> Any:
    value = _get(obj, *path)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedPayload(f"{'.'.join(path)} is not an integer: {value!r}")
    return value


def _str(obj: Any, *path: str) -> str:
    value = _get(obj, *path)
    if not isinstance(value, str):
        raise MalformedPayload(f"{'.'.join(path)} is not a string: {value!r}")
    return value


def _kickoff(item: Any) -> datetime:
    raw = _get(item, "fixture", "date")
    try:
        when = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        when = None
    if when is None:
        when = datetime.fromtimestamp(_int(item, "fixture", "timestamp"), UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def parse_fixture(item: Any) -> Fixture:
    """Parse one /fixtures item; raises MalformedPayload."""
    events = item.get("events", []) if isinstance(item, Mapping) else []
    if events is None:
        events = []
    if not isinstance(events, list) or not all(isinstance(e, Mapping) for e in events):
        raise MalformedPayload("events is not a list of objects")
    return Fixture(
        id=_int(item, "fixture", "id"), kickoff=_kickoff(item),
        status_short=_str(item, "fixture", "status", "short"),
        status_long=_str(item, "fixture", "status", "long"),
        elapsed=_int(item, "fixture", "status", "elapsed", optional=True),
        league_id=_int(item, "league", "id"), league_name=_str(item, "league", "name"),
        season=_int(item, "league", "season"),
        home_id=_int(item, "teams", "home", "id"), home_name=_str(item, "teams", "home", "name"),
        away_id=_int(item, "teams", "away", "id"), away_name=_str(item, "teams", "away", "name"),
        goals_home=_int(item, "goals", "home", optional=True),
        goals_away=_int(item, "goals", "away", optional=True),
        events=[dict(e) for e in events], raw=item)


def parse_page(response: Any) -> FixturesPage:
    """Parse each item on its own: a bad item becomes a MalformedItem, the rest still parse."""
    if not isinstance(response, list):
        raise MalformedPayload("response is not a list")
    items: list[Fixture] = []
    bad: list[MalformedItem] = []
    for item in response:
        try:
            items.append(parse_fixture(item))
        except MalformedPayload as exc:
            fid = None
            try:
                fid = _int(item, "fixture", "id")
            except MalformedPayload:
                pass
            bad.append(MalformedItem(fid, str(exc)))
    return FixturesPage(items, bad)


def parse_status(response: Any) -> ApiStatus:
    """Parse the /status response; raises MalformedPayload."""
    return ApiStatus(_str(response, "subscription", "plan"), _int(response, "requests", "current"),
                     _int(response, "requests", "limit_day"))


def parse_current_season(response: Any, league_id: int) -> int:
    """The current season's year in a /leagues response; raises Permanent if there is none."""
    for entry in response if isinstance(response, list) else []:
        for season in entry.get("seasons") or [] if isinstance(entry, Mapping) else []:
            if isinstance(season, Mapping) and season.get("current") is True:
                return _int(season, "year")
    raise Permanent(f"API-Football has no current season for league {league_id}")


def header_int(headers: Mapping[str, str], name: str) -> int | None:
    """An integer response header, or None when absent or not a number."""
    try:
        return int(headers[name])
    except (KeyError, ValueError):
        return None
