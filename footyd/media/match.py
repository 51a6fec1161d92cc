"""The result of comparing two fingerprints, and the helpers both matchers share (pure)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NO_MATCH = 65  # larger than any 64-bit Hamming distance


def longest_run(hit: np.ndarray) -> int:
    """Length of the longest run of True."""
    best = run = 0
    for h in hit:
        run = run + 1 if h else 0
        best = max(best, run)
    return best


# per time offset: (hits, usable, distances), each (offsets x a's samples)
Diagonals = tuple[np.ndarray, np.ndarray, np.ndarray]


def diagonals(exact: np.ndarray, dist: np.ndarray, max_hamming: int) -> Diagonals:
    """Per offset k (row k + n_a - 1): hit and usable flags by a's sample index, and distances.
    Leading axes are carried through: a stack of (n_a, n_b) matrices gives a stack of results."""
    n_a, n_b = exact.shape[-2:]
    i = np.arange(n_a)[None, :]
    j = i + np.arange(-(n_a - 1), n_b)[:, None]  # k pairs a[i] with b[i + k]
    inside = (j >= 0) & (j < n_b)
    jj = np.clip(j, 0, n_b - 1)
    usable = inside & (exact[..., i, jj] < NO_MATCH)
    near = np.where(inside, dist[..., i, jj], NO_MATCH)
    return usable & (near <= max_hamming), usable, near


@dataclass(frozen=True)
class MatchResult:
    """Best alignment of two clips: time in `a` = time in `b` + `offset_s`."""

    offset_s: float
    run_length: int  # longest run of consecutive matching samples
    mean_distance: float  # over the matching samples
    matched: int = 0  # matching samples in the overlap
    overlap: int = 0  # samples of the overlap (flat ones excluded)
    mirrored: bool = False  # b matched as a left-right mirror image
    sample_fps: float = 0.0  # the rate compared at
    ramp_s: float = 0.0  # extra (slowed) time in b (negative: in a) between two aligned pieces
    crop_window: bool = False  # found by the crop step: one side seen through a crop window

    @property
    def matched_s(self) -> float:
        """Seconds of matching samples."""
        return self.matched / self.sample_fps if self.sample_fps else 0.0

    @property
    def ratio(self) -> float:
        """Share of the overlap that matched."""
        return self.matched / self.overlap if self.overlap else 0.0
