"""Fingerprint throughput: seconds of video per CPU-second, ours vs two baselines (same run).

Baselines: decoding every frame (read()) and one ffmpeg process per sampled frame (lesson 25).
Run: python bench/fingerprint_bench.py [--clips 3 --seconds 10 --sample-fps 5]
Writes bench/results/fingerprint_bench.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from footyd.media.fingerprint import fingerprint
from footyd.sim.clipgen import write_clip

RESULTS = Path(__file__).parent / "results"


def _cpu_s() -> float:
    """CPU seconds of this process plus its reaped children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _hash_frame(frame: np.ndarray) -> int:
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).astype(np.float32)
    grid = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA)
    return int.from_bytes(np.packbits(grid[:, 1:] > grid[:, :-1]).tobytes(), "big")


def decode_every_frame(path: str, sample_fps: float) -> int:
    """Baseline: read() (decode + convert) every frame, hash the sampled ones."""
    cap = cv2.VideoCapture(path)
    fps = cap.get(cv2.CAP_PROP_FPS)
    step = max(1, round(fps / sample_fps))
    n = i = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i % step == 0:
            _hash_frame(frame)
            n += 1
        i += 1
    cap.release()
    return n


def ffmpeg_per_frame(path: str, sample_fps: float, duration_s: float) -> int:
    """Baseline: spawn one ffmpeg per sampled frame (-ss seek, one PNG to a pipe)."""
    n = 0
    for k in range(int(duration_s * sample_fps)):
        out = subprocess.run(
            ["ffmpeg", "-v", "error", "-ss", f"{k / sample_fps:.3f}", "-i", path,
             "-frames:v", "1", "-f", "image2pipe", "-vcodec", "png", "-"],
            capture_output=True, check=True).stdout
        frame = cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_COLOR)
        if frame is not None:
            _hash_frame(frame)
            n += 1
    return n


def _measure(fn: Callable[[], object], video_s: float) -> dict[str, float]:
    cpu0, wall0 = _cpu_s(), time.perf_counter()
    fn()
    cpu, wall = _cpu_s() - cpu0, time.perf_counter() - wall0
    return {"cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
            "video_s_per_cpu_s": round(video_s / cpu, 2) if cpu > 0 else float("inf")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--sample-fps", type=float, default=5.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = [str(write_clip(Path(tmp) / f"c{i}.mp4", seed=500 + i, seconds=args.seconds,
                                width=1280, height=720)) for i in range(args.clips)]
        video_s = args.clips * args.seconds
        rows: dict[str, dict[str, float] | str] = {}
        rows["ours_grab_retrieve"] = _measure(
            lambda: [fingerprint(p, sample_fps=args.sample_fps) for p in paths], video_s)
        rows["decode_every_frame"] = _measure(
            lambda: [decode_every_frame(p, args.sample_fps) for p in paths], video_s)
        if shutil.which("ffmpeg"):
            rows["ffmpeg_per_frame"] = _measure(
                lambda: [ffmpeg_per_frame(p, args.sample_fps, args.seconds) for p in paths],
                video_s)
        else:
            rows["ffmpeg_per_frame"] = "skipped: ffmpeg not on PATH"
    ours = rows["ours_grab_retrieve"]
    assert isinstance(ours, dict)
    ratios = {name: round(ours["video_s_per_cpu_s"] / r["video_s_per_cpu_s"], 2)
              for name, r in rows.items() if isinstance(r, dict) and name != "ours_grab_retrieve"}
    result = {"clips": args.clips, "seconds_each": args.seconds, "size": "1280x720@25",
              "sample_fps": args.sample_fps, "cpus": os.cpu_count(), "rows": rows,
              "ours_speedup_vs": ratios}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fingerprint_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# Fingerprint throughput", "",
             f"{args.clips} x {args.seconds:g} s clips, 1280x720 mp4v @25 fps, "
             f"sampled at {args.sample_fps:g} frames/s, {os.cpu_count()} CPUs.", "",
             "| method | CPU s | wall s | video s per CPU s | ours is x faster |",
             "|---|---|---|---|---|"]
    for name, r in rows.items():
        if isinstance(r, dict):
            lines.append(f"| {name} | {r['cpu_s']} | {r['wall_s']} | {r['video_s_per_cpu_s']} "
                         f"| {ratios.get(name, 1.0)} |")
        else:
            lines.append(f"| {name} | {r} | | | |")
    (RESULTS / "fingerprint_bench.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
