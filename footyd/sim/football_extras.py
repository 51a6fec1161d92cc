"""Realistic `lineups`, `statistics` and `players` blocks for simulated `id`/`ids` answers.

Upstream embeds them in every `id`/`ids` item (not in `live` ones): about 22 KB of JSON per
fixture, which is what a poll cycle really has to move and parse. Seeded by fixture id.
"""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Any

POSITIONS = ["G", "D", "D", "D", "D", "M", "M", "M", "F", "F", "F"]
TEAM_STATS = ["Shots on Goal", "Shots off Goal", "Total Shots", "Blocked Shots", "Shots insidebox",
              "Shots outsidebox", "Fouls", "Corner Kicks", "Offsides", "Ball Possession",
              "Yellow Cards", "Red Cards", "Goalkeeper Saves", "Total passes", "Passes accurate",
              "Passes %", "expected_goals", "goals_prevented"]


def _player(rng: random.Random, team_id: int, n: int) -> dict[str, Any]:
    return {"id": team_id * 100 + n, "name": f"P. Player{team_id % 97}-{n}", "number": n + 1,
            "pos": POSITIONS[n % 11], "grid": f"{n % 5 + 1}:{n % 3 + 1}" if n < 11 else None}


def _player_stats(rng: random.Random, team_id: int, n: int) -> dict[str, Any]:
    r = rng.randint
    return {
        "player": {"id": team_id * 100 + n, "name": f"P. Player{team_id % 97}-{n}",
                   "photo": f"https://media.api-sports.io/football/players/{team_id * 100 + n}.png"},
        "statistics": [{
            "games": {"minutes": r(0, 90), "number": n + 1, "position": POSITIONS[n % 11],
                      "rating": f"{rng.uniform(5.5, 8.9):.1f}", "captain": n == 0,
                      "substitute": n >= 11},
            "offsides": None, "shots": {"total": r(0, 5), "on": r(0, 3)},
            "goals": {"total": None, "conceded": 0, "assists": None, "saves": None},
            "passes": {"total": r(5, 80), "key": r(0, 4), "accuracy": str(r(50, 95))},
            "tackles": {"total": r(0, 6), "blocks": r(0, 2), "interceptions": r(0, 4)},
            "duels": {"total": r(0, 15), "won": r(0, 10)},
            "dribbles": {"attempts": r(0, 5), "success": r(0, 3), "past": None},
            "fouls": {"drawn": r(0, 4), "committed": r(0, 3)},
            "cards": {"yellow": 0, "red": 0},
            "penalty": {"won": None, "commited": None, "scored": 0, "missed": 0, "saved": None},
        }],
    }


@lru_cache(maxsize=512)
def _static(fixture_id: int, home: tuple[int, str], away: tuple[int, str]
            ) -> tuple[list[Any], list[Any], list[Any]]:
    rng = random.Random(fixture_id)
    lineups: list[Any] = []
    statistics: list[Any] = []
    players: list[Any] = []
    for team_id, name in (home, away):
        team: dict[str, Any] = {
            "id": team_id, "name": name,
            "logo": f"https://media.api-sports.io/football/teams/{team_id}.png"}
        squad = [_player(rng, team_id, n) for n in range(20)]
        colors: dict[str, Any] = {"player": {"primary": "5badff", "number": "ffffff",
                                             "border": "5badff"}}
        lineups.append({
            "team": {**team, "colors": colors},
            "formation": "4-3-3",
            "startXI": [{"player": p} for p in squad[:11]],
            "substitutes": [{"player": {**p, "grid": None}} for p in squad[11:]],
            "coach": {"id": team_id * 7, "name": f"C. Coach{team_id % 89}",
                      "photo": f"https://media.api-sports.io/football/coachs/{team_id * 7}.png"},
        })
        statistics.append({"team": team, "statistics": [
            {"type": t, "value": (f"{rng.randint(35, 65)}%" if "%" in t or "Possession" in t
                                  else rng.randint(0, 20))} for t in TEAM_STATS]})
        updated: dict[str, Any] = {**team, "update": "2026-03-14T16:40:00+00:00"}
        players.append({"team": updated,
                        "players": [_player_stats(rng, team_id, n) for n in range(13)]})
    return lineups, statistics, players


def extras(fixture_id: int, home: tuple[int, str], away: tuple[int, str]) -> dict[str, Any]:
    """The `lineups`, `statistics` and `players` keys of a full `ids` item."""
    lineups, statistics, players = _static(fixture_id, home, away)
    return {"lineups": lineups, "statistics": statistics, "players": players}
