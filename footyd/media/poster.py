"""A clip's poster image: the colour frame the sampling decode kept, as a JPEG (pure)."""

from __future__ import annotations

import cv2
import numpy as np

POSTER_WIDTH_PX = 640  # enough for a phone's full width; about 30-60 KB
JPEG_QUALITY = 80
MAX_POSTER_BYTES = 1 << 20


def encode_jpeg(rgb: np.ndarray, *, quality: int = JPEG_QUALITY) -> bytes | None:
    """The frame as JPEG bytes, or None when it cannot be encoded within MAX_POSTER_BYTES."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        return None
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok or buf.size > MAX_POSTER_BYTES:
        return None
    return bytes(buf.tobytes())
