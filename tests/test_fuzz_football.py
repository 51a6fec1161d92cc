"""Fuzzing the API-Football payload parsing: hostile bodies raise only the documented errors."""

from __future__ import annotations

import copy
import json
from typing import Any

import bson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from footyd.clients.football import FootballClient
from footyd.clients.football_parse import decode_body, parse_fixture, parse_page
from footyd.config import ApiFootballConfig
from footyd.errors import FootydError, MalformedPayload
from footyd.records import fixture_fields
from footyd.stages import rules

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SCALARS = (st.none() | st.booleans() | st.text(max_size=12)
           | st.integers(min_value=-2**80, max_value=2**80)
           | st.floats(allow_nan=False, allow_infinity=False))
JSONISH = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=4)
                       | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=20)

ITEM: dict[str, Any] = {
    "fixture": {"id": 1234567, "timezone": "UTC", "date": "2026-03-14T15:00:00+00:00",
                "timestamp": 1773500400, "periods": {"first": 1773500400, "second": None},
                "status": {"long": "Second Half", "short": "2H", "elapsed": 67, "extra": None}},
    "league": {"id": 39, "name": "Premier League", "country": "England", "season": 2025},
    "teams": {"home": {"id": 40, "name": "Home FC"}, "away": {"id": 42, "name": "Away FC"}},
    "goals": {"home": 1, "away": 0},
    "events": [{"time": {"elapsed": 23, "extra": None}, "team": {"id": 40, "name": "Home FC"},
                "player": {"id": 306, "name": "M. Striker"}, "assist": {"id": None, "name": None},
                "type": "Goal", "detail": "Normal Goal", "comments": None}],
}
PATHS = [("fixture",), ("fixture", "id"), ("fixture", "date"), ("fixture", "timestamp"),
         ("fixture", "status"), ("fixture", "status", "short"), ("fixture", "status", "elapsed"),
         ("league",), ("league", "id"), ("league", "season"), ("teams",), ("teams", "home"),
         ("teams", "away", "id"), ("goals",), ("goals", "home"), ("events",)]
EVENT_PATHS = [("time",), ("time", "elapsed"), ("time", "extra"), ("team",), ("team", "id"),
               ("player",), ("player", "id"), ("player", "name"), ("type",), ("detail",),
               ("comments",)]


def _put(tree: Any, path: tuple[str, ...], value: Any) -> Any:
    node = tree
    for key in path[:-1]:
        if not isinstance(node, dict):
            return tree
        node = node.setdefault(key, {})
    if isinstance(node, dict):
        node[path[-1]] = value
    return tree


@st.composite
def mutated_items(draw: st.DrawFn) -> dict[str, Any]:
    """A valid item with a few values (item-level and event-level) replaced by anything."""
    item = copy.deepcopy(ITEM)
    for path in draw(st.lists(st.sampled_from(PATHS), max_size=3)):
        _put(item, path, draw(JSONISH))
    if isinstance(item.get("events"), list) and item["events"]:
        event = item["events"][0]
        for path in draw(st.lists(st.sampled_from(EVENT_PATHS), max_size=3)):
            _put(event, path, draw(JSONISH))
    return item


def _check_parsed(response: Any) -> None:
    page = parse_page(response)
    for fx in page.items:
        bson.encode(fixture_fields(fx))  # what the monitor writes always fits BSON
        read = rules.read_goal_events(fx.events, home_id=fx.home_id, away_id=fx.away_id)
        for goal in read.goals:
            bson.encode({"g": [goal.elapsed, goal.extra, goal.scorer_id, goal.team_id]})
    assert all(b.kind for b in page.malformed)


@FUZZ
@given(st.lists(mutated_items() | JSONISH, max_size=4))
def test_parse_page_fails_item_by_item(items: list[Any]) -> None:
    _check_parsed(items)


@FUZZ
@given(JSONISH)
def test_parse_page_rejects_any_non_list_only_as_malformed(response: Any) -> None:
    try:
        _check_parsed(response)
    except MalformedPayload:
        assert not isinstance(response, list)


@FUZZ
@given(st.binary(max_size=200) | st.builds(lambda d: b"[" * d + b"]" * d,
                                             st.integers(0, 50_000)))
def test_decode_body_raises_only_malformed(body: bytes) -> None:
    try:
        decode_body(body)
    except MalformedPayload as exc:
        assert exc.kind == "not_json"


@FUZZ
@given(st.dictionaries(st.sampled_from(["get", "errors", "response", "results", "paging"]),
                       JSONISH | st.lists(mutated_items(), max_size=3), max_size=5),
       st.sampled_from([200, 204, 400, 403, 429, 499, 500, 503]))
def test_envelopes_raise_only_documented_errors(env: dict[str, Any], status: int) -> None:
    client = FootballClient(ApiFootballConfig(api_key=SecretStr("k")))
    try:
        response, _pruned = client._handle("fixtures", status, {}, json.dumps(env).encode())
        if isinstance(response, list):
            _check_parsed(response)
    except FootydError:
        pass  # ApiError, Retryable, RateLimited, QuotaExhausted, MalformedPayload


@pytest.mark.parametrize(("penalty", "want"), [
    ({"home": 4, "away": 3}, (4, 3)), ({"home": None, "away": None}, (None, None)),
    ({"home": "4", "away": -1}, (None, None)), ("x", (None, None)), (None, (None, None))])
def test_a_shootout_score_is_read_and_a_bad_one_is_unknown_never_a_bad_fixture(
        penalty: Any, want: tuple[int | None, int | None]) -> None:
    item = copy.deepcopy(ITEM)
    item["fixture"]["status"] = {"long": "Match Finished", "short": "PEN", "elapsed": 120}
    item["score"] = {"penalty": penalty}
    fx = parse_fixture(item)
    assert (fx.penalties_home, fx.penalties_away) == want
    assert ("penalty" in fixture_fields(fx)["score"]) == (want[0] is not None)
