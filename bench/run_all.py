"""Every bench in one run: each against its own baseline, then bench/results/summary.md.

Run from the repository root: `python -m bench.run_all [--only NAME ...]`. Each bench runs as
`python -m bench.NAME` in its own process, one after another (they would skew each other's
figures), and writes its own bench/results/NAME.{json,md}; the summary gathers those with the
machine (cores, load average before and after), the date and the commit. A bench never fails
this run on a number; a bench that cannot run does (exit 1), and the summary says which.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from footyd.build import git_commit

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).parent.parent
# in the order they run; the cheap ones first so a broken setup shows early
BENCHES = ("startup", "api_calls", "scale", "pipeline_overhead", "fingerprint_bench",
           "dedup_quality", "load", "chaos", "replicas", "latency")
# benches asked for but not built yet: listed so the summary cannot hide them
NOT_BUILT: dict[str, str] = {}
BENCH_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class Ran:
    """One bench's run: how it ended and how long it took."""

    name: str
    exit_code: int
    took_s: float
    tail: str  # the last lines of its output when it failed


def run_one(name: str) -> Ran:
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", f"bench.{name}"], cwd=ROOT, text=True,
                              capture_output=True, timeout=BENCH_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return Ran(name, -1, time.monotonic() - started, f"no result within {BENCH_TIMEOUT_S:g} s")
    print(done.stdout, end="", flush=True)
    tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:]) if done.returncode else ""
    return Ran(name, done.returncode, time.monotonic() - started, tail)


def machine() -> dict[str, object]:
    load = os.getloadavg()
    return {"cores": os.cpu_count(), "load_1m": round(load[0], 2), "python": platform.python_version(),
            "platform": platform.platform(terse=True)}


def summary(ran: list[Ran], before: dict[str, object], load_after: float, commit: str) -> str:
    lines = [
        "# footyd benchmarks",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit `{commit}` on {before['cores']} cores "
        f"({before['platform']}, Python {before['python']}); load average (1 min) "
        f"{before['load_1m']} before, {load_after:.2f} after. Each figure is a ratio against a "
        "baseline measured in the same run; MongoDB is the single-threaded SecantusDB stand-in "
        "unless FOOTYD_BENCH_MONGO_URI was set.",
        "",
        "| bench | ran | took |",
        "|---|---|---|",
    ]
    lines += [f"| `python -m bench.{r.name}` | {'yes' if r.exit_code == 0 else f'**failed** ({r.exit_code})'}"
              f" | {r.took_s:.0f} s |" for r in ran]
    lines += [f"| `bench.{name}` | **not built**: {what} | |" for name, what in NOT_BUILT.items()]
    for r in ran:
        md = RESULTS / f"{r.name}.md"
        body = md.read_text().strip().splitlines() if md.exists() and r.exit_code == 0 else []
        title = body.pop(0)[2:] if body and body[0].startswith("# ") else r.name
        lines += ["", f"## `{r.name}`: {title}", ""]
        if r.exit_code != 0:
            lines += ["It did not run:", "", "```", r.tail, "```"]
        lines += body
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", nargs="*", choices=BENCHES, help="run these benches only")
    args = ap.parse_args()
    before = machine()
    ran: list[Ran] = []
    for name in args.only or BENCHES:
        print(f"== bench.{name}", flush=True)
        ran.append(run_one(name))
        print(f"== bench.{name}: exit {ran[-1].exit_code} in {ran[-1].took_s:.0f} s", flush=True)
    commit = git_commit()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "summary.md").write_text(summary(ran, before, os.getloadavg()[0], commit))
    (RESULTS / "summary.json").write_text(json.dumps(
        {"machine": before, "commit": commit,
         "benches": [{"name": r.name, "exit_code": r.exit_code, "took_s": round(r.took_s, 1)}
                     for r in ran], "not_built": sorted(NOT_BUILT)}, indent=2) + "\n")
    failed = [r.name for r in ran if r.exit_code != 0]
    print(f"wrote {RESULTS / 'summary.md'}" + (f"; could not run: {', '.join(failed)}" if failed else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
