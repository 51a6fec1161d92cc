"""API-Football v3 response parsing: envelopes' `response` items into frozen dataclasses."""

from __future__ import annotations

import json
import re
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from footyd.errors import MalformedPayload, Permanent

__all__ = [
    "MAX_DEPTH",
    "TOO_DEEP",
    "ApiStatus",
    "Fixture",
    "FixturesPage",
    "MalformedItem",
    "decode_body",
    "header_int",
    "parse_current_season",
    "parse_fixture",
    "parse_page",
    "parse_status",
    "short_repr",
]

# Sane ranges: anything outside is hostile or broken, and must never reach BSON (int64).
MAX_ID = 2**31 - 1
MAX_GOALS = 99
MAX_ELAPSED_MIN = 300
SEASONS = (1900, 2200)
KICKOFF_YEARS = (1970, 2200)
MAX_NAME_CHARS = 200
MAX_EVENTS = 500
# Deeper JSON than this is pruned to TOO_DEEP (json.loads recurses; MongoDB allows 100 levels).
MAX_DEPTH = 64
TOO_DEEP = "__footyd_too_deep__"
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.S)
_repr = reprlib.Repr()  # error messages quote values shortly (3.11 takes no kwargs)
_repr.maxlevel, _repr.maxstring, _repr.maxother = 2, 40, 40


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
    penalties_home: int | None = None  # the shootout (score.penalty), when there was one
    penalties_away: int | None = None


@dataclass(frozen=True)
class MalformedItem:
    """An item that failed to parse, with its fixture id when readable."""

    fixture_id: int | None
    reason: str
    kind: str = "invalid"  # MalformedPayload.kind: the metric label


@dataclass(frozen=True)
class FixturesPage:
    """One /fixtures response: the items that parsed and those that did not."""

    items: list[Fixture]
    malformed: list[MalformedItem]
    size_bytes: int = 0  # the body's size, for choosing poll shapes


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


def _int(obj: Any, *path: str, optional: bool = False, lo: int = 0, hi: int = MAX_ID) -> Any:
    value = _get(obj, *path)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedPayload(f"{'.'.join(path)} is not an integer: {_repr.repr(value)}")
    if not lo <= value <= hi:
        raise MalformedPayload(f"{'.'.join(path)} is outside {lo}..{hi}: {_repr.repr(value)}",
                               kind="out_of_range")
    return value


def _str(obj: Any, *path: str) -> str:
    value = _get(obj, *path)
    if not isinstance(value, str):
        raise MalformedPayload(f"{'.'.join(path)} is not a string: {_repr.repr(value)}")
    return value[:MAX_NAME_CHARS]


def _kickoff(item: Any) -> datetime:
    raw = _get(item, "fixture", "date")
    when: datetime | None = None
    try:
        if isinstance(raw, str) and len(raw) <= 64:
            when = datetime.fromisoformat(raw)
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            when = when.astimezone(UTC)
    except (ValueError, OverflowError):
        when = None
    if when is None:
        stamp = _get(item, "fixture", "timestamp")
        try:
            when = datetime.fromtimestamp(stamp, UTC)
        except (TypeError, ValueError, OverflowError, OSError) as exc:
            raise MalformedPayload(f"fixture.date {_repr.repr(raw)} and fixture.timestamp "
                                   f"{_repr.repr(stamp)} are not a time", kind="bad_date") from exc
    if not KICKOFF_YEARS[0] <= when.year <= KICKOFF_YEARS[1]:
        raise MalformedPayload(f"kickoff {when.isoformat()} is out of range", kind="bad_date")
    return when


def parse_fixture(item: Any) -> Fixture:
    """Parse one /fixtures item; raises MalformedPayload (only)."""
    events = item.get("events", []) if isinstance(item, Mapping) else []
    if events is None:
        events = []
    if not isinstance(events, list) or not all(isinstance(e, Mapping) for e in events):
        raise MalformedPayload("events is not a list of objects")
    if len(events) > MAX_EVENTS:
        raise MalformedPayload(f"{len(events)} events (at most {MAX_EVENTS})", kind="out_of_range")
    return Fixture(
        id=_int(item, "fixture", "id", lo=1), kickoff=_kickoff(item),
        status_short=_str(item, "fixture", "status", "short"),
        status_long=_str(item, "fixture", "status", "long"),
        elapsed=_int(item, "fixture", "status", "elapsed", optional=True, hi=MAX_ELAPSED_MIN),
        league_id=_int(item, "league", "id"), league_name=_str(item, "league", "name"),
        season=_int(item, "league", "season", lo=SEASONS[0], hi=SEASONS[1]),
        home_id=_int(item, "teams", "home", "id"), home_name=_str(item, "teams", "home", "name"),
        away_id=_int(item, "teams", "away", "id"), away_name=_str(item, "teams", "away", "name"),
        goals_home=_int(item, "goals", "home", optional=True, hi=MAX_GOALS),
        goals_away=_int(item, "goals", "away", optional=True, hi=MAX_GOALS),
        events=[dict(e) for e in events], raw=item,
        penalties_home=_lenient_int(item, "score", "penalty", "home"),
        penalties_away=_lenient_int(item, "score", "penalty", "away"))


def _lenient_int(obj: Any, *path: str) -> int | None:
    """An optional count that is shown, never acted on: unreadable means unknown, not malformed."""
    try:
        return int(_int(obj, *path, optional=True, hi=MAX_GOALS))
    except (MalformedPayload, TypeError, ValueError):
        return None


def _has_pruned(obj: Any) -> bool:
    """Whether a decoded item holds a subtree `decode_body` pruned (iterative: no recursion)."""
    stack = [obj]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if node == TOO_DEEP:
                return True
        elif isinstance(node, Mapping):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def _item_id(item: Any) -> int | None:
    try:
        fid = _int(item, "fixture", "id", lo=1)
    except MalformedPayload:
        return None
    return int(fid)


def parse_page(response: Any, *, pruned: bool = False) -> FixturesPage:
    """Parse each item on its own: a bad item becomes a MalformedItem, the rest still parse."""
    if not isinstance(response, list):
        raise MalformedPayload("response is not a list")
    items: list[Fixture] = []
    bad: list[MalformedItem] = []
    for item in response:
        try:
            if pruned and _has_pruned(item):
                raise MalformedPayload(f"nested deeper than {MAX_DEPTH} levels", kind="too_deep")
            items.append(parse_fixture(item))
        except MalformedPayload as exc:
            bad.append(MalformedItem(_item_id(item), str(exc), exc.kind))
        except (RecursionError, ValueError, TypeError, OverflowError) as exc:
            # belt and braces: a shape the checks above did not foresee fails this item alone
            bad.append(MalformedItem(_item_id(item), f"{type(exc).__name__}: {exc}"[:200]))
    return FixturesPage(items, bad)


def _prune_deep(body: bytes, max_depth: int) -> bytes:
    """Replace every value nested deeper than `max_depth` with the string TOO_DEEP."""
    out: list[bytes] = []
    last = depth = 0
    cut_at: int | None = None
    for m in _TOKEN.finditer(body):
        tok = m.group()
        if tok[:1] == b'"':
            continue
        if tok in (b"[", b"{"):
            depth += 1
            if depth == max_depth + 1 and cut_at is None:
                cut_at = m.start()
        else:
            if depth == max_depth + 1 and cut_at is not None:
                out += [body[last:cut_at], b'"' + TOO_DEEP.encode() + b'"']
                last, cut_at = m.end(), None
            depth -= 1
    out.append(body[last:])
    return b"".join(out)


def decode_body(body: bytes) -> tuple[Any, bool]:
    """JSON-decode a response; too-deep nesting is pruned instead of raising RecursionError.

    Returns the value and whether anything was pruned; raises MalformedPayload (kind not_json).
    """
    try:
        return json.loads(body), False
    except RecursionError:
        pass
    except ValueError as exc:
        raise MalformedPayload(f"malformed JSON: {exc}"[:200], kind="not_json") from exc
    try:
        return json.loads(_prune_deep(body, MAX_DEPTH)), True
    except (ValueError, RecursionError) as exc:
        raise MalformedPayload("malformed JSON (too deep)", kind="not_json") from exc


def parse_status(response: Any) -> ApiStatus:
    """Parse the /status response; raises MalformedPayload."""
    return ApiStatus(_str(response, "subscription", "plan"),
                     _int(response, "requests", "current", hi=2**53),
                     _int(response, "requests", "limit_day", hi=2**53))


def parse_current_season(response: Any, league_id: int) -> int:
    """The current season's year in a /leagues response; raises Permanent if there is none."""
    for entry in response if isinstance(response, list) else []:
        for season in entry.get("seasons") or [] if isinstance(entry, Mapping) else []:
            if isinstance(season, Mapping) and season.get("current") is True:
                return int(_int(season, "year", lo=SEASONS[0], hi=SEASONS[1]))
    raise Permanent(f"API-Football has no current season for league {league_id}")


def short_repr(value: Any) -> str:
    """A bounded repr for messages and logs (depth, length)."""
    return _repr.repr(value)


def header_int(headers: Mapping[str, str], name: str) -> int | None:
    """An integer response header, or None when absent or not a number."""
    try:
        return int(headers[name])
    except (KeyError, ValueError):
        return None
