"""Sampled decode with PyAV: small gray frames at a fixed rate, by frame timestamps (pure, one file).

Cheap on purpose, because this is where footyd's CPU goes: single-threaded (the pool gives the
parallelism), the loop filter skipped, non-reference frames skipped when the stream is dense
enough that the kept frames still land within a sample's tolerance, and each sampled frame
scaled to the hash grid by swscale instead of being converted at full size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from footyd.errors import DownloadFailed

MAX_SIDE_PX = 8192
# NONREF drops at most a couple of frames in a row (x264 b-frames): allowed only when the
# stream has at least this many frames per sample interval
NONREF_MIN_FRAMES_PER_SAMPLE = 4
MAX_DECODE_ERRORS = 10  # corrupt packets tolerated before the rest of the file is given up
POSTER_AT_FRACTION = 0.4  # a goal clip's moment is rarely its first frame
POSTER_AT_S = 2.0  # when the header does not say how long the clip is


@dataclass(frozen=True)
class StreamInfo:
    """What the container says about the first video stream (headers: may lie, see decode)."""

    width: int
    height: int
    fps: float
    duration_s: float | None


@dataclass(frozen=True)
class Samples:
    """Gray frames (h x w uint8) sampled at `sample_fps`; `truncated` names decode errors met."""

    sample_fps: float
    frames: tuple[np.ndarray, ...]
    truncated: str = ""
    poster: np.ndarray | None = None  # one RGB frame (h x w x 3) when asked for, see sample_frames


def _open(path: str) -> av.container.InputContainer:
    try:
        return av.open(path, mode="r", metadata_errors="ignore")
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise DownloadFailed("invalid_media", f"cannot open: {type(exc).__name__}") from exc


def _video_stream(container: av.container.InputContainer) -> av.VideoStream:
    if not container.streams.video:
        raise DownloadFailed("invalid_media", "no video stream")
    return container.streams.video[0]


def _stream_info(container: av.container.InputContainer, stream: av.VideoStream) -> StreamInfo:
    ctx = stream.codec_context
    width, height = int(ctx.width or 0), int(ctx.height or 0)
    if not (0 < width <= MAX_SIDE_PX and 0 < height <= MAX_SIDE_PX):
        raise DownloadFailed("invalid_media", f"implausible size {width}x{height}")
    rate = stream.average_rate or stream.guessed_rate or Fraction(0)
    fps = float(rate)
    duration_s: float | None = None
    if stream.duration and stream.time_base:
        duration_s = float(stream.duration * stream.time_base)
    elif container.duration:
        duration_s = container.duration / av.time_base
    return StreamInfo(width=width, height=height, fps=fps, duration_s=duration_s)


def stream_info(path: str) -> StreamInfo:
    """Header facts of `path`'s first video stream, or invalid_media."""
    with _open(path) as container:
        return _stream_info(container, _video_stream(container))


def sample_frames(path: str, *, sample_fps: float, width: int, height: int,
                  max_megapixel_s: float | None = None, allow_nonref: bool = True,
                  poster_width: int | None = None) -> Samples:
    """Decode `path` once and return a `width` x `height` gray frame every 1/sample_fps seconds.

    Sample k is the decoded frame whose timestamp is nearest to k/sample_fps after the first
    frame (variable frame rate and skipped frames are fine). Corrupt packets are skipped and
    noted in `truncated`; too many end the decode with the samples so far; no sample at all
    raises invalid_media. With
    `max_megapixel_s`, decoding more than that many megapixel-seconds of video raises "filtered"
    (headers can lie about duration, so this is checked while decoding too). With
    `poster_width`, the same decode also keeps one colour frame at that width (the poster: the
    frame at 40% of the header duration, else at POSTER_AT_S, else the last one).
    """
    if sample_fps <= 0:
        raise ValueError("sample_fps must be positive")
    with _open(path) as container:
        stream = _video_stream(container)
        info = _stream_info(container, stream)
        megapixels = info.width * info.height / 1e6
        if max_megapixel_s is not None and info.duration_s is not None:
            _check_cost(info.duration_s, megapixels, max_megapixel_s)
        ctx = stream.codec_context
        ctx.thread_count = 1  # the process pool is the parallelism
        ctx.options = {"skip_loop_filter": "all"}
        if allow_nonref and info.fps >= NONREF_MIN_FRAMES_PER_SAMPLE * sample_fps:
            ctx.skip_frame = "NONREF"
        poster = None
        if poster_width is not None:
            at_s = POSTER_AT_FRACTION * info.duration_s if info.duration_s else POSTER_AT_S
            poster = _Poster(at_s, poster_width, info.width, info.height)
        frames, truncated = _sample(container, stream, sample_fps, width, height, megapixels,
                                    max_megapixel_s, poster)
    if not frames:
        raise DownloadFailed("invalid_media", f"no frame decodes{': ' + truncated if truncated else ''}")
    return Samples(sample_fps=sample_fps, frames=tuple(frames), truncated=truncated,
                   poster=poster.image() if poster is not None else None)


class _Poster:
    """Keeps the first frame at or after `at_s` (else the last one) as RGB at `width`."""

    def __init__(self, at_s: float, width: int, src_w: int, src_h: int) -> None:
        self.at_s = at_s
        self.width = max(2, min(width, src_w) // 2 * 2)
        self.height = max(2, round(self.width * src_h / max(src_w, 1)) // 2 * 2)
        self._rgb: np.ndarray | None = None
        self._last: av.VideoFrame | None = None

    def offer(self, t: float, frame: av.VideoFrame) -> None:
        if self._rgb is not None:
            return
        if t >= self.at_s:
            self._rgb = self._convert(frame)
        else:
            self._last = frame

    def _convert(self, frame: av.VideoFrame) -> np.ndarray:
        return frame.reformat(width=self.width, height=self.height, format="rgb24",
                              interpolation="AREA").to_ndarray()

    def image(self) -> np.ndarray | None:
        if self._rgb is None and self._last is not None:
            self._rgb = self._convert(self._last)
        return self._rgb


def _check_cost(duration_s: float, megapixels: float, max_megapixel_s: float) -> None:
    cost = duration_s * megapixels
    if cost > max_megapixel_s:
        raise DownloadFailed("filtered", f"decode cost {cost:.1f} megapixel-s (duration x size) "
                                         f"above max_decode_megapixel_s {max_megapixel_s:g}")


def _decoded(container: av.container.InputContainer, stream: av.VideoStream,
             errors: list[str]) -> Iterator[av.VideoFrame]:
    """Frames in presentation order; a corrupt packet is skipped (the decoder resyncs at the next
    keyframe), and decoding stops at a demux error or after MAX_DECODE_ERRORS bad packets."""
    try:
        for packet in container.demux(stream):
            try:
                yield from packet.decode()
            except (av.FFmpegError, ValueError) as exc:
                errors.append(f"{type(exc).__name__} at {_time_of(packet)}")
                if len(errors) >= MAX_DECODE_ERRORS:
                    return
    except (av.FFmpegError, EOFError, ValueError) as exc:
        errors.append(f"{type(exc).__name__} reading the file")


def _time_of(packet: av.Packet) -> str:
    if packet.pts is None or packet.time_base is None:
        return "an unknown time"
    return f"{float(packet.pts * packet.time_base):.1f}s"


def _sample(container: av.container.InputContainer, stream: av.VideoStream, sample_fps: float,
            width: int, height: int, megapixels: float, max_megapixel_s: float | None,
            poster: _Poster | None = None) -> tuple[list[np.ndarray], str]:
    out: list[np.ndarray] = []
    errors: list[str] = []
    t0: float | None = None
    prev: tuple[float, av.VideoFrame] | None = None

    def small(frame: av.VideoFrame) -> np.ndarray:
        scaled = frame.reformat(width=width, height=height, format="gray", interpolation="AREA")
        return scaled.to_ndarray()

    for frame in _decoded(container, stream, errors):
        if frame.time is None:
            continue
        if t0 is None:
            t0 = frame.time
        t = frame.time - t0
        if t < 0:
            continue  # out-of-order timestamp: not worth a sample
        if max_megapixel_s is not None and t * megapixels > max_megapixel_s:
            _check_cost(t, megapixels, max_megapixel_s)
        if poster is not None:
            poster.offer(t, frame)
        target = len(out) / sample_fps
        # every target passed by this frame is served by this frame or the previous one
        while t >= target:
            if prev is not None and target - prev[0] < t - target:
                out.append(small(prev[1]))
            else:
                out.append(small(frame))
            target = len(out) / sample_fps
        prev = (t, frame)
    if not errors:
        return out, ""
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return out, f"decode errors: {errors[0]}{more}"
