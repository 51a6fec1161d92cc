"""Document shapes shared by stages (stages never import each other)."""

from __future__ import annotations

from typing import Any

from footyd.clients.football import Fixture


def fixture_fields(fx: Fixture) -> dict[str, Any]:
    """The fixture document fields derived from an API item (ingest and monitor)."""
    return {
        "kickoff": fx.kickoff,
        "status": fx.status_short,
        "status_long": fx.status_long,
        "elapsed": fx.elapsed,
        "league_id": fx.league_id,
        "league_name": fx.league_name,
        "season": fx.season,
        "home": {"id": fx.home_id, "name": fx.home_name},
        "away": {"id": fx.away_id, "name": fx.away_name},
        "score": {"home": fx.goals_home, "away": fx.goals_away},
    }
