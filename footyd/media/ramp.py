"""Matching a speed-ramped copy: the same clip with a stretch slowed down (pure).

A slow-motion replay of a clip lines up with the original at one time offset before the slowed
stretch and at a later one after it; no single offset covers enough of it to pass `compare`'s
checks. The two-piece rule: a prefix of one clip matches at offset k1 and the rest at k2 > k1 on
the *same* clip's time axis (the other clip has k2 - k1 samples of extra, slowed time in between;
the slowed samples count as unmatched overlap, they are never excused). Tried both ways round, so
either side may be the slowed one.

The pieces must each be real evidence, so a prefix of one replay and a suffix of another that
happen to coincide do not add up to a match: each piece needs RAMP_PIECE_S seconds of matching
samples and a run of `min_consecutive`; the slowed stretch between them must line up at one
slower speed (its samples are matched against the other clip at that speed, and count as
overlap either way); and the whole must meet every check a one-offset match meets (seconds,
coverage of the shorter clip) with a larger share of the overlap matching (RAMP_MIN_RATIO).
Only the few diagonals that already hold a run are paired (RAMP_CANDIDATES), and the extra time
is at most the shorter clip's length.
"""

from __future__ import annotations

import numpy as np

from footyd.media.match import Diagonals, MatchResult, diagonals, longest_run

RAMP_PIECE_S = 1.0  # matching seconds each piece needs on its own
RAMP_CANDIDATES = 8  # diagonals (offsets) paired, the ones with most matching samples
# share of the overlap a two-piece match must explain: above a one-offset match's
# `min_match_ratio`, since two offsets and a speed fit coincidences more easily (chosen on corpus
# A: its slow-motion copies match the others at 1.0, its false two-piece pairs at 0.70-0.75)
RAMP_MIN_RATIO = 0.9


def ramp_match(exact: np.ndarray, dist: np.ndarray, diag: Diagonals, *, rate: float,
               max_hamming: int, min_consecutive: int, min_matched: int,
               min_match_ratio: float) -> MatchResult | None:
    """The best two-piece match of a (rows) and b (columns), or None; offset_s is the first
    piece's (time in a = time in b + offset_s) and `ramp_s` the extra time inside one side.
    `diag` is `diagonals(exact, dist, max_hamming)`, already computed by the caller."""
    ab = _one_way(exact, dist, diag, rate=rate, max_hamming=max_hamming,
                  min_consecutive=min_consecutive, min_matched=min_matched,
                  min_match_ratio=min_match_ratio)
    ba = _one_way(exact.T, dist.T, diagonals(exact.T, dist.T, max_hamming), rate=rate,
                  max_hamming=max_hamming, min_consecutive=min_consecutive,
                  min_matched=min_matched, min_match_ratio=min_match_ratio)
    if ba is not None:
        ba = MatchResult(offset_s=-ba.offset_s + 0.0, run_length=ba.run_length,
                         mean_distance=ba.mean_distance, matched=ba.matched, overlap=ba.overlap,
                         sample_fps=rate, ramp_s=-ba.ramp_s)
    found = [m for m in (ab, ba) if m is not None]
    return max(found, key=lambda m: (m.ratio, -m.mean_distance)) if found else None


def _one_way(exact: np.ndarray, dist: np.ndarray, diag: Diagonals, *, rate: float,
             max_hamming: int, min_consecutive: int, min_matched: int,
             min_match_ratio: float) -> MatchResult | None:
    """The best split of a: a[:s] at offset k1, a[s:] at k2 > k1, b's samples in between
    showing a's around s slowed down."""
    n_a, n_b = exact.shape
    piece_min = max(min_consecutive, int(np.ceil(RAMP_PIECE_S * rate - 1e-9)))
    hits, usable, near = diag
    counts = hits.sum(axis=1)
    rows = [int(r) for r in np.argsort(-counts, kind="stable")[:RAMP_CANDIDATES]
            if counts[r] >= piece_min and longest_run(hits[r]) >= min_consecutive]
    best: MatchResult | None = None
    for r1 in rows:
        for r2 in rows:
            gap = r2 - r1  # b's extra samples
            if not 0 < gap <= min(n_a, n_b):
                continue
            h1, h2 = np.cumsum(hits[r1]), np.cumsum(hits[r2][::-1])[::-1]
            u1, u2 = np.cumsum(usable[r1]), np.cumsum(usable[r2][::-1])[::-1]
            # split s: a[:s] on r1, a[s:] on r2 (s = 1 .. n_a - 1)
            first, second = h1[:-1], h2[1:]
            matched, overlap = first + second, u1[:-1] + u2[1:]
            ok = (first >= piece_min) & (second >= piece_min) & (matched >= min_matched)
            if not ok.any():
                continue
            # the split keeping the most matches, and the one with the best share: the slowed
            # stretch lies between the pieces' hits, so any split inside it scores alike
            share = np.where(ok, matched / np.maximum(overlap, 1), -1.0)
            most = np.where(ok, matched, -1)
            for at in sorted({int(np.argmax(most)), int(np.argmax(share))}):
                m = _at_split(at + 1, r1 - (n_a - 1), gap, hits, near, dist, rows=(r1, r2),
                              matched=int(matched[at]), overlap=int(overlap[at]),
                              rate=rate, max_hamming=max_hamming,
                              min_consecutive=min_consecutive)
                if m is not None and m.ratio >= max(min_match_ratio, RAMP_MIN_RATIO) and (
                        best is None or (m.ratio, -m.mean_distance)
                        > (best.ratio, -best.mean_distance)):
                    best = m
    return best


def _at_split(s: int, k1: int, gap: int, hits: np.ndarray, near: np.ndarray, dist: np.ndarray,
              *, rows: tuple[int, int], matched: int, overlap: int, rate: float,
              max_hamming: int, min_consecutive: int) -> MatchResult | None:
    """The match split at a[s], the slowed stretch counted in: a[p:q] (from after piece one's
    last hit to piece two's first) plays over b[p + k1:q + k2] at one slower speed, so each of
    those b samples must lie within `max_hamming` of a's sample at that speed (+-1), else it is
    unmatched overlap."""
    r1, r2 = rows
    runs = (longest_run(hits[r1][:s]), longest_run(hits[r2][s:]))
    if min(runs) < min_consecutive:
        return None
    n_a, n_b = dist.shape
    p = int(np.flatnonzero(hits[r1][:s])[-1]) + 1
    q = s + int(np.flatnonzero(hits[r2][s:])[0])
    b_lo, b_hi = max(0, p + k1), min(n_b, q + k1 + gap)
    span_b = q + k1 + gap - (p + k1)
    slowed = np.zeros(0, dtype=np.int16)
    if b_hi > b_lo and span_b > 0:
        js = np.arange(b_lo, b_hi)
        at = p + (js - (p + k1)) * (q - p) / span_b  # a's sample at the slowed speed
        rows_a = np.clip(np.rint(at).astype(int)[None, :] + np.arange(-1, 2)[:, None], 0, n_a - 1)
        slowed = dist[rows_a, js[None, :]].min(axis=0)
    gap_hits = slowed <= max_hamming
    # a[p:q] sat in the pieces' overlap unmatched: the stretch counts once, on b's side
    unmatched_a = int((~hits[r1][p:s]).sum() + (~hits[r2][s:q]).sum())
    on_pieces = np.concatenate((near[r1][:s][hits[r1][:s]], near[r2][s:][hits[r2][s:]]))
    mean = float(np.concatenate((on_pieces, slowed[gap_hits])).mean())
    return MatchResult(offset_s=-k1 / rate + 0.0, run_length=max(runs), mean_distance=mean,
                       matched=matched + int(gap_hits.sum()),
                       overlap=overlap - unmatched_a + len(slowed), sample_fps=rate,
                       ramp_s=gap / rate)
