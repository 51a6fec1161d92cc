"""Experiment, not shipped: a crop-window step for off-centre crops (issue 15).

A pair that `compare` rejects is tried once more: one side's samples, hashed through WINDOWS
(zooms x shifts of the free margin, 100 windows), must match the other side's full pictures
through ONE window held for the whole clip, at one offset: a share of at least RATIO within
MAX_HAMMING bits, and `compare`'s run, seconds and coverage checks. With the motion check, the
change between consecutive samples (bits flipped) must also agree along the match (Pearson
correlation >= MIN_CORR): still frames of a static wide shot and of a zoomed shot from the same
camera position look alike, their changes over time do not. The settings were chosen on corpus A
before corpus B was scored (MIN_CORR keeps 32 of the 34 pairs the step gains on the 60-clip A of
2026-12-04; A has since gained tight and wide shots of later moments, and stays at precision 1.0).

Reports, per corpus: pairwise precision/recall within goals and the pairs the step adds, grouped
exactness over random arrival orders (footyd's grouping), and the CPU per compared pair.
Run: python -m bench.crop_windows [--orders 100] (the corpora and cache of bench.dedup_quality).
Writes bench/results/crop_windows.{json,md}.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench import dedup_quality as dq
from footyd.media.decode import sample_frames
from footyd.media.fingerprint import (
    SMALL_H,
    SMALL_W,
    Fingerprint,
    _with_jitter,
    compare,
    content_box,
    dhash_grid,
    fingerprint_frames,
)
from footyd.media.groups import Pair
from footyd.media.match import NO_MATCH, MatchResult, diagonals, longest_run
from footyd.sim.corpus import CorpusClip, build_corpus, corpus_specs
from footyd.sim.corpus_lavfi import build_corpus_b, corpus_b_specs

ZOOMS = (0.06, 0.09, 0.12, 0.15)
SHIFTS = (-1.0, -0.5, 0.0, 0.5, 1.0)
WINDOWS = [(z, sx, sy) for z in ZOOMS for sx in SHIFTS for sy in SHIFTS]
MAX_HAMMING = 10
RATIO = 0.9
MIN_CORR = 0.4


@dataclass(frozen=True)
class WindowedPrint(Fingerprint):
    """A fingerprint with every sample also hashed through each of WINDOWS (windows x samples)."""

    windows: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.uint64),
                                compare=False, repr=False)


def windowed_print(path: Path, sample_fps: float) -> WindowedPrint:
    frames = sample_frames(str(path), sample_fps=sample_fps, width=SMALL_W, height=SMALL_H).frames
    top, bottom, left, right = content_box(frames)
    hashes = np.zeros((len(WINDOWS), len(frames)), dtype=np.uint64)
    for i, small in enumerate(frames):
        pic = small[top:bottom, left:right].astype(np.float32)
        h, w = pic.shape
        for k, (z, sx, sy) in enumerate(WINDOWS):
            y0, x0 = round(h * z * (1 + sy)), round(w * z * (1 + sx))
            win = pic[y0:y0 + round(h * (1 - 2 * z)), x0:x0 + round(w * (1 - 2 * z))]
            grid = cv2.resize(win, (9, 8), interpolation=cv2.INTER_AREA)
            hashes[k, i] = dhash_grid(grid)[0] & ((1 << 64) - 1)
    base = fingerprint_frames(frames, sample_fps=sample_fps)
    return WindowedPrint(**{f.name: getattr(base, f.name) for f in dataclasses.fields(Fingerprint)},
                         windows=hashes)


def _steps(hashes: np.ndarray) -> np.ndarray:
    return np.bitwise_count(hashes[1:] ^ hashes[:-1]).astype(np.float64)


def window_match(a: WindowedPrint, b: WindowedPrint, *, motion: bool) -> MatchResult | None:
    """b's full pictures against one of a's windows, the same window for the whole clip."""
    full_b = np.array([h & ((1 << 64) - 1) for h in b.hashes], dtype=np.uint64)
    n_a, n_b = a.windows.shape[1], len(full_b)
    rate = a.sample_fps
    need = max(3, int(np.ceil(2.0 * rate)), int(np.ceil(0.5 * min(n_a, n_b))))
    best: tuple[float, MatchResult] | None = None
    for k in range(len(WINDOWS)):
        exact = np.bitwise_count(a.windows[k][:, None] ^ full_b[None, :]).astype(np.int16)
        if a.flat:
            exact[list(a.flat), :] = NO_MATCH
        if b.flat:
            exact[:, list(b.flat)] = NO_MATCH
        hits, usable, dist = diagonals(exact, _with_jitter(exact, 1), MAX_HAMMING)
        matched, overlap = hits.sum(axis=1), usable.sum(axis=1)
        for row in np.flatnonzero((matched >= need) & (matched >= RATIO * overlap)):
            if longest_run(hits[row]) < 3:
                continue
            off = int(row) - (n_a - 1)
            if motion and not _moves_alike(a.windows[k], full_b, off):
                continue
            share = float(matched[row] / overlap[row])
            if best is None or share > best[0]:
                best = (share, MatchResult(offset_s=-off / rate + 0.0, run_length=longest_run(hits[row]),
                                           mean_distance=float(dist[row][hits[row]].mean()),
                                           matched=int(matched[row]), overlap=int(overlap[row]),
                                           sample_fps=rate))
    return None if best is None else best[1]


def _moves_alike(win_a: np.ndarray, full_b: np.ndarray, off: int) -> bool:
    sa, sb = _steps(win_a), _steps(full_b)
    i = np.arange(len(sa))
    keep = (i + off >= 0) & (i + off < len(sb))
    if keep.sum() < 5:
        return False
    x, y = sa[keep], sb[i[keep] + off]
    if x.std() == 0 or y.std() == 0:
        return False
    return float(np.corrcoef(x, y)[0, 1]) >= MIN_CORR


def matcher(step: str | None) -> Any:
    """`compare` at the defaults, then (unless `step` is None) the window step both ways round."""
    def match(a: WindowedPrint, b: WindowedPrint, **rule: Any) -> MatchResult | None:
        found = compare(a, b, **rule)
        if found is not None or step is None:
            return found
        motion = step == "windows+motion"
        there = window_match(a, b, motion=motion)
        if there is not None:
            return there
        back = window_match(b, a, motion=motion)
        return None if back is None else dataclasses.replace(back, offset_s=-back.offset_s)
    return match


def pair_finder(step: str | None) -> Any:
    match = matcher(step)

    def pairs(prints: Sequence[WindowedPrint], **rule: Any) -> list[Pair]:
        out = []
        for i, j in itertools.combinations(range(len(prints)), 2):
            m = match(prints[i], prints[j], **rule)
            if m is not None:
                out.append((i, j, m))
        return out
    return pairs


STEPS: dict[str, str | None] = {"shipped": None, "windows": "windows",
                                "windows+motion": "windows+motion"}


def evaluate(specs: list[CorpusClip], paths: dict[str, Path], rule: dict[str, Any],
             orders: int) -> dict[str, Any]:
    prints = {s.name: windowed_print(paths[s.name], rule["reference_fps"]) for s in specs}
    quality = dq.qualities(specs, paths)
    match_rule = {k: v for k, v in rule.items() if k != "reference_fps"}
    one_goal = [prints[s.name] for s in specs if s.name.startswith("g0")]
    out: dict[str, Any] = {}
    for name, step in STEPS.items():
        pw = dq.pairwise(specs, prints, matcher=matcher(step), **match_rule)  # type: ignore[arg-type]
        grouped = dq.replay_orders(specs, prints, quality, match_rule, orders,  # type: ignore[arg-type]
                                   random.Random(1), dq._agglomerative, True, pair_finder(step))
        c0 = time.process_time()
        pair_finder(step)(one_goal, **match_rule)
        goal_ms = (time.process_time() - c0) * 1000
        out[name] = {**{k: pw[k] for k in ("precision", "recall", "tp", "fp", "fn")},
                     "false_matches": pw["false_matches"],
                     "exact_orders": f"{grouped['exact']}/{grouped['orders']}",
                     "orders_losing_a_clip": grouped["orders_losing_a_clip"],
                     "max_extra_copies": grouped["max_extra_copies"],
                     "compare_one_goal_ms": round(goal_ms, 1), "one_goal_clips": len(one_goal)}
    return out


def _markdown(result: dict[str, Any]) -> str:
    rows = [f"| {corpus} | {step} | {r['precision']} / {r['recall']} ({r['fp']} false, {r['fn']} missed) "
            f"| {r['exact_orders']} | {r['orders_losing_a_clip']} | {r['max_extra_copies']} "
            f"| {r['compare_one_goal_ms']} ms ({r['one_goal_clips']} clips) |"
            for corpus in ("A", "B") for step, r in result[corpus].items()]
    return "\n".join([
        "# Crop-window step (experiment, not shipped: `python -m bench.crop_windows`)", "",
        f"{len(WINDOWS)} windows (zooms {list(ZOOMS)} x shifts {list(SHIFTS)} of the margin), "
        f"max_hamming {MAX_HAMMING}, share {RATIO}, motion correlation {MIN_CORR}: chosen on A "
        "before B was scored. Corpora as bench.dedup_quality; grouping over random arrival orders "
        "with footyd's grouping rule.", "",
        "| corpus | matcher | pairwise precision / recall | exact orders | orders losing a clip "
        "| most extra copies | comparing one goal |",
        "|---|---|---|---|---|---|---|", *rows, ""])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--orders", type=int, default=100)
    ap.add_argument("--cache", type=Path, default=dq.DEFAULT_CACHE)
    args = ap.parse_args()
    rule = dq.default_rule()
    specs_a = corpus_specs()
    specs_b = corpus_b_specs(replays=4)
    result = {"A": evaluate(specs_a, build_corpus(args.cache / "a", specs_a), rule, args.orders),
              "B": evaluate(specs_b, build_corpus_b(args.cache / "b", specs_b), rule, args.orders)}
    dq.RESULTS.mkdir(exist_ok=True)
    (dq.RESULTS / "crop_windows.json").write_text(json.dumps(result, indent=2) + "\n")
    (dq.RESULTS / "crop_windows.md").write_text(_markdown(result))
    print(_markdown(result))


if __name__ == "__main__":
    main()
