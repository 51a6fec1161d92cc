"""footyd's previous decode (OpenCV: grab() every frame, retrieve() the sampled ones), as a baseline.

`opencv_samples` feeds the same hashing as today's fingerprint, so the two decodes can be compared
hash for hash; only the decode differs.
"""

from __future__ import annotations

import cv2
import numpy as np

from footyd.errors import DownloadFailed
from footyd.media.fingerprint import SMALL_H, SMALL_W, Fingerprint, dhash_grid, fingerprint_frames
from footyd.media.probe import capture_fps, open_capture


def opencv_samples(path: str, *, sample_fps: float) -> tuple[float, tuple[np.ndarray, ...]]:
    """The pre-PyAV sampled decode: every frame decoded in full, sampled ones converted to gray."""
    cap = open_capture(path)
    out: list[np.ndarray] = []
    try:
        fps = capture_fps(cap)
        rate = min(sample_fps, fps)
        index = 0
        next_t = 0.0
        half_frame = 0.5 / fps
        while cap.grab():
            if index / fps + half_frame >= next_t:
                ok, frame = cap.retrieve()
                if ok and frame is not None:
                    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
                    out.append(cv2.resize(gray, (SMALL_W, SMALL_H), interpolation=cv2.INTER_AREA))
                next_t = len(out) / rate
            index += 1
    finally:
        cap.release()
    if not out:
        raise DownloadFailed("invalid_media", "no frame decodes")
    return rate, tuple(out)


def fingerprint_opencv(path: str, *, sample_fps: float) -> Fingerprint:
    """Today's hashing on the old OpenCV decode."""
    rate, frames = opencv_samples(path, sample_fps=sample_fps)
    return fingerprint_frames(frames, sample_fps=rate)


# ---- the previous matcher (before issue 9): full-frame hashes from the OpenCV decode, a sparse
# probe (every 2nd sample) against the other side's dense samples, a strict consecutive run ----

_U64 = (1 << 64) - 1


def fingerprint_legacy(path: str, *, sample_fps: float) -> Fingerprint:
    """The previous fingerprint: OpenCV decode, full frame (no bar crop, no zoom hashes)."""
    rate, frames = opencv_samples(path, sample_fps=sample_fps)
    hashes, flat = [], []
    for small in frames:
        grid = cv2.resize(small.astype(np.float32), (9, 8), interpolation=cv2.INTER_AREA)
        value, is_flat = dhash_grid(grid)
        if is_flat:
            flat.append(len(hashes))
        hashes.append(value)
    return Fingerprint(sample_fps=rate, hashes=tuple(hashes), flat=tuple(flat))


def _run_match(probe: Fingerprint, ref: Fingerprint, max_hamming: int, min_consecutive: int) -> int:
    """Longest run of consecutive probe samples within max_hamming of ref at one offset."""
    n_p, n_r = len(probe.hashes), len(ref.hashes)
    if n_p < min_consecutive or n_r == 0:
        return 0
    p = np.array([h & _U64 for h in probe.hashes], dtype=np.uint64)
    r = np.array([h & _U64 for h in ref.hashes], dtype=np.uint64)
    dist = np.bitwise_count(p[:, None] ^ r[None, :]).astype(np.int16)
    if probe.flat:
        dist[list(probe.flat), :] = 65
    if ref.flat:
        dist[:, list(ref.flat)] = 65
    ratio = ref.sample_fps / probe.sample_fps
    base = np.rint(np.arange(n_p) * ratio).astype(np.int64)
    offsets = np.arange(-int(base[-1]), n_r, dtype=np.int64)
    idx = base[None, :] + offsets[:, None]
    valid = (idx >= 0) & (idx < n_r)
    d = np.where(valid, dist[np.arange(n_p)[None, :], np.clip(idx, 0, n_r - 1)], 65)
    hit = d <= max_hamming
    run = np.zeros(len(offsets), dtype=np.int64)
    best = np.zeros(len(offsets), dtype=np.int64)
    for j in range(n_p):
        run = np.where(hit[:, j], run + 1, 0)
        best = np.maximum(best, run)
    return int(best.max())


def compare_legacy(a: Fingerprint, b: Fingerprint, *, max_hamming: int = 10,
                   min_consecutive: int = 3, probe_fps: float = 2.0) -> bool:
    """The previous rule: a 2 frames/s probe of either side runs `min_consecutive` samples."""
    return any(_run_match(p.subsample(probe_fps), r, max_hamming, min_consecutive) >= min_consecutive
               for p, r in ((a, b), (b, a)))
