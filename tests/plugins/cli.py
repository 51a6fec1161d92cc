"""Run the `footyd` command line as a subprocess, as a user would."""

from __future__ import annotations

import asyncio
import os
import sys


async def run_footyd(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`python -m footyd ARGS` with this environment plus `env`: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "footyd", *args, env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
