"""`footyd status`, `redrive`, `search` and `explain`: see and steer a running or stopped daemon."""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from footyd.build import version
from footyd.cli.actions import Moved, redrive_failed, redrive_goal, search_now
from footyd.cli.common import AddCommand, load, oneshot
from footyd.cli.status import status_report
from footyd.config import Config
from footyd.errors import ExitCode

_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def since_arg(text: str) -> datetime:
    """An ISO time (UTC if naive) or a span back from now: 90m, 6h, 2d."""
    match = _SPAN.match(text.strip())
    if match:
        return datetime.now(UTC) - timedelta(seconds=float(match[1]) * _UNIT_S[match[2]])
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected an ISO time (2026-05-01T12:00) or a span (90m, 6h, 2d)") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


async def _with_store(cfg: Config, fn: Any, *args: Any) -> Any:
    from footyd.clients.store import Store

    async with Store(cfg.mongo) as store:
        return await fn(store, *args)


# -- status -----------------------------------------------------------------------------------

def _ago(at: Any, now: datetime) -> str:
    if not isinstance(at, datetime):
        return "never"
    s = int((now - at).total_seconds())
    return f"{s}s ago" if s < 120 else f"{s // 60}m ago" if s < 7200 else f"{s // 3600}h ago"


def _daemon_line(d: dict[str, Any], now: datetime) -> str:
    who = f"footyd {d.get('version')} ({d.get('commit')}) on {d.get('host')} pid {d.get('pid')}"
    if d["running"]:
        up = int(d.get("uptime_s") or 0)
        return (f"daemon: running, {who}, up {up // 3600}h{up % 3600 // 60:02d}m, "
                f"heartbeat {_ago(d.get('beat_at'), now)}")
    if "host" not in d:
        return f"daemon: no daemon running ({d['reason']})"
    return f"daemon: no daemon running ({d['reason']}; last: {who}, heartbeat {_ago(d.get('beat_at'), now)})"


def _replica_lines(report: dict[str, Any]) -> list[str]:
    """With more than one replica: who leads, and each replica on a line."""
    rows = [r for r in report.get("replicas", []) if r["running"]]
    if len(rows) < 2:
        return []
    lead = report.get("leader") or {}
    lines = [f"replicas: {len(rows)} running; leader {lead.get('replica')} (epoch {lead.get('epoch')})"
             + (" LAPSED: a standby takes over" if lead.get("lapsed") else "")]
    for r in rows:
        up = int(r.get("uptime_s") or 0)
        lines.append(f"  {r['replica']} {'leader' if r['leader'] else 'standby'} on {r['host']} "
                     f"pid {r['pid']}, footyd {r['version']}, up {up // 3600}h{up % 3600 // 60:02d}m, "
                     f"{r.get('claims', 0)} item(s) claimed")
    return lines


def _quota_line(q: dict[str, Any] | None, *, api_enabled: bool = True) -> str:
    if not api_enabled:
        return ("api quota: none used: API-Football is disabled (api_football.api_key is not set; "
                "FOOTYD_API_FOOTBALL__API_KEY or api_key_file)")
    if not q:
        return "api quota: unknown (no daemon has reported it)"
    limit, left = q.get("limit_day"), q.get("remaining_day")
    used = limit - left if isinstance(limit, int) and isinstance(left, int) else "?"
    line = f"api quota: {used} used, {left if left is not None else '?'} left of {limit or '?'} today"
    if q.get("paused_until"):
        line += f"; paused until {q['paused_until']}"
    return line


def render(report: dict[str, Any], now: datetime) -> str:
    """The human-readable status."""
    lines = [_daemon_line(report["daemon"], now), *_replica_lines(report),
             _quota_line(report["api_quota"], api_enabled=report.get("api_football_enabled", True))]
    sources = report["sources"]
    lines.append("sources: " + (", ".join(
        f"{n} {s['state']}" + (f" ({s['last_error']})" if s.get("last_error") else "")
        for n, s in sources.items()) or "none reported"))
    rl = report["last_reload"]
    lines.append("last reload: " + ("none" if not rl else
                 f"{rl.get('at')} {'ok' if rl.get('ok') else 'FAILED'}"
                 + (f", changed {', '.join(rl.get('changed') or []) or 'nothing'}" if rl.get("ok")
                    else f": {'; '.join(rl.get('errors') or [])}")))
    fx = report["fixtures"]
    lines.append("fixtures: " + (", ".join(f"{k} {v}" for k, v in sorted(fx["by_stage"].items()))
                                 or "none"))
    for f in fx["open"]:
        home, away = f["score"]
        score = f"{home}-{away}" if home is not None else "v"
        minute = f" {f['minute']}'" if f["minute"] is not None else ""
        lines.append(f"  {f['fixture_id']} {f['home']} {score} {f['away']}{minute} "
                     f"[{f['status']}] {f['stage']}")
    lines.append("goals: " + ("none" if not report["goals"] else ""))
    for state, g in sorted(report["goals"].items()):
        clips = ", ".join(f"{k} {v}" for k, v in sorted(g["clips"].items())) or "no clips"
        lines.append(f"  {state} {g['goals']} (clips: {clips})")
    if report.get("notifications"):
        lines.append("webhook deliveries: " + ", ".join(
            f"{k} {v}" for k, v in sorted(report["notifications"].items())))
    failed = report["failed"]
    if failed["goals"] or failed["clips"]:
        lines.append("failed (footyd redrive --failed):")
        lines += [f"  goal {g['goal_id']} ({g['outcome'] or g['state']}): {g['reason']}"
                  for g in failed["goals"]]
        lines += [f"  clip {c['clip_id']} of goal {c['goal_id']}: {c['reason']}"
                  for c in failed["clips"]]
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    cfg = load(args.config)
    now = datetime.now(UTC)
    report = oneshot(cfg, _with_store(cfg, status_report, now))
    key = cfg.api_football.api_key
    report["api_football_enabled"] = bool(key and key.get_secret_value())
    if args.json:
        print(json.dumps({"version": version(), **report}, indent=2, default=str))
    else:
        print(render(report, now))
    return ExitCode.OK


# -- redrive, search --------------------------------------------------------------------------

def _print_moved(moved: list[Moved]) -> None:
    for m in moved:
        print(m.line())
    print(f"moved {len(moved)} item(s)" + ("; a running daemon picks them up on its next due scan"
                                           if moved else ""))


def cmd_redrive(args: argparse.Namespace) -> int:
    if (args.goal_id is None) == (not args.failed):
        print("footyd: redrive needs a GOAL_ID or --failed (not both)", file=sys.stderr)
        return ExitCode.USAGE
    cfg = load(args.config)
    now = datetime.now(UTC)
    if args.goal_id is not None:
        moved = oneshot(cfg, _with_store(cfg, redrive_goal, args.goal_id, now))
        if moved is None:
            print(f"footyd: goal {args.goal_id} is not stored", file=sys.stderr)
            return ExitCode.ERROR
    else:
        moved = oneshot(cfg, _with_store(cfg, redrive_failed, args.since, now))
    _print_moved(moved)
    return ExitCode.OK


def cmd_search(args: argparse.Namespace) -> int:
    cfg = load(args.config)
    result = oneshot(cfg, _with_store(cfg, search_now, args.goal_id, datetime.now(UTC)))
    if isinstance(result, str):
        print(f"footyd: {result}", file=sys.stderr)
        return ExitCode.ERROR
    _print_moved([result])
    return ExitCode.OK


def cmd_explain(args: argparse.Namespace) -> int:
    cfg = load(args.config)
    from footyd.cli import explain  # OpenCV and PyAV: only this command needs them

    report = oneshot(cfg, _with_store(cfg, explain.explain_report, cfg.dedup, args.goal_id))
    if report is None:
        print(f"footyd: goal {args.goal_id} is not stored", file=sys.stderr)
        return ExitCode.ERROR
    print(json.dumps(report, indent=2, default=str) if args.json else explain.render(report))
    return ExitCode.OK


def register(add: AddCommand) -> None:
    p = add("status", cmd_status, "fixtures, goals, failures, quota, sources and the running "
            "daemon, from MongoDB")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("redrive", cmd_redrive, "move failed goals and clips back to a retryable state")
    p.add_argument("goal_id", nargs="?", default=None, help="one goal (and its failed clips)")
    p.add_argument("--failed", action="store_true", help="every failed goal and clip")
    p.add_argument("--since", type=since_arg, default=None,
                   help="with --failed: only those that failed after this (ISO time or 90m/6h/2d)")
    p = add("search", cmd_search, "schedule one extra search attempt for a goal, now")
    p.add_argument("goal_id")
    p = add("explain", cmd_explain, "a goal's clip groups and why each clip was judged the same "
            "as or different from the others")
    p.add_argument("goal_id")
    p.add_argument("--json", action="store_true", help="print JSON")
