"""The fan's view of goals: public goals only, newest first, each with its best clip (reads only)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from footyd import records
from footyd.clients.store import Store
from footyd.web.views import HEAVY_FIELDS, Doc, View, fixture_view, goal_view, http_url, num, text

MAX_FAN_GOALS = 200
MAX_FIXTURES = 500
# a goal is the public's once the monitor confirmed it (a pending goal is searched, never shown)
PUBLIC = {"state": {"$ne": records.GOAL_PENDING}, "confirmed_at": {"$ne": None}}


def clip_card(doc: Doc) -> View:
    """A kept clip as a fan sees it: the video, its poster, its size and where it was posted."""
    poster = doc.get("poster_key")
    return {
        "id": doc["_id"],
        "video_url": f"/api/clips/{doc['_id']}/video",
        "poster_url": f"/api/clips/{doc['_id']}/poster" if isinstance(poster, str) else None,
        "width": _int(doc.get("width")),
        "height": _int(doc.get("height")),
        "duration_s": num(doc.get("duration_s")),
        "source": doc.get("source") if isinstance(doc.get("source"), str) else None,
        "post_url": http_url(doc.get("permalink")) or http_url(doc.get("post_url")),
    }


def rank_clips(docs: Iterable[Doc]) -> list[View]:
    """Kept clips with a stored video, best first: tallest, then highest bitrate, then longest."""
    kept = [d for d in docs if d.get("state") == records.CLIP_KEPT and isinstance(d.get("blob_key"), str)]
    kept.sort(key=lambda d: (-(num(d.get("height")) or 0), -(num(d.get("bitrate_bps")) or 0),
                             -(num(d.get("duration_s")) or 0), str(d["_id"])))
    return [clip_card(d) for d in kept]


def fan_goal(goal: Doc, fixture: Doc | None, clips: Iterable[Doc]) -> View:
    """One public goal: who scored, when, the score it made, its best clip and the others."""
    view = goal_view(goal)
    fx = fixture_view(fixture) if fixture is not None else None
    ranked = rank_clips(clips) if goal.get("state") != records.GOAL_CANCELLED else []
    own = view["detail"] == "Own Goal"
    return {
        "id": view["id"],
        "url": f"/goal/{view['id']}",
        "fixture": fx,
        "team": view["team"],
        "opponent": {"id": _int(goal.get("opponent_id")), "name": text(goal.get("opponent_name"))},
        "scorer": view["scorer"],
        "assist": view["assist"],
        "minute": view["minute"],
        "detail": view["detail"],
        "own_goal": own,
        "penalty": view["detail"] == "Penalty",
        "score": view["score"],
        "disallowed": goal.get("state") == records.GOAL_CANCELLED,
        "searching": goal.get("state") in records.GOAL_SEARCHABLE,
        "at": view["confirmed_at"] or view["first_seen_at"],
        "best": ranked[0] if ranked else None,
        "more": ranked[1:],
        "title": goal_title(view, fx),
    }


def goal_title(goal: View, fixture: View | None) -> str:
    """'Bukayo Saka 23' · Arsenal 1–0 Chelsea' (the score this goal made)."""
    who = goal["scorer"] or "Goal"
    if goal["detail"] == "Own Goal":
        who += " (own goal)"
    elif goal["detail"] == "Penalty":
        who += " (pen.)"
    minute = f" {goal['minute']}" if goal["minute"] else ""
    if fixture is None or goal["score"]["home"] is None:
        return f"{who}{minute}"
    home, away = fixture["home"]["name"] or "Home", fixture["away"]["name"] or "Away"
    return f"{who}{minute} · {home} {goal['score']['home']}–{goal['score']['away']} {away}"


async def fan_goals(store: Store, query: Doc, *, limit: int = MAX_FAN_GOALS,
                    fixtures: dict[Any, Doc] | None = None) -> list[View]:
    """The public goals matching `query`, newest first, with fixtures and kept clips (3 reads)."""
    goals = [d async for d in store.goals.find({**query, **PUBLIC}, HEAVY_FIELDS)
             .sort([("first_seen_at", -1), ("_id", 1)]).limit(limit)]
    if not goals:
        return []
    if fixtures is None:
        ids = sorted({g["fixture_id"] for g in goals if g.get("fixture_id") is not None})
        fixtures = {d["_id"]: d async for d in store.fixtures.find({"_id": {"$in": ids}},
                                                                   HEAVY_FIELDS)}
    by_goal: dict[Any, list[Doc]] = {g["_id"]: [] for g in goals}
    async for c in store.clips.find({"goal_id": {"$in": list(by_goal)},
                                     "state": records.CLIP_KEPT}, HEAVY_FIELDS):
        by_goal[c["goal_id"]].append(c)
    return [fan_goal(g, fixtures.get(g.get("fixture_id")), by_goal[g["_id"]]) for g in goals]


def fixture_query(start: datetime, end: datetime, *, team: int | None = None,
                  league: int | None = None) -> Doc:
    """Matches kicking off in [start, end), of one team or league when asked."""
    query: Doc = {"kickoff": {"$gte": start, "$lt": end}}
    if team is not None:
        query["$or"] = [{"home.id": team}, {"away.id": team}]
    if league is not None:
        query["league_id"] = league
    return query


async def goals_of_matches(store: Store, query: Doc, *, limit: int = MAX_FAN_GOALS) -> list[View]:
    """The public goals of the matches `query` selects, newest first."""
    fixtures = {d["_id"]: d async for d in store.fixtures.find(query, HEAVY_FIELDS).limit(MAX_FIXTURES)}
    if not fixtures:
        return []
    return await fan_goals(store, {"fixture_id": {"$in": sorted(fixtures)}}, limit=limit,
                           fixtures=fixtures)


def choices(fixtures: Iterable[View]) -> dict[str, list[View]]:
    """The teams and leagues of a day's fixtures, for the filters (by name)."""
    teams: dict[Any, str] = {}
    leagues: dict[Any, str] = {}
    for f in fixtures:
        for side in (f["home"], f["away"]):
            if side["id"] is not None:
                teams[side["id"]] = side["name"] or str(side["id"])
        if f["league"]["id"] is not None:
            leagues[f["league"]["id"]] = f["league"]["name"] or str(f["league"]["id"])
    return {"teams": [{"id": k, "name": v} for k, v in sorted(teams.items(), key=lambda kv: kv[1])],
            "leagues": [{"id": k, "name": v} for k, v in sorted(leagues.items(), key=lambda kv: kv[1])]}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
