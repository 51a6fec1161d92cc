"""Secrets scan: the session runs with distinctive secret values and fails if any leaks.

The session's S3 server credentials, MongoDB password (a user created on the test server), the
X bearer token of every daemon config and the API key of the secrets test are distinctive
strings. The run fails when one appears in captured output of any test (logs, CLI output,
exception text of failures), a daemon subprocess's stdout/stderr, the environment of a
process footyd spawns, or the metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from footyd.metrics import REGISTRY

SECRETS = {
    "api_key": "apikey-LEAKCANARY-7f3a9c",
    "x_token": "xtoken-LEAKCANARY-2b8e1d",
    "s3_access": "AKIALEAKCANARY5C0D",
    "s3_secret": "s3secret-LEAKCANARY-9e4f",
    "mongo_password": "mongopw-LEAKCANARY-6a1b",
}
MONGO_USER = "footyd"
LEAKS: list[str] = []


# A presigned S3 URL names its access key id by design (X-Amz-Credential=, AWSAccessKeyId=): that
# use is public; any other appearance of the id, and the secret key anywhere, is a leak.
PRESIGNED_CREDENTIAL = re.compile(
    r"(X-Amz-Credential|AWSAccessKeyId)(=|%3D)" + re.escape(SECRETS["s3_access"]))


def find_leaks(where: str, text: str) -> list[str]:
    """Record (and return) every secret found in `text`."""
    text = PRESIGNED_CREDENTIAL.sub("X-Amz-Credential=(id)", text)
    found = [f"{name} in {where}" for name, value in SECRETS.items() if value in text]
    LEAKS.extend(found)
    return found


def scan_process_tree(where: str, pid: int) -> None:
    """Scan the environment of every live descendant of `pid` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        todo.extend(children.get(child, []))
        with contextlib.suppress(OSError):
            env = Path(f"/proc/{child}/environ").read_bytes().decode(errors="replace")
            find_leaks(f"{where}: environment of child pid {child}", env)


@pytest.fixture(scope="session", autouse=True)
def secrets_scan() -> Iterator[None]:
    """Spy on processes footyd itself spawns; their environments must carry no secret."""
    original = asyncio.create_subprocess_exec

    async def spy(*args: Any, **kwargs: Any) -> Any:
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller.startswith("footyd"):
            env = kwargs.get("env")
            text = "\n".join(f"{k}={v}" for k, v in (env if env is not None else os.environ).items())
            find_leaks(f"environment of {args[:2]} spawned by {caller}", text)
        return await original(*args, **kwargs)

    asyncio.create_subprocess_exec = spy  # type: ignore[assignment]
    try:
        yield
    finally:
        asyncio.create_subprocess_exec = original  # type: ignore[assignment]
    find_leaks("metrics of the test process", generate_latest(REGISTRY).decode())


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Every test phase's captured stdout/stderr/logs and failure text."""
    text = "\n".join(content for _name, content in report.sections) + "\n" + report.longreprtext
    find_leaks(f"{report.nodeid} ({report.when})", text)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if LEAKS:
        print("\nSECRETS LEAKED:\n  " + "\n  ".join(sorted(set(LEAKS))))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
