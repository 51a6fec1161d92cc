"""Version and build identity, logged at start and exported as footyd_build_info."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlparse

from footyd import __version__


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit this code came from: FOOTYD_BUILD_COMMIT, a checkout's HEAD, what pip recorded
    when it installed from a git URL or a checkout (PEP 610 direct_url.json), or "unknown"."""
    env = os.environ.get("FOOTYD_BUILD_COMMIT")
    if env:
        return env
    root = Path(__file__).resolve().parent.parent
    if (root / ".git").exists():
        return _head(root) or "unknown"
    try:
        recorded = importlib.metadata.distribution("footyd").read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        recorded = None
    return commit_from_direct_url(recorded) or "unknown"


def commit_from_direct_url(text: str | None) -> str | None:
    """The commit a PEP 610 record names: a VCS install's commit id, or the HEAD of the local
    checkout `pip install /path` was run on (while that checkout exists)."""
    try:
        record = json.loads(text) if text else None
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    vcs = record.get("vcs_info")
    if isinstance(vcs, dict) and isinstance(vcs.get("commit_id"), str):
        return vcs["commit_id"][:12]
    url = record.get("url")
    if isinstance(url, str) and url.startswith("file://") and "dir_info" in record:
        path = Path(unquote(urlparse(url).path))
        if (path / ".git").exists():
            return _head(path)
    return None


def _head(root: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=2, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def version() -> str:
    return __version__
