"""Generated media built once per run and shared by every xdist worker (a file lock guards it)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path

import pytest


def shared_dir(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]) -> Path:
    """A directory `build` fills once per test run; other workers wait for it, then reuse it."""
    root = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # workers' base temps are siblings under the run's own directory
    target = root / f"shared-{name}"
    with (root / f"shared-{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, even on failure
        done = target / ".complete"
        if not done.exists():
            target.mkdir(exist_ok=True)
            build(target)
            done.touch()
    return target
