"""A watchdog that ties a helper process and a temp dir to its parent's life (demo, benches).

`python -m footyd.sim.watchdog [--remove DIR] [-- CMD ARGS...]` runs CMD and waits on its stdin,
a pipe whose write end only the parent holds. When that pipe closes (the parent exited, crashed,
or was SIGKILLed: the kernel closes its descriptors) or the watchdog gets SIGTERM, it stops CMD
(SIGTERM, then SIGKILL) and removes DIR. Linux's PR_SET_PDEATHSIG would tie CMD to the thread
that forked it, not to the process; a pipe ties it to the process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

STOP_TIMEOUT_S = 10.0


class _Stop(Exception):
    """SIGTERM reached the watchdog."""


def _on_term(_signum: int, _frame: Any) -> None:
    raise _Stop


def spawn(cmd: Sequence[str], *, remove: Path | None = None,
          output: IO[bytes] | int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """Start the watchdog (and CMD under it) in its own session; keep the returned process's
    stdin open for as long as CMD and DIR should live, close it to end them."""
    args = [sys.executable, "-m", "footyd.sim.watchdog"]
    if remove is not None:
        args += ["--remove", str(remove)]
    if cmd:
        args += ["--", *cmd]
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=output, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    """End a watchdog: close its pipe, wait; past the budget kill its whole session."""
    if proc.stdin is not None and not proc.stdin.closed:
        proc.stdin.close()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _end(child: subprocess.Popen[bytes] | None) -> int:
    if child is None or child.poll() is not None:
        return 0 if child is None else int(child.returncode or 0)
    child.send_signal(signal.SIGTERM)
    try:
        return int(child.wait(timeout=STOP_TIMEOUT_S))
    except subprocess.TimeoutExpired:
        child.kill()
        return int(child.wait())


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m footyd.sim.watchdog", description=__doc__)
    ap.add_argument("--remove", type=Path, default=None, help="a directory to delete at the end")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- the command to run and stop")
    args = ap.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent's Ctrl-C is the parent's to handle
    child: subprocess.Popen[bytes] | None = None
    try:
        if cmd:
            child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        while sys.stdin.buffer.read(4096):  # returns b"" once the parent's end is closed
            pass
    except _Stop:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        code = _end(child)
        if args.remove is not None:
            shutil.rmtree(args.remove, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
