"""Command line: run | check-config | status | healthcheck | ingest | advance | demo."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import structlog

from footyd import config as config_mod
from footyd import logs
from footyd.build import git_commit, version
from footyd.config import Config
from footyd.errors import ConfigError, DependencyUnavailable, ExitCode
from footyd.records import STAGE_STAMP

log = structlog.get_logger("footyd.cli")

T = TypeVar("T")
DEFAULT_CONFIG = os.environ.get("FOOTYD_CONFIG", "/etc/footyd/config.toml")


def _load(path: str | None) -> Config:
    """Load the config or exit with ExitCode.CONFIG and every error by key path."""
    try:
        return config_mod.load(path)
    except ConfigError as exc:
        print(f"footyd: invalid configuration ({path}):", file=sys.stderr)
        for err in exc.errors:
            print(f"  {err}", file=sys.stderr)
        raise SystemExit(ExitCode.CONFIG) from None


def _setup_logs(cfg: Config) -> None:
    logs.setup(
        level=cfg.log.level,
        fmt=cfg.log.format,
        libraries=cfg.log.libraries,
        secrets=config_mod.secret_values(cfg),
    )


def cmd_run(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    _setup_logs(cfg)
    from footyd.daemon import Daemon

    try:
        return asyncio.run(Daemon(cfg, Path(args.config)).run())
    except DependencyUnavailable as exc:
        log.error("startup_failed", reason=str(exc))
        print(f"footyd: cannot start: {exc}", file=sys.stderr)
        return ExitCode.UNAVAILABLE
    except Exception:
        log.critical("daemon_crashed", exc_info=True)
        return ExitCode.SOFTWARE


def _flat_lines(tree: dict[str, Any], prefix: str = "") -> list[str]:
    lines = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and key not in {"team_aliases", "libraries"}:
            lines.extend(_flat_lines(value, path + "."))
        else:
            kind = "hot" if config_mod.is_hot(path) else "restart"
            lines.append(f"{path} = {json.dumps(value)}  # {kind}")
    return lines


def cmd_check_config(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    masked = config_mod.masked(cfg)
    if args.json:
        print(json.dumps(masked, indent=2))
    else:
        print(f"# {args.config}: valid (config hash {config_mod.config_hash(cfg)})")
        print("\n".join(_flat_lines(masked)))
    return ExitCode.OK


def cmd_healthcheck(args: argparse.Namespace) -> int:
    url = args.url
    if url is None:
        cfg = _load(args.config)
        url = f"http://{cfg.health.listen}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout_s) as resp:
            ok = resp.status == 200
    except (urllib.error.URLError, OSError):
        ok = False
    print("healthy" if ok else "unhealthy")
    return ExitCode.OK if ok else ExitCode.ERROR


async def _status(cfg: Config) -> dict[str, Any]:
    from footyd.clients.store import Store

    async with Store(cfg.mongo) as store:
        out: dict[str, Any] = {}
        for name, key in (("fixtures", "stage"), ("goals", "state"), ("clips", "state")):
            rows = store.db[name].aggregate([{"$group": {"_id": f"${key}", "n": {"$sum": 1}}}])
            out[name] = {str(r["_id"]): r["n"] async for r in await rows}
        return out


def _oneshot(cfg: Config, coro: Coroutine[Any, Any, T], *, level: str = "warning") -> T:
    """Run a one-shot command's coroutine with logs on stderr; exit with a clear code on failure."""
    logs.setup(level=level, fmt="console", libraries=cfg.log.libraries,
               secrets=config_mod.secret_values(cfg), stream=sys.stderr)
    try:
        return asyncio.run(coro)
    except DependencyUnavailable as exc:
        print(f"footyd: {exc}", file=sys.stderr)
        raise SystemExit(ExitCode.UNAVAILABLE) from None
    except ConfigError as exc:
        print(f"footyd: {exc}", file=sys.stderr)
        raise SystemExit(ExitCode.CONFIG) from None


def cmd_status(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    counts = _oneshot(cfg, _status(cfg))
    print(json.dumps({"version": version(), "commit": git_commit(), **counts}, indent=2))
    return ExitCode.OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="footyd", description=__doc__)
    parser.add_argument("--version", action="version", version=f"footyd {version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument("-c", "--config", default=DEFAULT_CONFIG, help="config file (TOML)")
        p.set_defaults(func=func)
        return p

    add("run", cmd_run, "run the daemon")
    p = add("check-config", cmd_check_config, "validate and print the effective config")
    p.add_argument("--json", action="store_true", help="print JSON instead of key = value lines")
    p = add("healthcheck", cmd_healthcheck, "probe /healthz (exit 0 healthy, 1 not)")
    p.add_argument("--url", default=None, help="probe this URL instead of the configured one")
    p.add_argument("--timeout-s", type=float, default=3.0)
    add("status", cmd_status, "print fixture, goal and clip counts from MongoDB")
    _add_extra_commands(add)
    _add_demo_command(sub)
    return parser


def _add_demo_command(sub: Any) -> None:
    p = sub.add_parser("demo", help="play a simulated match day through the real daemon")
    p.add_argument("--speed", type=float, default=1.0,
                   help="match clock speed-up (default 1: about 80 s for the day)")
    p.add_argument("--dir", type=Path, default=None,
                   help="work dir for clips, logs and the embedded MongoDB (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir")
    p.add_argument("--serve", action="store_true",
                   help="keep the daemon and page up after the day until Ctrl-C")
    p.add_argument("--plain", action="store_true", help="plain log lines, no live view")
    p.add_argument("--short", action="store_true", help="play only the script's short variant")
    p.add_argument("--script", type=Path, default=None, help="another demo script (TOML)")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from footyd import demo

    if not args.speed > 0:
        print("footyd demo: --speed must be > 0", file=sys.stderr)
        return ExitCode.USAGE
    return demo.main(demo.DemoOptions(
        script=args.script, short=args.short, speed=args.speed, dir=args.dir, keep=args.keep,
        serve=args.serve, plain=True if args.plain else None, install_signals=True))


def _add_extra_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("ingest", cmd_ingest, "ingest fixtures for one UTC day now (no daemon needed)")
    p.add_argument("--date", required=True, type=date.fromisoformat, help="YYYY-MM-DD (UTC)")
    p.add_argument("--team", type=int, action="append", default=[], help="team id (repeatable)")
    p.add_argument("--league", type=int, action="append", default=[], help="league id (repeatable)")
    p = add("advance", cmd_advance, "move a fixture to another stage by hand")
    p.add_argument("fixture_id", type=int)
    p.add_argument("--to", required=True, choices=["staging", "active", "completed"])
    p = add("retention", cmd_retention, "delete completed fixtures older than retention.days")
    p.add_argument("--dry-run", action="store_true", help="print what would go, delete nothing")


async def _ingest(cfg: Config, day: date, teams: list[int], leagues: list[int]) -> dict[str, Any]:
    from footyd.clients.football import FootballClient
    from footyd.clients.store import Store
    from footyd.stages.ingest import Ingest, Scope

    scope = (Scope(teams=tuple(teams), leagues=tuple(leagues), season=cfg.scope.season)
             if teams or leagues else
             Scope(tuple(cfg.scope.teams), tuple(cfg.scope.leagues), cfg.scope.season))
    async with Store(cfg.mongo) as store, FootballClient(cfg.api_football) as client:
        report = await Ingest(store, client, clock=lambda: datetime.now(UTC)).run(scope, [day])
    return {"date": day.isoformat(), "plan": report.plan, "calls": report.calls,
            "failed_calls": report.failed_calls, "inserted": report.inserted,
            "updated": report.updated, "skipped_completed": report.skipped_completed,
            "malformed": report.malformed, "fixture_ids": report.fixture_ids}


def cmd_ingest(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    result = _oneshot(cfg, _ingest(cfg, args.date, args.team, args.league), level=cfg.log.level)
    print(json.dumps(result, indent=2))
    return ExitCode.OK if not result["failed_calls"] else ExitCode.ERROR


async def _advance(cfg: Config, fixture_id: int, to: str) -> tuple[str | None, bool]:
    from footyd.clients.store import Store

    async with Store(cfg.mongo) as store:
        doc = await store.fixtures.find_one({"_id": fixture_id}, {"stage": 1})
        if doc is None:
            return None, False
        moved = await store.fixtures.find_one_and_update(
            {"_id": fixture_id, "stage": doc["stage"]},
            {"$set": {"stage": to, STAGE_STAMP[to]: datetime.now(UTC), "advanced_by_hand": True}},
        )
        return doc["stage"], moved is not None


def cmd_advance(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    before, moved = _oneshot(cfg, _advance(cfg, args.fixture_id, args.to))
    if before is None:
        print(f"footyd: fixture {args.fixture_id} is not stored", file=sys.stderr)
        return ExitCode.ERROR
    if not moved:
        print(f"footyd: fixture {args.fixture_id} changed stage concurrently; try again",
              file=sys.stderr)
        return ExitCode.ERROR
    print(f"fixture {args.fixture_id}: {before} -> {args.to}")
    return ExitCode.OK


async def _retention(cfg: Config, dry_run: bool) -> dict[str, Any]:
    from footyd.clients.blobs import open_blob_store
    from footyd.clients.store import Store
    from footyd.stages.retention import Retention

    async with Store(cfg.mongo) as store, open_blob_store(cfg.storage) as blobs:
        return (await Retention(cfg, store, blobs).run(dry_run=dry_run)).as_dict()


def cmd_retention(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    if cfg.retention.days is None:
        print("footyd: retention is off: set [retention] days (FOOTYD_RETENTION__DAYS)",
              file=sys.stderr)
        return ExitCode.CONFIG
    print(json.dumps(_oneshot(cfg, _retention(cfg, args.dry_run)), indent=2))
    return ExitCode.OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
