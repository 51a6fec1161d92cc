"""Dedup quality: pairwise precision/recall of `compare` on a generated corpus with known groups.

Corpus: N scenes, each an original plus random variants (rescaled, low quality, trimmed by 1 s or
0.5 s, logo/score overlay, combinations), plus distinct singletons, half of them sharing one
broadcast overlay (lesson 27). Run: python bench/dedup_quality.py [--scenes 25 --singletons 25]
Writes bench/results/dedup_quality.{json,md}.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from footyd.media.fingerprint import Fingerprint, compare, fingerprint
from footyd.sim.clipgen import write_clip

RESULTS = Path(__file__).parent / "results"
OVERLAY = "LEV 1-0 BAY"
VARIANTS: dict[str, dict[str, Any]] = {
    "small": dict(width=480, height=270),
    "large": dict(width=854, height=480),
    "low": dict(quality=12),
    "trim1": dict(trim_start_s=1.0, seconds=3.0),
    "trim05": dict(trim_start_s=0.5, seconds=3.5),
    "logo": dict(overlay=OVERLAY),
    "combo": dict(trim_start_s=0.5, seconds=3.5, width=480, height=270, quality=15,
                  overlay=OVERLAY),
}
SWEEP_HAMMING = [4, 6, 8, 10, 12, 14, 16]
SWEEP_CONSECUTIVE = [2, 3, 4, 6]


def build_corpus(root: Path, scenes: int, singletons: int, per_scene: int,
                 rng: random.Random) -> list[tuple[str, int, Path]]:
    """Write the corpus; return (name, group, path) per clip (singletons own their group)."""
    clips: list[tuple[str, int, Path]] = []
    seed = 10_000
    for s in range(scenes):
        scene = 1_000 + s
        kinds = ["orig", *rng.sample(sorted(VARIANTS), per_scene)]
        for kind in kinds:
            seed += 1
            kw = {"seconds": 4.0, **VARIANTS.get(kind, {})}
            path = write_clip(root / f"s{s}_{kind}.mp4", seed=seed, scene=scene, **kw)
            clips.append((f"s{s}_{kind}", s, path))
    for i in range(singletons):
        seed += 1
        overlay = OVERLAY if i % 2 == 0 else None
        path = write_clip(root / f"single{i}.mp4", seed=seed, scene=5_000 + i, seconds=4.0,
                          overlay=overlay)
        clips.append((f"single{i}", scenes + i, path))
    return clips


def score(fps: list[Fingerprint], groups: list[int], max_hamming: int, min_consecutive: int,
          probe_fps: float) -> dict[str, float]:
    tp = fp = fn = tn = 0
    for i, j in itertools.combinations(range(len(fps)), 2):
        same = groups[i] == groups[j]
        hit = compare(fps[i], fps[j], max_hamming=max_hamming, min_consecutive=min_consecutive,
                      probe_fps=probe_fps) is not None
        tp += same and hit
        fp += (not same) and hit
        fn += same and not hit
        tn += (not same) and not hit
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return {"max_hamming": max_hamming, "min_consecutive": min_consecutive, "tp": tp, "fp": fp,
            "fn": fn, "tn": tn, "precision": round(precision, 4), "recall": round(recall, 4)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenes", type=int, default=25)
    ap.add_argument("--per-scene", type=int, default=3, help="variants per scene besides orig")
    ap.add_argument("--singletons", type=int, default=25)
    ap.add_argument("--reference-fps", type=float, default=5.0)
    ap.add_argument("--probe-fps", type=float, default=2.0)
    args = ap.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        clips = build_corpus(Path(tmp), args.scenes, args.singletons, args.per_scene, rng)
        gen_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        fps = [fingerprint(str(p), sample_fps=args.reference_fps) for _, _, p in clips]
        fp_s = time.perf_counter() - t0
    groups = [g for _, g, _ in clips]
    t0 = time.perf_counter()
    default = score(fps, groups, 10, 3, args.probe_fps)
    pairs = default["tp"] + default["fp"] + default["fn"] + default["tn"]
    compare_ms = (time.perf_counter() - t0) / pairs * 1000
    sweep = [score(fps, groups, h, 3, args.probe_fps) for h in SWEEP_HAMMING if h != 10]
    sweep += [score(fps, groups, 10, c, args.probe_fps) for c in SWEEP_CONSECUTIVE if c != 3]
    sweep.append(default)
    sweep.sort(key=lambda r: (r["min_consecutive"], r["max_hamming"]))
    result = {"clips": len(clips), "pairs": pairs, "duplicate_pairs": default["tp"] + default["fn"],
              "reference_fps": args.reference_fps, "probe_fps": args.probe_fps,
              "generate_s": round(gen_s, 1), "fingerprint_s": round(fp_s, 1),
              "compare_ms_per_pair": round(compare_ms, 3), "default": default, "sweep": sweep}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "dedup_quality.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# Dedup quality (pairwise)", "",
             f"{len(clips)} clips ({args.scenes} scenes x (1 + {args.per_scene} variants) + "
             f"{args.singletons} singletons, half sharing one overlay), {pairs} pairs, "
             f"{result['duplicate_pairs']} duplicate pairs; reference {args.reference_fps:g} "
             f"frames/s, probe {args.probe_fps:g} frames/s; compare "
             f"{result['compare_ms_per_pair']} ms/pair.", "",
             "| max_hamming | min_consecutive | precision | recall | FP | FN |",
             "|---|---|---|---|---|---|"]
    for r in sweep:
        mark = " (default)" if r is default else ""
        lines.append(f"| {r['max_hamming']}{mark} | {r['min_consecutive']} | {r['precision']} "
                     f"| {r['recall']} | {r['fp']} | {r['fn']} |")
    (RESULTS / "dedup_quality.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
