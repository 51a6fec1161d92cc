"""footyd's previous fingerprint decode (OpenCV grab/retrieve of every frame), kept as a baseline."""

from __future__ import annotations

import cv2
import numpy as np

from footyd.errors import DownloadFailed
from footyd.media.fingerprint import FLAT_STD, Fingerprint, to_signed64
from footyd.media.probe import capture_fps, open_capture


def _dhash(frame: np.ndarray) -> tuple[int, bool]:
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).astype(np.float32)
    grid = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA)
    bits = (grid[:, 1:] > grid[:, :-1]).flatten()
    value = int.from_bytes(np.packbits(bits).tobytes(), "big")
    return to_signed64(value), float(grid.std()) < FLAT_STD


def fingerprint_opencv(path: str, *, sample_fps: float) -> Fingerprint:
    """The pre-PyAV fingerprint: one sequential OpenCV decode, grab() all, retrieve() sampled."""
    cap = open_capture(path)
    try:
        fps = capture_fps(cap)
        rate = min(sample_fps, fps)
        hashes: list[int] = []
        flat: list[int] = []
        index = 0
        next_t = 0.0
        half_frame = 0.5 / fps
        while cap.grab():
            if index / fps + half_frame >= next_t:
                ok, frame = cap.retrieve()
                if ok and frame is not None:
                    value, is_flat = _dhash(frame)
                    if is_flat:
                        flat.append(len(hashes))
                    hashes.append(value)
                next_t = len(hashes) / rate
            index += 1
    finally:
        cap.release()
    if not hashes:
        raise DownloadFailed("invalid_media", "no frame decodes")
    return Fingerprint(sample_fps=rate, hashes=tuple(hashes), flat=tuple(flat))
