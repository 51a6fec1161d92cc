"""Crop windows: each sampled picture hashed through WINDOWS, off centre as well (pure).

Only the crop step compares them (`media/crop.py`). A clip's windows are kept for at most
WINDOW_MAX_SAMPLES samples: every `window_stride_for(samples)`-th one, a power of two, so two
clips brought to the stride of the longer line their windows up with their samples.
"""

from __future__ import annotations

import numpy as np

# (fraction cut off each side, x shift, y shift as fractions of that margin); chosen on corpus A
# (bench/crop_windows.py, bench/dedup_quality.py)
WINDOW_ZOOMS = (0.06, 0.075, 0.09, 0.105, 0.12, 0.135, 0.15)
WINDOW_SHIFTS = (-1.0, -0.5, 0.0, 0.5, 1.0)
WINDOWS = tuple((z, sx, sy) for z in WINDOW_ZOOMS for sx in WINDOW_SHIFTS for sy in WINDOW_SHIFTS)
# 30 s at 5 samples/s: 210 KB of windows at most per fingerprint, and the crop step's cost per
# pair (which grows with samples squared) bounded
WINDOW_MAX_SAMPLES = 150


def window_stride_for(samples: int) -> int:
    """The smallest power of two keeping `samples` at WINDOW_MAX_SAMPLES or fewer."""
    stride = 1
    while -(-samples // stride) > WINDOW_MAX_SAMPLES:
        stride *= 2
    return stride


def window_hashes(pictures: np.ndarray) -> np.ndarray:
    """(windows, samples) unsigned dHashes of each picture seen through each of WINDOWS.

    All at once from summed-area tables: a 9x8 grid cell's mean is the picture's area average
    over it, as an INTER_AREA resize of the window computes (pictures: samples x h x w)."""
    n, h, w = pictures.shape
    table = np.zeros((n, h + 1, w + 1))
    table[:, 1:, 1:] = pictures.astype(np.float64).cumsum(axis=1).cumsum(axis=2)
    frac, sx, sy = (np.array(c)[:, None] for c in zip(*WINDOWS, strict=True))
    top = np.round(h * frac * (1 + sy)) + np.round(h * (1 - 2 * frac)) * np.arange(9) / 8
    left = np.round(w * frac * (1 + sx)) + np.round(w * (1 - 2 * frac)) * np.arange(10) / 9
    # the table between whole pixels: bilinear, as the area of a constant pixel grows linearly
    y0 = np.minimum(np.floor(top).astype(int), h - 1)
    x0 = np.minimum(np.floor(left).astype(int), w - 1)
    ty, tx = (top - y0)[:, :, None], (left - x0)[:, None, :]
    yy, xx = y0[:, :, None], x0[:, None, :]
    corner = (table[:, yy, xx] * (1 - ty) * (1 - tx) + table[:, yy + 1, xx] * ty * (1 - tx)
              + table[:, yy, xx + 1] * (1 - ty) * tx + table[:, yy + 1, xx + 1] * ty * tx)
    cells = corner[..., 1:, 1:] - corner[..., :-1, 1:] - corner[..., 1:, :-1] + corner[..., :-1, :-1]
    bits = cells[..., 1:] > cells[..., :-1]  # samples x windows x 8 x 8, as dhash_grid
    packed = np.packbits(bits.reshape(n, len(WINDOWS), 64), axis=-1)
    return np.ascontiguousarray(packed.view(">u8")[..., 0].T.astype(np.uint64))
