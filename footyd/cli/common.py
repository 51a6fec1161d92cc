"""Shared by the command modules: config loading and judging, one-shot runs, the -c option."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from footyd import config as config_mod
from footyd import logs
from footyd.config import Config
from footyd.config.check import Verdict, judge
from footyd.errors import ConfigError, DependencyUnavailable, ExitCode

T = TypeVar("T")
FALLBACK_CONFIG = "/etc/footyd/config.toml"
Command = Callable[[argparse.Namespace], int]
AddCommand = Callable[[str, Command, str], argparse.ArgumentParser]


def default_config() -> str:
    """$FOOTYD_CONFIG, else /etc/footyd/config.toml."""
    return os.environ.get("FOOTYD_CONFIG") or FALLBACK_CONFIG


def config_help() -> str:
    return (f"config file (TOML); default: $FOOTYD_CONFIG, else {FALLBACK_CONFIG} "
            f"(now: {default_config()})")


def load_valid(path: str | None) -> tuple[Config, Verdict]:
    """Load and judge the config; on any error print one line per problem and exit 78."""
    try:
        cfg = config_mod.load(path)
    except ConfigError as exc:
        _fail(path, exc.errors)
    verdict = judge(cfg)
    if verdict.errors:
        _fail(path, [f.line() for f in verdict.errors])
    return cfg, verdict


def load(path: str | None) -> Config:
    """load_valid() without the warnings."""
    return load_valid(path)[0]


def _fail(path: str | None, lines: list[str]) -> Any:
    print(f"footyd: invalid configuration ({path}):", file=sys.stderr)
    for line in lines:
        print(f"  {line}", file=sys.stderr)
    raise SystemExit(ExitCode.CONFIG)


def print_warnings(verdict: Verdict) -> None:
    for finding in verdict.warnings:
        print(f"footyd: warning: {finding.line()}", file=sys.stderr)


def oneshot(cfg: Config, coro: Coroutine[Any, Any, T], *, level: str = "warning") -> T:
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
