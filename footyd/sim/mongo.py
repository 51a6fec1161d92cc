"""An embedded MongoDB-wire test server (SecantusDB) run as a subprocess, never imported.

SecantusDB is a test-only stand-in (GPL-2.0, one request at a time): the demo and the test suite
start it behind a process boundary and talk to it over the wire like any MongoDB.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from footyd.sim import watchdog

EXECUTABLE = "secantusd-py"
START_TIMEOUT_S = 60.0
_LISTEN = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


class EmbeddedMongoUnavailable(RuntimeError):
    """The embedded server is not installed or did not start."""


def executable() -> str | None:
    """Path of `secantusd-py` (next to this Python first, then PATH), or None."""
    beside = Path(sys.executable).with_name(EXECUTABLE)
    if beside.exists():
        return str(beside)
    return shutil.which(EXECUTABLE)


def start_secantus(tmp: Path, port: int = 0, *, tie_to_parent: bool = False,
                   remove: Path | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start SecantusDB with its data under tmp; returns the process and a URI for it.

    `tie_to_parent`: run it under `footyd.sim.watchdog`, which stops it (and deletes `remove`)
    when this process ends, however it ends; `stop_secantus` stops it the same way."""
    exe = executable()
    if exe is None:
        raise EmbeddedMongoUnavailable(
            f"{EXECUTABLE} not found: install it with `pip install -e '.[demo]'` "
            "(or set FOOTYD_MONGO__URI to a MongoDB)")
    tmp.mkdir(parents=True, exist_ok=True)
    log_path = tmp / f"secantus-{time.monotonic_ns()}.log"
    cmd = [exe, "--host", "127.0.0.1", "--port", str(port), "--storage-path", str(tmp / "data")]
    # the log goes to a file we poll: holding a pipe open would need a reader for its lifetime
    with log_path.open("wb") as log_file:
        if tie_to_parent:
            proc = watchdog.spawn(cmd, remove=remove, output=log_file)
        else:
            proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        match = _LISTEN.search(log_path.read_text(errors="replace"))
        if match:
            # retryWrites=false: with it on, this server's writes slow ~10x after ~10k writes
            return proc, f"mongodb://127.0.0.1:{match.group(1)}/?retryWrites=false"
        if proc.poll() is not None:
            break
        time.sleep(0.05)  # polling a log file of another process: no event to await
    stop_secantus(proc, timeout_s=5.0)
    raise EmbeddedMongoUnavailable("SecantusDB did not start:\n" + log_path.read_text(errors="replace"))


def stop_secantus(proc: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within timeout_s."""
    if proc.poll() is not None:
        return
    if proc.stdin is not None:  # under a watchdog: closing its pipe stops the server
        watchdog.stop(proc, timeout_s)
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
