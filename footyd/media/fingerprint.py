"""Perceptual video fingerprints (64-bit dHash per sampled frame) and their comparison.

Pure top-level functions with picklable arguments and results, run in a process pool; they read
only the file they are given.

What a caller stores per clip: ONE fingerprint taken at the dense reference rate
(`fingerprint(path, sample_fps=dedup.reference_fps)`, e.g. 5 frames/s), as `to_doc()`. To
compare two clips call `compare(a, b, ..., probe_fps=dedup.sample_fps)`: each side's sparse
probe is derived from its stored dense fingerprint (`subsample`) and matched against the other
side's dense samples, in both directions. Matching sparse samples against dense ones keeps a
fractional-second trim within half a dense interval of alignment (0.1 s at 5 frames/s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from footyd.media.decode import sample_frames

DOC_VERSION = 1
# a sample whose 9x8 luminance grid is this uniform (black, fades) carries no identity
FLAT_STD = 2.5
_NO_MATCH = 65  # larger than any 64-bit Hamming distance
_U64 = 1 << 64
_I64 = 1 << 63


def to_signed64(value: int) -> int:
    """Map an unsigned 64-bit hash to the int64 range (MongoDB stores signed 64-bit ints)."""
    return value - _U64 if value >= _I64 else value


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes (signed or unsigned)."""
    return ((a ^ b) & (_U64 - 1)).bit_count()


@dataclass(frozen=True)
class Fingerprint:
    """dHashes of frames sampled at `sample_fps`; `flat` lists sample indexes that never match."""

    sample_fps: float
    hashes: tuple[int, ...]
    flat: tuple[int, ...] = ()
    truncated: str = ""  # why decoding stopped before the end of the file, if it did

    @property
    def duration_s(self) -> float:
        """Time covered by the samples."""
        return len(self.hashes) / self.sample_fps

    def to_doc(self) -> dict[str, Any]:
        """A MongoDB/JSON-safe document (hashes are signed int64)."""
        doc: dict[str, Any] = {"v": DOC_VERSION, "sample_fps": self.sample_fps,
                               "hashes": list(self.hashes), "flat": list(self.flat)}
        if self.truncated:
            doc["truncated"] = self.truncated
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Fingerprint:
        """Inverse of `to_doc`."""
        if doc.get("v") != DOC_VERSION:
            raise ValueError(f"unsupported fingerprint doc version {doc.get('v')!r}")
        return cls(sample_fps=float(doc["sample_fps"]),
                   hashes=tuple(to_signed64(int(h) & (_U64 - 1)) for h in doc["hashes"]),
                   flat=tuple(int(i) for i in doc.get("flat", ())),
                   truncated=str(doc.get("truncated") or ""))

    def subsample(self, sample_fps: float) -> Fingerprint:
        """Every n-th sample, n = floor(self.sample_fps / sample_fps) (>= 1), so the rate
        returned (`self.sample_fps / n`) is never below the one asked for."""
        stride = max(1, int(self.sample_fps / sample_fps + 1e-9))
        if stride == 1:
            return self
        flat = set(self.flat)
        return Fingerprint(sample_fps=self.sample_fps / stride, hashes=self.hashes[::stride],
                           flat=tuple(j for j, i in enumerate(range(0, len(self.hashes), stride))
                                      if i in flat))


@dataclass(frozen=True)
class MatchResult:
    """Best alignment of two clips: time in `a` = time in `b` + `offset_s`."""

    offset_s: float
    run_length: int
    mean_distance: float


HASH_W, HASH_H = 9, 8
# swscale shrinks each sampled frame to GRID_SCALE x the hash grid; a block mean finishes the area
# average (one big swscale step straight to 9x8 drops too much of the picture)
GRID_SCALE = 4


def dhash_grid(grid: np.ndarray) -> tuple[int, bool]:
    """64-bit dHash (signed) of a 9x8 luminance grid, and whether the grid is too flat to count."""
    bits = (grid[:, 1:] > grid[:, :-1]).flatten()
    value = int.from_bytes(np.packbits(bits).tobytes(), "big")
    return to_signed64(value), float(grid.std()) < FLAT_STD


def _grid(small: np.ndarray) -> np.ndarray:
    return small.astype(np.float32).reshape(HASH_H, GRID_SCALE, HASH_W, GRID_SCALE).mean(axis=(1, 3))


def fingerprint(path: str, *, sample_fps: float, max_megapixel_s: float | None = None,
                allow_nonref: bool = True) -> Fingerprint:
    """Fingerprint `path` with one sampled PyAV decode (see media/decode.py).

    A decode error midway fingerprints the part before it. Raises DownloadFailed("invalid_media")
    when nothing decodes, DownloadFailed("filtered") above `max_megapixel_s` of decoding.
    """
    samples = sample_frames(path, sample_fps=sample_fps, width=HASH_W * GRID_SCALE,
                            height=HASH_H * GRID_SCALE, max_megapixel_s=max_megapixel_s,
                            allow_nonref=allow_nonref)
    hashes: list[int] = []
    flat: list[int] = []
    for small in samples.frames:
        value, is_flat = dhash_grid(_grid(small))
        if is_flat:
            flat.append(len(hashes))
        hashes.append(value)
    return Fingerprint(sample_fps=samples.sample_fps, hashes=tuple(hashes), flat=tuple(flat),
                       truncated=samples.truncated)


def _as_u64(fp: Fingerprint) -> np.ndarray:
    return np.array([h & (_U64 - 1) for h in fp.hashes], dtype=np.uint64)


def _match(probe: Fingerprint, ref: Fingerprint, max_hamming: int,
           min_consecutive: int) -> MatchResult | None:
    """Longest run of consecutive probe samples matching `ref` at one offset (ref = probe + off)."""
    n_p, n_r = len(probe.hashes), len(ref.hashes)
    if n_p < min_consecutive or n_r == 0:
        return None
    dist = np.bitwise_count(_as_u64(probe)[:, None] ^ _as_u64(ref)[None, :]).astype(np.int16)
    if probe.flat:
        dist[list(probe.flat), :] = _NO_MATCH
    if ref.flat:
        dist[:, list(ref.flat)] = _NO_MATCH
    ratio = ref.sample_fps / probe.sample_fps
    base = np.rint(np.arange(n_p) * ratio).astype(np.int64)
    offsets = np.arange(-int(base[-1]), n_r, dtype=np.int64)
    idx = base[None, :] + offsets[:, None]  # (offset, probe sample) -> ref sample
    valid = (idx >= 0) & (idx < n_r)
    d = np.where(valid, dist[np.arange(n_p)[None, :], np.clip(idx, 0, n_r - 1)], _NO_MATCH)
    hit = d <= max_hamming
    run = np.zeros(len(offsets), dtype=np.int64)
    run_sum = np.zeros(len(offsets), dtype=np.int64)
    best_run = np.zeros(len(offsets), dtype=np.int64)
    best_sum = np.zeros(len(offsets), dtype=np.int64)
    for j in range(n_p):
        run = np.where(hit[:, j], run + 1, 0)
        run_sum = np.where(hit[:, j], run_sum + d[:, j], 0)
        better = (run > best_run) | ((run == best_run) & (run > 0) & (run_sum < best_sum))
        best_run = np.where(better, run, best_run)
        best_sum = np.where(better, run_sum, best_sum)
    top = int(best_run.max())
    if top < min_consecutive:
        return None
    candidates = np.flatnonzero(best_run == top)
    k = int(candidates[np.argmin(best_sum[candidates])])
    return MatchResult(offset_s=float(offsets[k]) / ref.sample_fps + 0.0, run_length=top,
                       mean_distance=float(best_sum[k]) / top)


def _better(x: MatchResult | None, y: MatchResult | None) -> MatchResult | None:
    if x is None or y is None:
        return x or y
    if (y.run_length, -y.mean_distance) > (x.run_length, -x.mean_distance):
        return y
    return x


def compare(a: Fingerprint, b: Fingerprint, *, max_hamming: int, min_consecutive: int,
            probe_fps: float | None = None) -> MatchResult | None:
    """The best match of two clips, or None when they are not duplicates.

    Duplicates: at least `min_consecutive` consecutive probe samples lie within `max_hamming`
    bits of the other clip's samples at one time offset. With `probe_fps`, each side's probe is
    its own fingerprint subsampled to that rate, matched against the other side's full one (both
    directions); without it, the sparser fingerprint is the probe (both ways when equally dense).
    The result is symmetric: compare(b, a) gives the same run with the offset negated.
    """
    if probe_fps is not None:
        pairs = [(a.subsample(probe_fps), b, -1.0), (b.subsample(probe_fps), a, 1.0)]
    elif a.sample_fps < b.sample_fps:
        pairs = [(a, b, -1.0)]
    elif b.sample_fps < a.sample_fps:
        pairs = [(b, a, 1.0)]
    else:
        pairs = [(a, b, -1.0), (b, a, 1.0)]
    best: MatchResult | None = None
    for probe, ref, sign in pairs:
        found = _match(probe, ref, max_hamming, min_consecutive)
        if found is not None:
            found = MatchResult(offset_s=sign * found.offset_s + 0.0, run_length=found.run_length,
                                mean_distance=found.mean_distance)
        best = _better(best, found)
    return best
