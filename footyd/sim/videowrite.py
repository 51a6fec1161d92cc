"""Writing generated BGR frames to mp4 (OpenCV mp4v, PyAV libx264) and re-posters' transforms."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

FOURCC = "mp4v"


class ClipWriteError(RuntimeError):
    """OpenCV could not write (or read back) a generated clip."""


REFRAMES = ("none", "zoom", "portrait", "pillarbox")


def source_size(reframe: str, width: int, height: int) -> tuple[int, int]:
    """The broadcast (16:9 for portrait) frame size a reframed copy is cut from."""
    if reframe == "portrait":
        return 2 * round(height * 16 / 9 / 2), height
    return width, height


def reframed(frames: Iterator[np.ndarray], *, reframe: str, zoom_frac: float, width: int,
              height: int, watermark: str | None,
              zoom_shift: tuple[float, float] = (0.0, 0.0)) -> Iterator[np.ndarray]:
    """A re-poster's copy: zoomed-in crop (off-centre by `zoom_shift`, fractions of the margin
    in -1..1), portrait centre cut or 4:3 pillarbox, plus a watermark."""
    sx, sy = zoom_shift
    for frame in frames:
        h, w = frame.shape[:2]
        if reframe == "zoom":
            dx, dy = int(w * zoom_frac), int(h * zoom_frac)
            x0, y0 = round(dx * (1 + sx)), round(dy * (1 + sy))
            frame = cv2.resize(frame[y0:y0 + h - 2 * dy, x0:x0 + w - 2 * dx], (width, height),
                               interpolation=cv2.INTER_AREA)
        elif reframe == "portrait":
            x0 = (w - width) // 2
            frame = np.ascontiguousarray(frame[:, x0:x0 + width])
        elif reframe == "pillarbox":
            inner = 2 * round(h * 4 / 3 / 2)
            x0 = (w - inner) // 2
            out = np.zeros_like(frame)
            out[:, x0:x0 + inner] = frame[:, x0:x0 + inner]
            frame = out
        if watermark:
            u = height / 360.0
            cv2.putText(frame, watermark[:24], (int(10 * u), height - int(14 * u)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.7 * u, (255, 255, 255), max(1, int(2 * u)),
                        cv2.LINE_AA)
        yield frame


def write_mp4v(path: Path, frames: Iterator[np.ndarray], *, width: int, height: int, fps: float) -> int:
    """Encode BGR frames with OpenCV's mp4v writer; the number of frames written."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*FOURCC), fps, (width, height))
    if not writer.isOpened():
        raise ClipWriteError(f"VideoWriter failed to open {path} ({FOURCC} {width}x{height})")
    count = 0
    try:
        for frame in frames:
            if frame.shape[:2] != (height, width):
                raise ClipWriteError(f"frame {frame.shape[:2]} != {(height, width)}")
            writer.write(frame)
            count += 1
    finally:
        writer.release()
    if count == 0 or not path.exists() or path.stat().st_size == 0:
        raise ClipWriteError(f"nothing written to {path}")
    return count


@dataclass(frozen=True)
class H264Options:
    """Broadcaster-like libx264 settings: CRF (or a capped bitrate), fixed GOP, faststart mp4."""

    preset: str = "veryfast"
    crf: int = 23
    bitrate_kbps: int | None = None  # set: ABR with maxrate/bufsize instead of CRF
    gop_s: float = 2.0
    profile: str = "high"


def frame_rate(fps: float) -> Fraction:
    """Exact stream rate: NTSC-style 29.97/59.94/23.976 become N*1000/1001, others a near fraction."""
    ntsc = round(fps * 1.001)
    if abs(fps - ntsc / 1.001) < 1e-3 and abs(fps - ntsc) > 1e-3:
        return Fraction(ntsc * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)


def write_h264(path: Path, frames: Iterator[np.ndarray], *, width: int, height: int, fps: float,
                opts: H264Options) -> int:
    """Encode BGR frames as H.264 yuv420p in an mp4 with the moov atom up front (browser-playable)."""
    if width % 2 or height % 2:
        raise ValueError(f"h264/yuv420p needs even width and height, got {width}x{height}")
    rate = frame_rate(fps)
    count = 0
    # +faststart: moov before mdat, so a <video> element starts playing before the whole file arrives
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        ctx = stream.codec_context
        ctx.gop_size = max(1, round(opts.gop_s * fps))
        ctx.profile = opts.profile
        options = {"preset": opts.preset, "sc_threshold": "0"}  # sc_threshold 0: GOP stays fixed
        if opts.bitrate_kbps is None:
            options["crf"] = str(opts.crf)
        else:
            ctx.bit_rate = opts.bitrate_kbps * 1000
            options |= {"maxrate": f"{opts.bitrate_kbps}k", "bufsize": f"{2 * opts.bitrate_kbps}k"}
        ctx.options = options
        for frame in frames:
            if frame.shape[:2] != (height, width):
                raise ClipWriteError(f"frame {frame.shape[:2]} != {(height, width)}")
            vf = av.VideoFrame.from_ndarray(frame, format="bgr24").reformat(format="yuv420p")
            vf.pts = count
            vf.time_base = 1 / rate
            container.mux(stream.encode(vf))
            count += 1
        container.mux(stream.encode(None))
    if count == 0 or path.stat().st_size == 0:
        raise ClipWriteError(f"nothing written to {path}")
    return count


def degrade(src: Path, *, quality: int, width: int, height: int) -> Iterator[np.ndarray]:
    """Read a written clip back and JPEG-degrade + down/upscale each frame (a lossy re-encode)."""
    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise ClipWriteError(f"cannot read back {src}")
    factor = 0.5 if quality < 50 else 0.75
    small = (max(2, int(width * factor)), max(2, int(height * factor)))
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frame = cv2.resize(frame, small, interpolation=cv2.INTER_AREA)
            ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if not ok:
                raise ClipWriteError("jpeg encode failed")
            decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
            if decoded is None:
                raise ClipWriteError("jpeg decode failed")
            yield cv2.resize(decoded, (width, height), interpolation=cv2.INTER_LINEAR)
    finally:
        cap.release()
