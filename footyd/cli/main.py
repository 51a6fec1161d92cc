"""Command line: run | check-config | status | healthcheck | ingest | advance | redrive | search
| explain | retention | demo."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import structlog

from footyd import config as config_mod
from footyd import logs
from footyd.build import version
from footyd.cli import config as cli_config
from footyd.cli import fixtures as cli_fixtures
from footyd.cli import ops as cli_ops
from footyd.cli import retention as cli_retention
from footyd.cli.common import AddCommand, Command, config_help, default_config, load_valid
from footyd.config import Config
from footyd.errors import ConfigError, DependencyUnavailable, ExitCode

log = structlog.get_logger("footyd.cli")

# Each command module registers its subcommands; a new module only adds a line here.
REGISTRARS: list[Callable[[AddCommand], None]] = [
    cli_config.register,
    cli_ops.register,
    cli_fixtures.register,
    cli_retention.register,
]


def _setup_logs(cfg: Config) -> None:
    logs.setup(
        level=cfg.log.level,
        fmt=cfg.log.format,
        libraries=cfg.log.libraries,
        secrets=config_mod.secret_values(cfg),
    )


def cmd_run(args: argparse.Namespace) -> int:
    cfg, verdict = load_valid(args.config)
    _setup_logs(cfg)
    for finding in verdict.warnings:  # the daemon runs, but part of it will sit idle
        log.warning("config_warning", key=finding.key, problem=finding.problem, fix=finding.fix)
    from footyd.runtime.daemon import Daemon, flush_and_exit

    daemon = Daemon(cfg, Path(args.config))
    try:
        code = asyncio.run(daemon.run())
        if daemon.stop_signal is not None:
            # stopped by a signal: leave now, so that a second one landing while the process
            # winds down still meets footyd's handler (exit 75) instead of interpreter teardown
            flush_and_exit(code)
        return code
    except ConfigError as exc:  # found at startup (e.g. an unsafe scratch dir)
        log.error("startup_failed", reason="invalid configuration", errors=exc.errors)
        print("footyd: invalid configuration:\n" + "\n".join(f"  {e}" for e in exc.errors),
              file=sys.stderr)
        return ExitCode.CONFIG
    except DependencyUnavailable as exc:
        log.error("startup_failed", reason=str(exc))
        print(f"footyd: cannot start: {exc}", file=sys.stderr)
        return ExitCode.UNAVAILABLE
    except Exception as exc:
        log.critical("daemon_crashed", exc_info=True)
        reason = f"{type(exc).__name__}: {exc}"
        for secret in config_mod.secret_values(cfg):  # stderr is not behind the log redactor
            reason = reason.replace(secret, "**********")
        print(f"footyd: crashed: {reason[:500]} (traceback: the daemon_crashed log line)",
              file=sys.stderr)
        return ExitCode.SOFTWARE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="footyd", description=__doc__)
    parser.add_argument("--version", action="version", version=f"footyd {version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Command, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("-c", "--config", default=default_config(), help=config_help())
        p.set_defaults(func=func)
        return p

    add("run", cmd_run, "run the daemon")
    for register in REGISTRARS:
        register(add)
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
    from footyd.demo import runner as demo

    if not args.speed > 0:
        print("footyd demo: --speed must be > 0", file=sys.stderr)
        return ExitCode.USAGE
    return demo.main(demo.DemoOptions(
        script=args.script, short=args.short, speed=args.speed, dir=args.dir, keep=args.keep,
        serve=args.serve, plain=True if args.plain else None, install_signals=True))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader went away (`footyd check-config | head`): stop quietly, like other tools
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitCode.ERROR
    return code


if __name__ == "__main__":
    raise SystemExit(main())
