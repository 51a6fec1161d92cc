"""Fingerprint throughput on libx264 clips: seconds of video per CPU-second, three decodes, one run.

Inputs: 30 s broadcast-like H.264 (libx264 veryfast, CRF 23, 2 s GOP, b-frames; a camera panning
over a stadium with moving players and grain) at 720p25, 720p50 and 1080p30.
Methods, all producing the same samples (5/s, small gray frames) for the same hashing:
- pyav: footyd's fingerprint (PyAV, one thread, NONREF frames and the loop filter skipped,
  swscale to the hash size)
- opencv: footyd's previous decode (OpenCV grab() of every frame, retrieve() the sampled ones)
- ffmpeg_per_frame: one ffmpeg process per sample, the fairest way: input seeking (-ss before
  -i), one frame, scaled by ffmpeg to the hash size, raw gray to a pipe, one thread
CPU includes child processes. Run: python -m bench.fingerprint_bench [--seconds 30]
Writes bench/results/fingerprint_bench.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.legacy_fingerprint import fingerprint_opencv
from footyd.media.fingerprint import SMALL_H, SMALL_W, fingerprint, fingerprint_frames
from footyd.sim.clipgen import write_clip

RESULTS = Path(__file__).parent / "results"
SAMPLE_FPS = 5.0
CLIPS = {"720p25": (1280, 720, 25.0), "720p50": (1280, 720, 50.0), "1080p30": (1920, 1080, 30.0)}


def _cpu_s() -> float:
    """CPU seconds of this process plus its reaped children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def ffmpeg_per_frame(path: str, *, sample_fps: float) -> Any:
    """One lean ffmpeg spawn per sample: input seek, 1 frame, scaled gray raw bytes on stdout."""
    with av.open(path) as c:
        stream = c.streams.video[0]
        duration_s = float(stream.duration * stream.time_base)
    frames = []
    for k in range(int(duration_s * sample_fps)):
        out = subprocess.run(
            ["ffmpeg", "-v", "error", "-nostdin", "-threads", "1", "-ss", f"{k / sample_fps:.3f}",
             "-i", path, "-frames:v", "1", "-vf", f"scale={SMALL_W}:{SMALL_H}:flags=area",
             "-pix_fmt", "gray", "-f", "rawvideo", "-"], capture_output=True, check=True).stdout
        if len(out) == SMALL_W * SMALL_H:
            frames.append(np.frombuffer(out, dtype=np.uint8).reshape(SMALL_H, SMALL_W))
    return fingerprint_frames(tuple(frames), sample_fps=sample_fps)


METHODS: dict[str, Callable[..., Any]] = {
    "pyav": fingerprint, "opencv": fingerprint_opencv, "ffmpeg_per_frame": ffmpeg_per_frame}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--cache", type=Path,
                    default=Path(os.environ.get("TMPDIR", "/tmp")) / "footyd-fingerprint-bench")
    args = ap.parse_args()
    if shutil.which("ffmpeg") is None:
        sys.exit("ffmpeg not found")
    args.cache.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for name, (w, h, fps) in CLIPS.items():
        path = args.cache / f"{name}-{args.seconds:g}s.mp4"
        if not path.exists():
            tmp = path.with_suffix(".tmp.mp4")
            write_clip(tmp, seed=500, scene=500, stadium=5, overlay="LEV 1-0 BAY", seconds=args.seconds,
                       width=w, height=h, fps=fps, codec="h264")
            os.replace(tmp, path)
        with av.open(str(path)) as c:
            bitrate_kbps = round(c.bit_rate / 1000)
        row: dict[str, Any] = {"clip": name, "seconds": args.seconds, "bitrate_kbps": bitrate_kbps}
        for method, fn in METHODS.items():
            c0, t0 = _cpu_s(), time.monotonic()
            fp = fn(str(path), sample_fps=SAMPLE_FPS)
            cpu = _cpu_s() - c0
            row[method] = {"cpu_s": round(cpu, 3), "wall_s": round(time.monotonic() - t0, 3),
                           "samples": len(fp.hashes),
                           "video_s_per_cpu_s": round(args.seconds / cpu, 1)}
            print(name, method, row[method], file=sys.stderr)
        rows.append(row)
    result = {"sample_fps": SAMPLE_FPS, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fingerprint_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "fingerprint_bench.md").write_text(_markdown(result))
    print(_markdown(result))


def _markdown(r: dict[str, Any]) -> str:
    lines = ["# Fingerprint throughput (libx264 inputs, seconds of video per CPU-second)", "",
             f"{r['rows'][0]['seconds']:g} s clips, {r['sample_fps']:g} samples/s, one core each.", "",
             "| clip | bitrate | PyAV (footyd) | OpenCV decode (before) | ffmpeg per sample (lean) | PyAV vs OpenCV | PyAV vs ffmpeg |",
             "|---|---|---|---|---|---|---|"]
    for row in r["rows"]:
        p, o, f = (row[m]["video_s_per_cpu_s"] for m in ("pyav", "opencv", "ffmpeg_per_frame"))
        lines.append(f"| {row['clip']} | {row['bitrate_kbps']} kb/s | {p}x | {o}x | {f}x | "
                     f"{p / o:.2f}x | {p / f:.2f}x |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
