"""`footyd check-config` and `footyd healthcheck`."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from typing import Any

from footyd import config as config_mod
from footyd.cli.common import AddCommand, load, load_valid, print_warnings
from footyd.errors import ExitCode

FLAT_LEAVES = {"team_aliases", "libraries"}  # dict-valued keys shown as one value


def flat_keys(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value for every leaf of a masked config tree."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and key not in FLAT_LEAVES:
            out.update(flat_keys(value, path + "."))
        else:
            out[path] = value
    return out


def _apply(path: str) -> str:
    return "hot" if config_mod.is_hot(path) else "restart"


def cmd_check_config(args: argparse.Namespace) -> int:
    cfg, verdict = load_valid(args.config)
    masked = config_mod.masked(cfg)
    keys = flat_keys(masked)
    print_warnings(verdict)
    if args.json:
        print(json.dumps({
            "file": args.config,
            "valid": True,
            "config_hash": config_mod.config_hash(cfg),
            "warnings": [{"key": f.key, "problem": f.problem, "fix": f.fix}
                         for f in verdict.warnings],
            "keys": {k: {"value": v, "apply": _apply(k)} for k, v in keys.items()},
            "config": masked,
        }, indent=2))
    else:
        print(f"# {args.config}: valid (config hash {config_mod.config_hash(cfg)})"
              + (f", {len(verdict.warnings)} warning(s) on stderr" if verdict.warnings else ""))
        print("\n".join(f"{k} = {json.dumps(v)}  # {_apply(k)}" for k, v in keys.items()))
    return ExitCode.OK


def probe(url: str, timeout_s: float) -> str | None:
    """None when `url` answers 200, else why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            if resp.status == 200:
                return None
            return f"HTTP {resp.status} from {url}"
    except urllib.error.HTTPError as exc:
        body = exc.read(300).decode(errors="replace").strip()
        return f"HTTP {exc.code} from {url}" + (f": {body}" if body else "")
    except urllib.error.URLError as exc:
        return f"{url}: {getattr(exc.reason, 'strerror', None) or exc.reason}"
    except OSError as exc:  # timeouts, resets
        return f"{url}: {exc.strerror or type(exc).__name__}"


def healthz_url(listen: str) -> str:
    """The URL to probe for a listen address; a wildcard address is probed on loopback."""
    host, port = listen.rsplit(":", 1)
    host = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "[::]": "[::1]"}.get(host, host)
    return f"http://{host}:{port}/healthz"


def cmd_healthcheck(args: argparse.Namespace) -> int:
    url = args.url or healthz_url(load(args.config).health.listen)
    reason = probe(url, args.timeout_s)
    print("healthy" if reason is None else f"unhealthy: {reason}")
    return ExitCode.OK if reason is None else ExitCode.ERROR


def register(add: AddCommand) -> None:
    p = add("check-config", cmd_check_config,
            "validate the config as a whole and print it (warnings on stderr)")
    p.add_argument("--json", action="store_true", help="print JSON instead of key = value lines")
    p = add("healthcheck", cmd_healthcheck, "probe /healthz (exit 0 healthy, 1 not, with the reason)")
    p.add_argument("--url", default=None, help="probe this URL instead of the configured one")
    p.add_argument("--timeout-s", type=float, default=3.0)
