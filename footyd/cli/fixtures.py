"""`footyd ingest` and `footyd advance`: fixtures by hand, no daemon needed."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, datetime
from typing import Any

from footyd.cli.common import AddCommand, load, oneshot
from footyd.config import Config
from footyd.errors import ExitCode
from footyd.records import STAGE_STAMP

STAGES = ("staging", "active", "completed")


async def _ingest(cfg: Config, day: date, teams: list[int], leagues: list[int]) -> dict[str, Any]:
    from footyd.clients.football import FootballClient
    from footyd.clients.store import Store
    from footyd.stages.ingest import Ingest, Scope

    scope = (Scope(teams=tuple(teams), leagues=tuple(leagues), season=cfg.scope.season)
             if teams or leagues else
             Scope(tuple(cfg.scope.teams), tuple(cfg.scope.leagues), cfg.scope.season))
    async with Store(cfg.mongo) as store, FootballClient(cfg.api_football) as client:
        report = await Ingest(store, client, clock=lambda: datetime.now(UTC)).run(scope, [day])
    # the same numbers as the ingest_done log line: calls of the plan, of which failed, and the
    # HTTP requests they cost (retries included)
    return {"date": day.isoformat(), "plan": report.plan, "calls": report.calls,
            "failed_calls": report.failed_calls, "requests": report.requests,
            "inserted": report.inserted,
            "updated": report.updated, "skipped_completed": report.skipped_completed,
            "malformed": report.malformed, "fixture_ids": report.fixture_ids}


def cmd_ingest(args: argparse.Namespace) -> int:
    cfg = load(args.config)
    key = cfg.api_football.api_key
    if key is None or not key.get_secret_value():
        print("footyd: api_football.api_key is not set: nothing can be ingested; fix: "
              "FOOTYD_API_FOOTBALL__API_KEY or api_football.api_key_file", file=sys.stderr)
        return ExitCode.CONFIG
    if not (args.team or args.league or cfg.scope.teams or cfg.scope.leagues):
        print("footyd: nothing is tracked: the config's scope has no teams and no leagues; pass "
              "--team ID and/or --league ID (repeatable), or set scope.teams / scope.leagues",
              file=sys.stderr)
        return ExitCode.CONFIG
    result = oneshot(cfg, _ingest(cfg, args.date, args.team, args.league), level=cfg.log.level)
    print(json.dumps(result, indent=2))
    return ExitCode.OK if not result["failed_calls"] else ExitCode.ERROR


async def _advance(cfg: Config, fixture_id: int, to: str, force: bool) -> tuple[str | None, str]:
    """(stage before, what happened: moved | same | needs_force | raced)."""
    from footyd.clients.store import Store

    async with Store(cfg.mongo) as store:
        doc = await store.fixtures.find_one({"_id": fixture_id}, {"stage": 1})
        if doc is None:
            return None, "missing"
        before = doc["stage"]
        if before == to:
            return before, "same"
        if before == "completed" and not force:
            return before, "needs_force"
        moved = await store.fixtures.find_one_and_update(
            {"_id": fixture_id, "stage": before},
            {"$set": {"stage": to, STAGE_STAMP[to]: datetime.now(UTC), "advanced_by_hand": True}},
        )
        return before, "moved" if moved is not None else "raced"


def cmd_advance(args: argparse.Namespace) -> int:
    cfg = load(args.config)
    fid = args.fixture_id
    before, what = oneshot(cfg, _advance(cfg, fid, args.to, args.force))
    if what == "missing":
        print(f"footyd: fixture {fid} is not stored", file=sys.stderr)
        return ExitCode.ERROR
    if what == "same":
        print(f"fixture {fid}: already {before}; nothing changed")
        return ExitCode.OK
    if what == "needs_force":
        print(f"footyd: fixture {fid} is completed; moving it back to {args.to} re-opens it for "
              "polling (API calls): pass --force to do it", file=sys.stderr)
        return ExitCode.ERROR
    if what == "raced":
        print(f"footyd: fixture {fid} changed stage concurrently; try again", file=sys.stderr)
        return ExitCode.ERROR
    print(f"fixture {fid}: {before} -> {args.to}")
    return ExitCode.OK


def register(add: AddCommand) -> None:
    p = add("ingest", cmd_ingest, "ingest fixtures for one UTC day now (no daemon needed)")
    p.add_argument("--date", required=True, type=date.fromisoformat, help="YYYY-MM-DD (UTC)")
    p.add_argument("--team", type=int, action="append", default=[], help="team id (repeatable)")
    p.add_argument("--league", type=int, action="append", default=[], help="league id (repeatable)")
    p = add("advance", cmd_advance, "move a fixture to another stage by hand")
    p.add_argument("fixture_id", type=int)
    p.add_argument("--to", required=True, choices=STAGES)
    p.add_argument("--force", action="store_true", help="allow moving a completed fixture back")
