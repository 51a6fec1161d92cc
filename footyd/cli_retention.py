"""`footyd retention`: delete completed fixtures older than retention.days (or show what would go)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from footyd.cli_common import AddCommand, load, oneshot
from footyd.config import Config
from footyd.errors import ExitCode


async def _retention(cfg: Config, dry_run: bool) -> dict[str, Any]:
    from footyd.clients.blobs import open_blob_store
    from footyd.clients.store import Store
    from footyd.stages.retention import Retention

    async with Store(cfg.mongo) as store, open_blob_store(cfg.storage) as blobs:
        return (await Retention(cfg, store, blobs).run(dry_run=dry_run)).as_dict()


def cmd_retention(args: argparse.Namespace) -> int:
    cfg = load(args.config)
    if cfg.retention.days is None:
        print("footyd: retention is off: set [retention] days (FOOTYD_RETENTION__DAYS)",
              file=sys.stderr)
        return ExitCode.CONFIG
    print(json.dumps(oneshot(cfg, _retention(cfg, args.dry_run)), indent=2))
    return ExitCode.OK


def register(add: AddCommand) -> None:
    p = add("retention", cmd_retention, "delete completed fixtures older than retention.days")
    p.add_argument("--dry-run", action="store_true", help="print what would go, delete nothing")
