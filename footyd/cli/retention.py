"""`footyd retention`: delete completed fixtures older than retention.days (or show what would go)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from footyd.cli.common import AddCommand, load, oneshot
from footyd.config import Config
from footyd.errors import ExitCode


async def _retention(cfg: Config, dry_run: bool) -> dict[str, Any]:
    from footyd.clients.blobs import open_blob_store
    from footyd.clients.store import Store
    from footyd.stages.retention import Retention

    # a dry run opens nothing for writing: no index, no bucket, no directory (read-only users)
    async with (Store(cfg.mongo, read_only=dry_run) as store,
                open_blob_store(cfg.storage, read_only=dry_run) as blobs):
        return (await Retention(cfg, store, blobs).run(dry_run=dry_run)).as_dict()


def cmd_retention(args: argparse.Namespace) -> int:
    cfg = load(args.config)
    if args.days is not None:
        cfg = cfg.model_copy(update={"retention": cfg.retention.model_copy(
            update={"days": args.days})})
    if cfg.retention.days is None:
        print("footyd: retention is off: set [retention] days (FOOTYD_RETENTION__DAYS), or "
              "preview with --dry-run --days N", file=sys.stderr)
        return ExitCode.CONFIG
    print(json.dumps(oneshot(cfg, _retention(cfg, args.dry_run)), indent=2))
    return ExitCode.OK


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of days") from None
    if not 1 <= days <= 36500:
        raise argparse.ArgumentTypeError(f"{days}: expected 1 to 36500 days")
    return days


def register(add: AddCommand) -> None:
    p = add("retention", cmd_retention, "delete completed fixtures older than retention.days")
    p.add_argument("--dry-run", action="store_true", help="print what would go, delete nothing")
    p.add_argument("--days", type=_days, default=None,
                   help="this run only: fixtures older than N days (overrides retention.days; "
                        "with --dry-run, a preview even while retention is off)")
