"""Perceptual video fingerprints (64-bit dHashes per sampled frame) and their comparison.

Pure top-level functions with picklable arguments and results, run in a process pool; they read
only the file they are given.

A fingerprint holds, per sample taken at the reference rate (`dedup.reference_fps`), the dHash of
the picture with black bars cropped off, the dHashes of centre crops at ZOOMS (a re-poster's
zoomed-in copy lines up with one of them), and the dHashes of crop windows, off centre as
well, which only the crop step compares (`media/windows.py`, `media/crop.py`). Two clips are
compared sample against sample at every time offset (both sides at the same rate), a sample
tolerating one sample of jitter on the other side (fractional trims land between samples). A
match needs most of the overlap to agree, not just a short run: hard negatives (other goals of
the match, other angles, same score bug and stadium) coincide only briefly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from footyd.media.decode import sample_frames
from footyd.media.match import NO_MATCH, MatchResult, diagonals, longest_run
from footyd.media.ramp import ramp_match
from footyd.media.windows import window_hashes, window_stride_for

__all__ = ["Fingerprint", "MatchResult", "compare", "fingerprint", "hamming", "nearest"]

DOC_VERSION = 4  # 3: crop windows; 4: 175, at most 150 samples' (older docs: fingerprinted again)
# a sample whose 9x8 luminance grid is this uniform (black, fades) carries no identity
FLAT_STD = 2.5
ZOOMS = (0.06, 0.12)  # centre crops (fraction cut off each side) hashed besides the full picture
# sampled frames are scaled by the decoder to this gray size: enough to find bars and crop zooms
SMALL_W, SMALL_H = 72, 64
BAR_LUMA = 28  # a column/row whose brightest pixel stays below this (on average) is a bar
_U64 = 1 << 64
_I64 = 1 << 63


def to_signed64(value: int) -> int:
    """Map an unsigned 64-bit hash to the int64 range (MongoDB stores signed 64-bit ints)."""
    return value - _U64 if value >= _I64 else value


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes (signed or unsigned)."""
    return ((a ^ b) & (_U64 - 1)).bit_count()


def _signed(values: Any) -> tuple[int, ...]:
    return tuple(to_signed64(int(h) & (_U64 - 1)) for h in values)


@dataclass(frozen=True)
class Fingerprint:
    """dHashes of frames sampled at `sample_fps`; `flat` lists sample indexes that never match;
    `zooms[z][i]` hashes sample i's centre crop at ZOOMS[z]; `windows[k, i]` sample
    (i x window_stride)'s crop through WINDOWS[k] (unsigned; empty: not hashed, the crop step
    skips the clip; media/windows.py)."""

    sample_fps: float
    hashes: tuple[int, ...]
    flat: tuple[int, ...] = ()
    truncated: str = ""  # decode errors met (the samples cover what decoded)
    zooms: tuple[tuple[int, ...], ...] = field(default=())
    windows: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.uint64),
                                compare=False, repr=False)
    window_stride: int = 1

    @property
    def duration_s(self) -> float:
        """Time covered by the samples."""
        return len(self.hashes) / self.sample_fps

    def to_doc(self) -> dict[str, Any]:
        """A MongoDB/JSON-safe document (hashes are signed int64)."""
        doc: dict[str, Any] = {"v": DOC_VERSION, "sample_fps": self.sample_fps,
                               "hashes": list(self.hashes), "flat": list(self.flat),
                               "zooms": [list(z) for z in self.zooms],
                               # one binary blob: windows as BSON ints would be 1.7x larger
                               "windows": self.windows.astype("<u8").tobytes(),
                               "window_count": int(self.windows.shape[0]),
                               "window_stride": self.window_stride}
        if self.truncated:
            doc["truncated"] = self.truncated
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Fingerprint:
        """Inverse of `to_doc`; ValueError for another version (the caller fingerprints again)."""
        if doc.get("v") != DOC_VERSION:
            raise ValueError(f"unsupported fingerprint doc version {doc.get('v')!r}")
        hashes = _signed(doc["hashes"])
        count = int(doc.get("window_count") or 0)
        stride = int(doc.get("window_stride") or 1)
        raw = bytes(doc.get("windows") or b"")
        held = -(-len(hashes) // stride) if count else 0
        if stride < 1 or len(raw) != count * held * 8:
            raise ValueError("fingerprint doc: windows do not fit the samples")
        windows = np.frombuffer(raw, dtype="<u8").astype(np.uint64).reshape(count, held)
        return cls(sample_fps=float(doc["sample_fps"]), hashes=hashes,
                   flat=tuple(int(i) for i in doc.get("flat", ())),
                   truncated=str(doc.get("truncated") or ""),
                   zooms=tuple(_signed(z) for z in doc.get("zooms", ())), windows=windows,
                   window_stride=stride if count else 1)

    def subsample(self, sample_fps: float) -> Fingerprint:
        """Every n-th sample, n = floor(self.sample_fps / sample_fps) (>= 1), so the rate
        returned (`self.sample_fps / n`) is never below the one asked for."""
        return self.every(max(1, int(self.sample_fps / sample_fps + 1e-9)))

    def every(self, stride: int) -> Fingerprint:
        """Every `stride`-th sample; the windows kept where they line up with those samples
        (one stride a multiple of the other), else dropped."""
        if stride == 1:
            return self
        flat = set(self.flat)
        held = self.window_stride
        if stride % held == 0:
            windows, window_stride = self.windows[:, ::stride // held], 1
        elif held % stride == 0:
            windows, window_stride = self.windows, held // stride
        else:
            windows, window_stride = np.zeros((0, 0), np.uint64), 1
        return Fingerprint(sample_fps=self.sample_fps / stride, hashes=self.hashes[::stride],
                           flat=tuple(j for j, i in enumerate(range(0, len(self.hashes), stride))
                                      if i in flat),
                           truncated=self.truncated, zooms=tuple(z[::stride] for z in self.zooms),
                           windows=windows, window_stride=window_stride)


def dhash_grid(grid: np.ndarray) -> tuple[int, bool]:
    """64-bit dHash (signed) of a 9x8 luminance grid, and whether the grid is too flat to count."""
    bits = (grid[:, 1:] > grid[:, :-1]).flatten()
    value = int.from_bytes(np.packbits(bits).tobytes(), "big")
    return to_signed64(value), float(grid.std()) < FLAT_STD


def _hash_region(small: np.ndarray) -> tuple[int, bool]:
    grid = cv2.resize(small.astype(np.float32), (9, 8), interpolation=cv2.INTER_AREA)
    return dhash_grid(grid)


def content_box(frames: tuple[np.ndarray, ...]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the picture inside black bars seen through the whole clip."""
    stack = np.stack(frames)
    col_dark = stack.max(axis=1).mean(axis=0) < BAR_LUMA  # per column
    row_dark = stack.max(axis=2).mean(axis=0) < BAR_LUMA  # per row

    def span(dark: np.ndarray) -> tuple[int, int]:
        n = len(dark)
        lo, hi = 0, n
        while lo < n // 3 and dark[lo]:
            lo += 1
        while hi > n - n // 3 and dark[hi - 1]:
            hi -= 1
        return lo, hi

    (top, bottom), (left, right) = span(row_dark), span(col_dark)
    return top, bottom, left, right


def fingerprint(path: str, *, sample_fps: float, max_megapixel_s: float | None = None,
                allow_nonref: bool = True) -> Fingerprint:
    """Fingerprint `path` with one sampled PyAV decode (see media/decode.py).

    A decode error midway fingerprints the part before it. Raises DownloadFailed("invalid_media")
    when nothing decodes, DownloadFailed("filtered") above `max_megapixel_s` of decoding.
    """
    samples = sample_frames(path, sample_fps=sample_fps, width=SMALL_W, height=SMALL_H,
                            max_megapixel_s=max_megapixel_s, allow_nonref=allow_nonref)
    return fingerprint_frames(samples.frames, sample_fps=samples.sample_fps,
                              truncated=samples.truncated)


def fingerprint_frames(frames: tuple[np.ndarray, ...], *, sample_fps: float,
                       truncated: str = "") -> Fingerprint:
    """The fingerprint of small gray frames already sampled at `sample_fps`."""
    top, bottom, left, right = content_box(frames)
    hashes: list[int] = []
    flat: list[int] = []
    zooms: list[list[int]] = [[] for _ in ZOOMS]
    for small in frames:
        picture = small[top:bottom, left:right]
        value, is_flat = _hash_region(picture)
        if is_flat:
            flat.append(len(hashes))
        hashes.append(value)
        h, w = picture.shape
        for z, frac in enumerate(ZOOMS):
            dy, dx = round(h * frac), round(w * frac)
            zooms[z].append(_hash_region(picture[dy:h - dy, dx:w - dx])[0])
    stride = window_stride_for(len(frames))
    windows = window_hashes(np.stack([f[top:bottom, left:right] for f in frames[::stride]]))
    return Fingerprint(sample_fps=sample_fps, hashes=tuple(hashes), flat=tuple(flat),
                       truncated=truncated, zooms=tuple(tuple(z) for z in zooms), windows=windows,
                       window_stride=stride)


def _as_u64(hashes: tuple[int, ...]) -> np.ndarray:
    return np.array([h & (_U64 - 1) for h in hashes], dtype=np.uint64)


# a dHash row is 8 "right brighter than left" bits, MSB first: the mirror image's row is that
# byte reversed and inverted (ties aside), so a mirrored copy is matched without re-decoding
_MIRROR_BYTE = np.array([(~int(f"{b:08b}"[::-1], 2)) & 0xFF for b in range(256)], dtype=np.uint8)


def _mirror(hashes: tuple[int, ...]) -> tuple[int, ...]:
    raw = _as_u64(hashes).astype(">u8").view(np.uint8)
    flipped = _MIRROR_BYTE[raw].view(">u8").astype(np.uint64)
    return tuple(to_signed64(int(h)) for h in flipped)


def mirror_print(fp: Fingerprint) -> Fingerprint:
    """The fingerprint a left-right mirror image of the clip would have (up to ties)."""
    # windows are left out: a mirrored copy is not tried through crop windows
    return Fingerprint(sample_fps=fp.sample_fps, hashes=_mirror(fp.hashes), flat=fp.flat,
                       truncated=fp.truncated, zooms=tuple(_mirror(z) for z in fp.zooms))


def _distances(a: Fingerprint, b: Fingerprint) -> np.ndarray:
    """(len a, len b) Hamming distances: full vs full and full vs the other side's zooms; flat
    samples never match."""
    fa, fb = _as_u64(a.hashes), _as_u64(b.hashes)
    dist = np.bitwise_count(fa[:, None] ^ fb[None, :]).astype(np.int16)
    for z in b.zooms:
        dist = np.minimum(dist, np.bitwise_count(fa[:, None] ^ _as_u64(z)[None, :]))
    for z in a.zooms:
        dist = np.minimum(dist, np.bitwise_count(_as_u64(z)[:, None] ^ fb[None, :]))
    if a.flat:
        dist[list(a.flat), :] = NO_MATCH
    if b.flat:
        dist[:, list(b.flat)] = NO_MATCH
    return dist


def _with_jitter(dist: np.ndarray, jitter: int) -> np.ndarray:
    """Each cell the nearest within `jitter` samples on either side's time axis (the last
    two axes: a stack of distance matrices is taken whole)."""
    near = dist.copy()
    for j in range(1, jitter + 1):
        for axis in (-2, -1):
            lo = [slice(None)] * dist.ndim
            hi = [slice(None)] * dist.ndim
            lo[axis], hi[axis] = slice(j, None), slice(None, -j)
            near[tuple(lo)] = np.minimum(near[tuple(lo)], dist[tuple(hi)])
            near[tuple(hi)] = np.minimum(near[tuple(hi)], dist[tuple(lo)])
    return near


def compare(a: Fingerprint, b: Fingerprint, *, max_hamming: int, min_consecutive: int,
            min_match_s: float = 2.0, min_match_ratio: float = 0.7,
            min_match_coverage: float = 0.5, jitter: int = 1,
            mirrored: bool = False) -> MatchResult | None:
    """The best match of two clips, or None when they are not copies of one clip.

    At one time offset, a sample of `a` matches when it lies within `max_hamming` bits of b's
    sample at that time (or `jitter` samples around it). Copies: at least `min_match_s` seconds
    of matching samples, `min_match_ratio` of the overlap's (non-flat) samples matching, matching
    samples covering `min_match_coverage` of the shorter clip (a re-post is mostly contained in
    the other copy; two goals' pans crossing at the clips' ends are not), and a run of
    `min_consecutive` consecutive matching samples. The denser side is subsampled to the
    sparser one's rate first. Symmetric: compare(b, a) gives the same match, offset negated.
    With `mirrored`, b's mirror image is tried too and the better match is returned.
    """
    straight = _compare(a, b, max_hamming=max_hamming, min_consecutive=min_consecutive,
                        min_match_s=min_match_s, min_match_ratio=min_match_ratio,
                        min_match_coverage=min_match_coverage, jitter=jitter)
    if not mirrored:
        return straight
    flipped = _compare(a, mirror_print(b), max_hamming=max_hamming,
                       min_consecutive=min_consecutive, min_match_s=min_match_s,
                       min_match_ratio=min_match_ratio, min_match_coverage=min_match_coverage,
                       jitter=jitter)
    if flipped is None or (straight is not None and (straight.ratio, -straight.mean_distance)
                           >= (flipped.ratio, -flipped.mean_distance)):
        return straight
    return dataclasses.replace(flipped, mirrored=True)


def _compare(a: Fingerprint, b: Fingerprint, *, max_hamming: int, min_consecutive: int,
             min_match_s: float, min_match_ratio: float, min_match_coverage: float,
             jitter: int) -> MatchResult | None:
    if a.sample_fps != b.sample_fps:
        rate = min(a.sample_fps, b.sample_fps)
        a, b = a.subsample(rate), b.subsample(rate)
    rate = a.sample_fps
    n_a, n_b = len(a.hashes), len(b.hashes)
    min_matched = max(min_consecutive, int(np.ceil(min_match_s * rate - 1e-9)),
                      int(np.ceil(min_match_coverage * min(n_a, n_b) - 1e-9)))
    if min(n_a, n_b) < min_matched:
        return None
    exact = _distances(a, b)
    dist = _with_jitter(exact, jitter)
    hits, usable, near = diagonals(exact, dist, max_hamming)
    matched, overlap = hits.sum(axis=1), usable.sum(axis=1)
    best: tuple[float, float] | None = None
    found: MatchResult | None = None
    for row in np.flatnonzero((matched >= min_matched) & (matched >= min_match_ratio * overlap)):
        run = longest_run(hits[row])
        if run < min_consecutive:
            continue
        k = int(row) - (n_a - 1)  # a[i] paired with b[i + k]
        # among qualifying offsets: most of the overlap matching, then the closest alignment
        # without jitter (which picks the true offset of a fractional trim)
        score = (matched[row] / overlap[row],
                 -float(exact[np.flatnonzero(usable[row]), np.flatnonzero(usable[row]) + k].mean()))
        if best is None or score > best:
            best = score
            found = MatchResult(offset_s=-k / rate + 0.0, run_length=run,
                                mean_distance=float(near[row][hits[row]].mean()),
                                matched=int(matched[row]), overlap=int(overlap[row]),
                                sample_fps=rate)
    if found is None:  # a speed-ramped copy lines up at two offsets, never at one
        found = ramp_match(exact, dist, (hits, usable, near), rate=rate,
                           max_hamming=max_hamming, min_consecutive=min_consecutive,
                           min_matched=min_matched, min_match_ratio=min_match_ratio)
    return found


def nearest(a: Fingerprint, b: Fingerprint, *, max_hamming: int, jitter: int = 1,
            mirrored: bool = False) -> MatchResult | None:
    """The offset where most samples agree, with no threshold applied: how close two clips
    judged different came (for `footyd explain`). None when they share no usable sample."""
    if a.sample_fps != b.sample_fps:
        rate = min(a.sample_fps, b.sample_fps)
        a, b = a.subsample(rate), b.subsample(rate)
    sides = [(b, False), (mirror_print(b), True)] if mirrored else [(b, False)]
    found: MatchResult | None = None
    for other, flipped in sides:
        exact = _distances(a, other)
        hits, usable, near = diagonals(exact, _with_jitter(exact, jitter), max_hamming)
        matched = hits.sum(axis=1)
        row = int(np.argmax(matched))  # the first offset with the most matches
        if matched[row] == 0 or (found is not None and matched[row] <= found.matched):
            continue
        k = row - (len(a.hashes) - 1)  # a[i] paired with other[i + k]
        found = MatchResult(offset_s=-k / a.sample_fps + 0.0, run_length=longest_run(hits[row]),
                            mean_distance=float(near[row][hits[row]].mean()),
                            matched=int(matched[row]), overlap=int(usable[row].sum()),
                            mirrored=flipped, sample_fps=a.sample_fps)
    return found
