"""Version and build identity, logged at start and exported as footyd_build_info."""

from __future__ import annotations

import os
import subprocess
from functools import lru_cache
from pathlib import Path

from footyd import __version__


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit this code came from: FOOTYD_BUILD_COMMIT, a checkout's HEAD, or "unknown"."""
    env = os.environ.get("FOOTYD_BUILD_COMMIT")
    if env:
        return env
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return "unknown"
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=2, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def version() -> str:
    return __version__
