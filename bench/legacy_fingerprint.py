"""footyd's previous decode (OpenCV: grab() every frame, retrieve() the sampled ones), as a baseline.

`opencv_samples` feeds the same hashing as today's fingerprint, so the two decodes can be compared
hash for hash; only the decode differs.
"""

from __future__ import annotations

import cv2
import numpy as np

from footyd.errors import DownloadFailed
from footyd.media.fingerprint import SMALL_H, SMALL_W, Fingerprint, fingerprint_frames
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
