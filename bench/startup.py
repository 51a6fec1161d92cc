"""Startup time to READY=1 and idle RSS of `footyd run`, against `python -c pass` in the same run.

Run from the repository root: `python -m bench.startup`. Starts SecantusDB and moto's S3 server
on loopback, runs the daemon with a fake NOTIFY_SOCKET, and writes bench/results/startup.{json,md}.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from footyd.sim.mongo import start_secantus
from footyd.sim.net import free_port
from footyd.sim.tomlfile import write_toml

RESULTS = Path(__file__).parent / "results"
RUNS = 3
IDLE_S = 5.0


def _rss_kb(pid: int) -> int:
    """Resident set of a process and all its descendants, in KiB."""
    total = 0
    pending = [pid]
    while pending:
        p = pending.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmRSS")))
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except (OSError, StopIteration):
            continue
        pending.extend(int(c) for c in children)
    return total


def one_start(config: Path, tmp: Path) -> tuple[float, int, int]:
    """Seconds to READY=1, RSS of the main process alone and with its children, after idling."""
    sock_path = tmp / f"notify-{time.monotonic_ns()}.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(60)
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path)}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "footyd", "run", "-c", str(config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while b"READY=1" not in sock.recv(4096):
            pass
        ready_s = time.perf_counter() - started
        time.sleep(IDLE_S)  # idle on purpose: this measures the resting footprint
        main_kb = _rss_kb_single(proc.pid)
        tree_kb = _rss_kb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        sock.close()
    return ready_s, main_kb, tree_kb


def _rss_kb_single(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmRSS")))


def baseline_python() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


def main() -> None:
    from moto.server import ThreadedMotoServer

    tmp = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    proc, uri = start_secantus(tmp)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    try:
        config = write_toml(tmp / "footyd.toml", {
            "mongo": {"uri": uri, "database": "bench_startup"},
            "storage": {"kind": "s3", "bucket": "bench-startup", "endpoint_url": f"http://{host}:{port}",
                        "access_key_id": "x", "secret_access_key": "x", "create_bucket": True},
            "health": {"listen": f"127.0.0.1:{free_port()}"},
            "download": {"scratch_dir": str(tmp / "scratch")},
            "log": {"format": "json"},
        })
        runs = [one_start(config, tmp) for _ in range(RUNS)]
        base = statistics.median(baseline_python() for _ in range(RUNS))
        ready = statistics.median(r[0] for r in runs)
        result = {
            "date": datetime.now().date().isoformat(), "runs": RUNS,
            "ready_s_median": round(ready, 3), "python_startup_s_median": round(base, 3),
            "ratio_vs_bare_python": round(ready / base, 1),
            "idle_rss_main_mib": round(statistics.median(r[1] for r in runs) / 1024, 1),
            "idle_rss_with_children_mib": round(statistics.median(r[2] for r in runs) / 1024, 1),
            "note": "MongoDB = SecantusDB stand-in, S3 = moto, both on loopback; no API key "
                    "(monitor off), default sources; the process pool starts lazily",
        }
    finally:
        moto.stop()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        shutil.rmtree(tmp, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "startup.json").write_text(json.dumps(result, indent=2) + "\n")
    md = f"""# Startup and idle footprint ({result['date']})

| measure | value |
|---|---|
| `footyd run` to READY=1 (median of {RUNS}) | {result['ready_s_median']} s |
| bare `python -c pass` in the same run | {result['python_startup_s_median']} s ({result['ratio_vs_bare_python']}x) |
| idle RSS after {IDLE_S:g} s, main process | {result['idle_rss_main_mib']} MiB |
| idle RSS, main process and children | {result['idle_rss_with_children_mib']} MiB |

{result['note']}.
"""
    (RESULTS / "startup.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
