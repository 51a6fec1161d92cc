"""The crop step: clips left apart by `compare` tried once more through crop windows (pure).

A re-poster's crop that is off centre (or zoomed further than ZOOMS) lines up with none of the
centre crops a fingerprint holds, so `compare` misses it and the goal keeps an extra copy. Here
one side's samples, hashed through each of WINDOWS, must match the other side's full pictures
through ONE window held for the whole clip, at one offset: a share of at least
WINDOW_MIN_RATIO within WINDOW_MAX_HAMMING bits, with `compare`'s run, seconds and coverage
checks; and the change between consecutive samples must agree along the match (correlation at
least MIN_MOTION_CORR): a zoomed shot from the same camera position at another moment is
geometrically a crop too, and at still moments only motion tells them apart.

Why only some pairs. 175 windows make a comparison 20-25x dearer and give wrong pairs
more chances, so the step runs after grouping and only where a missed copy shows: between the
kept copies of two groups, and between a clip left alone and every other clip. The grouping is
then made again with the pairs found, so its rules (kept copies match, cover) still decide.
Settings chosen on corpus A (bench/crop_windows.py, bench/dedup_quality.py).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence

import numpy as np

from footyd.media.fingerprint import Fingerprint, _as_u64, _with_jitter
from footyd.media.groups import Grouping, Pair
from footyd.media.match import NO_MATCH, MatchResult, diagonals, longest_run
from footyd.media.windows import WINDOW_MAX_SAMPLES, window_stride_for

WINDOW_MAX_HAMMING = 10
WINDOW_MIN_RATIO = 0.9  # stricter than compare's share: a hundred windows, a hundred chances
MIN_MOTION_CORR = 0.4
# bounds on the work of one goal's step (the cost grows with samples squared): clips are
# compared at most WINDOW_MAX_SAMPLES each (30 s at 5/s: longer ones at a stride), and the pairs
# tried, most telling first, stop once their samples multiplied together pass CROP_BUDGET (~100
# pairs of 30 s clips at ~0.13 CPU-s each here: a goal's step stays within ~15 s, the stage's
# match timeout is 60 s)
CROP_BUDGET = 2_300_000


def crop_pairs(prints: Sequence[Fingerprint], grouping: Grouping, pairs: Sequence[Pair],
               best: Callable[[Sequence[int]], int], *, min_consecutive: int,
               min_match_s: float, min_match_coverage: float,
               budget: int = CROP_BUDGET) -> list[Pair]:
    """Pairs (i < j) the crop step finds between kept copies of groups and from lone clips:
    kept copies first, then lone clips against kept copies, then against the rest, until
    `budget` (samples multiplied together, pair by pair) is spent."""
    kept = sorted(best(members) for members in grouping.groups)
    alone = [members[0] for members in grouping.groups if len(members) == 1]
    done = {(i, j) for i, j, _ in pairs}
    order: list[tuple[int, int]] = []
    for i, j in [*itertools.combinations(kept, 2),
                 *((a, k) for a in alone for k in kept),
                 *((a, j) for a in alone for j in range(len(prints)))]:
        pair = (min(i, j), max(i, j))
        if i != j and pair not in done:
            done.add(pair)
            order.append(pair)
    found = []
    spent = 0
    for i, j in order:
        spent += (min(len(prints[i].hashes), WINDOW_MAX_SAMPLES)
                  * min(len(prints[j].hashes), WINDOW_MAX_SAMPLES))
        if spent > budget:
            break
        m = window_match(prints[i], prints[j], min_consecutive=min_consecutive,
                         min_match_s=min_match_s, min_match_coverage=min_match_coverage)
        if m is not None:
            found.append((i, j, m))
    return found


def window_match(a: Fingerprint, b: Fingerprint, *, min_consecutive: int, min_match_s: float,
                 min_match_coverage: float) -> MatchResult | None:
    """The better of a's windows against b's pictures and b's windows against a's (offset: time
    in a = time in b + offset_s, as `compare`); None when neither matches."""
    rate = min(a.sample_fps, b.sample_fps)
    a, b = a.subsample(rate), b.subsample(rate)
    if a.sample_fps != b.sample_fps:  # rates that no stride brings together
        return None
    # both at the stride of the longer (a power of two, as the windows held: they line up)
    stride = max(window_stride_for(max(len(a.hashes), len(b.hashes))), a.window_stride,
                 b.window_stride)
    a, b = a.every(stride), b.every(stride)
    there = _one_way(a, b, min_consecutive, min_match_s, min_match_coverage)
    back = _one_way(b, a, min_consecutive, min_match_s, min_match_coverage)
    if back is not None:
        back = dataclasses.replace(back, offset_s=-back.offset_s + 0.0)
    found = [m for m in (there, back) if m is not None]
    return max(found, key=lambda m: (m.ratio, -m.mean_distance)) if found else None


def _one_way(a: Fingerprint, b: Fingerprint, min_consecutive: int, min_match_s: float,
             min_match_coverage: float) -> MatchResult | None:
    """b's full pictures against one of a's windows, the same window for the whole clip."""
    if a.windows.shape[0] == 0 or a.window_stride != 1 or a.windows.shape[1] != len(a.hashes):
        return None
    full_b = _as_u64(b.hashes)
    n_a, n_b = len(a.hashes), len(full_b)
    rate = a.sample_fps
    need = max(min_consecutive, int(np.ceil(min_match_s * rate - 1e-9)),
               int(np.ceil(min_match_coverage * min(n_a, n_b) - 1e-9)))
    if min(n_a, n_b) < need:
        return None
    # every window at once: (windows, a's samples, b's samples)
    exact = np.bitwise_count(a.windows[:, :, None] ^ full_b[None, None, :]).astype(np.int16)
    if a.flat:
        exact[:, list(a.flat), :] = NO_MATCH
    if b.flat:
        exact[:, :, list(b.flat)] = NO_MATCH
    # one sample of jitter either way on either side, as compare; per window, per offset
    hits, usable, dist = diagonals(exact, _with_jitter(exact, 1), WINDOW_MAX_HAMMING)
    matched, overlap = hits.sum(axis=2), usable.sum(axis=2)
    best: MatchResult | None = None
    for w, row in zip(*np.nonzero((matched >= need) & (matched >= WINDOW_MIN_RATIO * overlap)),
                      strict=True):
        run = longest_run(hits[w, row])
        k = int(row) - (n_a - 1)  # a[i] paired with b[i + k]
        if run < min_consecutive or not _moves_alike(a.windows[w], full_b, k):
            continue
        m = MatchResult(offset_s=-k / rate + 0.0, run_length=run,
                        mean_distance=float(dist[w, row][hits[w, row]].mean()),
                        matched=int(matched[w, row]), overlap=int(overlap[w, row]),
                        sample_fps=rate, crop_window=True)
        if best is None or (m.ratio, -m.mean_distance) > (best.ratio, -best.mean_distance):
            best = m
    return best


def _moves_alike(window: np.ndarray, full_b: np.ndarray, k: int) -> bool:
    """Whether the bits flipped between consecutive samples rise and fall together."""
    step_a = np.bitwise_count(window[1:] ^ window[:-1]).astype(np.float64)
    step_b = np.bitwise_count(full_b[1:] ^ full_b[:-1]).astype(np.float64)
    i = np.arange(len(step_a))
    keep = (i + k >= 0) & (i + k < len(step_b))
    if keep.sum() < 5:
        return False
    x, y = step_a[keep], step_b[i[keep] + k]
    if x.std() == 0 or y.std() == 0:
        return False
    return float(np.corrcoef(x, y)[0, 1]) >= MIN_MOTION_CORR
