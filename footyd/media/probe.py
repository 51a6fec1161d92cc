"""Validate a downloaded video file with OpenCV and report its basic properties (pure, no I/O else)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import cv2

from footyd.errors import DownloadFailed

# bounded open/read so a hostile or truncated file cannot hang a pool worker
OPEN_TIMEOUT_MS = 10_000
READ_TIMEOUT_MS = 10_000
MAX_SIDE_PX = 8192
MAX_FPS = 300.0


@dataclass(frozen=True)
class VideoInfo:
    """What OpenCV reports about a video file."""

    width: int
    height: int
    fps: float
    frame_count: int
    duration_s: float
    codec: str
    size_bytes: int

    @property
    def aspect(self) -> float:
        """Width over height."""
        return self.width / self.height

    @property
    def short_side_px(self) -> int:
        """The smaller of width and height."""
        return min(self.width, self.height)


def open_capture(path: str) -> cv2.VideoCapture:
    """Open `path` with the FFmpeg backend and bounded timeouts; raise invalid_media on failure."""
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise DownloadFailed("invalid_media", f"cannot stat file: {exc.strerror}") from exc
    if size == 0:
        raise DownloadFailed("invalid_media", "empty file")
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS,
              cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS]
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, params)
    if not cap.isOpened():
        cap.release()
        raise DownloadFailed("invalid_media", "OpenCV cannot open the file")
    return cap


def capture_fps(cap: cv2.VideoCapture) -> float:
    """The stream's frame rate, or invalid_media when it is nonsense."""
    fps = float(cap.get(cv2.CAP_PROP_FPS))
    if not (0.5 <= fps <= MAX_FPS):
        raise DownloadFailed("invalid_media", f"implausible fps {fps:g}")
    return fps


def _fourcc(value: float) -> str:
    code = int(value)
    chars = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return chars.strip("\x00 ") if chars.isprintable() else f"0x{code:08x}"


def probe(path: str, *, check_frames: int = 3) -> VideoInfo:
    """Open `path`, decode its first `check_frames` frames and return its properties.

    Raises DownloadFailed("invalid_media", reason) when the file cannot be opened, no frame
    decodes, the size or fps is implausible, or the frame count/duration is zero.
    """
    cap = open_capture(path)
    try:
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if not (0 < width <= MAX_SIDE_PX and 0 < height <= MAX_SIDE_PX):
            raise DownloadFailed("invalid_media", f"implausible size {width}x{height}")
        fps = capture_fps(cap)
        frame_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if frame_count <= 0:
            raise DownloadFailed("invalid_media", "zero frame count")
        codec = _fourcc(cap.get(cv2.CAP_PROP_FOURCC))
        decoded = 0
        for _ in range(max(1, min(check_frames, frame_count))):
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            if decoded == 0:
                # the decoded (display-rotated) frame is what a viewer sees: trust it over headers
                height, width = int(frame.shape[0]), int(frame.shape[1])
            decoded += 1
        if decoded == 0:
            raise DownloadFailed("invalid_media", "no frame decodes")
    finally:
        cap.release()
    return VideoInfo(width=width, height=height, fps=fps, frame_count=frame_count,
                     duration_s=frame_count / fps, codec=codec,
                     size_bytes=os.path.getsize(path))
