"""Deterministic synthetic video clips (seeded moving shapes + noise): OpenCV mp4v or PyAV H.264."""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from footyd.sim.videowrite import (
    FOURCC,
    REFRAMES,
    ClipWriteError,
    H264Options,
    degrade,
    reframed,
    source_size,
    write_h264,
    write_mp4v,
)

__all__ = ["CATALOGUE", "CODECS", "FOURCC", "ClipSpec", "ClipWriteError", "H264Options",
           "expected_frames", "generate_catalogue", "write_clip", "write_garbage"]

CODECS = ("mp4v", "h264")




@dataclass(frozen=True)
class _Shape:
    kind: int  # 0 circle, 1 rectangle
    x0: float
    y0: float
    vx: float
    vy: float
    size: float
    color: tuple[int, int, int]


@dataclass(frozen=True)
class _Scene:
    background: np.ndarray  # small float32 BGR grid, upscaled per render size
    shapes: tuple[_Shape, ...]


def _make_scene(scene: int) -> _Scene:
    rng = np.random.default_rng(scene)
    # coarse random blocks, smoothed on upscale: scenes differ strongly at dHash resolution
    background = rng.uniform(20, 235, size=(4, 6, 3)).astype(np.float32)
    shapes = tuple(
        _Shape(
            kind=int(rng.integers(0, 2)),
            x0=float(rng.uniform(0.1, 0.9)),
            y0=float(rng.uniform(0.1, 0.9)),
            vx=float(rng.uniform(0.08, 0.25) * rng.choice([-1, 1])),
            vy=float(rng.uniform(0.05, 0.2) * rng.choice([-1, 1])),
            size=float(rng.uniform(0.12, 0.25)),
            color=(int(rng.integers(0, 256)), int(rng.integers(0, 256)), int(rng.integers(0, 256))),
        )
        for _ in range(4)
    )
    return _Scene(background=background, shapes=shapes)


def _bounce(p: float) -> float:
    """Triangle wave folding any position back into [0, 1]."""
    p = p % 2.0
    return 2.0 - p if p > 1.0 else p


PANORAMA_VIEWS = 4  # a stadium panorama is this many frame widths wide


@dataclass(frozen=True)
class _Camera:
    """A camera following play over one stadium's panorama; odd angles see the play mirrored."""

    panorama: np.ndarray  # small float32 BGR grid shared by every clip of the stadium
    x0: float
    # (amplitude, angular frequency, phase) per component: the camera speeds up, slows, turns;
    # amplitude is in panorama ranges (3 frame widths): pans of up to ~1 frame width per second
    sway: tuple[tuple[float, float, float], ...]
    mirror: bool


def _make_camera(stadium: int, scene: int, angle: int) -> _Camera:
    panorama = np.random.default_rng(stadium + 7_000_001).uniform(
        20, 235, size=(4, 6 * PANORAMA_VIEWS, 3)).astype(np.float32)
    rng = np.random.default_rng([scene, angle, 7_000_003])
    sway = tuple((float(rng.uniform(0.03, 0.1)), float(2 * np.pi * rng.uniform(0.05, 0.2)),
                  float(rng.uniform(0, 2 * np.pi))) for _ in range(3))
    return _Camera(panorama=panorama, x0=float(rng.uniform(0, 1)), sway=sway,
                   mirror=angle % 2 == 1)


def _panned(wide: np.ndarray, cam: _Camera, t_s: float, width: int) -> np.ndarray:
    x = cam.x0 + sum(a * np.sin(w * t_s + p) for a, w, p in cam.sway)
    off = int(_bounce(x) * (wide.shape[1] - width))
    view = wide[:, off:off + width]
    return np.ascontiguousarray(view[:, ::-1] if cam.mirror else view)


def _render(scene: _Scene, base: np.ndarray, t_s: float, width: int, height: int,
            mirror: bool = False) -> np.ndarray:
    frame = base.copy()
    for s in scene.shapes:
        cx = int(_bounce(s.x0 + s.vx * t_s) * width)
        if mirror:
            cx = width - 1 - cx
        cy = int(_bounce(s.y0 + s.vy * t_s) * height)
        r = max(2, int(s.size * height))
        if s.kind == 0:
            cv2.circle(frame, (cx, cy), r, s.color, thickness=-1, lineType=cv2.LINE_AA)
        else:
            cv2.rectangle(frame, (cx - r, cy - r // 2), (cx + r, cy + r // 2), s.color, -1)
    return frame


def _draw_overlay(frame: np.ndarray, text: str) -> None:
    """Broadcast-style graphics: a score bar top-left and a logo box top-right."""
    h, w = frame.shape[:2]
    u = h / 360.0
    x0, y0 = int(12 * u), int(10 * u)
    bar_w, bar_h = int(200 * u), int(28 * u)
    cv2.rectangle(frame, (x0, y0), (x0 + bar_w, y0 + bar_h), (30, 30, 30), thickness=-1)
    cv2.putText(frame, text[:16], (x0 + int(6 * u), y0 + int(20 * u)), cv2.FONT_HERSHEY_SIMPLEX,
                0.6 * u, (255, 255, 255), max(1, int(1.5 * u)), cv2.LINE_AA)
    lx = w - int(90 * u)
    cv2.rectangle(frame, (lx, y0), (lx + int(70 * u), y0 + int(40 * u)), (240, 240, 240), -1)
    cv2.putText(frame, "TV", (lx + int(14 * u), y0 + int(30 * u)), cv2.FONT_HERSHEY_SIMPLEX,
                0.9 * u, (0, 0, 200), max(1, int(2 * u)), cv2.LINE_AA)


def ramp_seconds(seconds: float, ramp: tuple[float, float, float] | None) -> float:
    """How long `seconds` of content play with `ramp` (start_s, end_s, speed) slowed."""
    if ramp is None:
        return seconds
    start_s, end_s, speed = ramp
    return seconds + (end_s - start_s) * (1.0 / speed - 1.0)


def _content_s(out_s: float, ramp: tuple[float, float, float] | None) -> float:
    """Content time shown at `out_s` of a clip whose content [start_s, end_s) plays at `speed`."""
    if ramp is None or out_s < ramp[0]:
        return out_s
    start_s, end_s, speed = ramp
    slow_s = (end_s - start_s) / speed
    if out_s < start_s + slow_s:
        return start_s + (out_s - start_s) * speed
    return out_s - slow_s + (end_s - start_s)


def _frames(*, seed: int, scene: int, seconds: float, width: int, height: int, fps: float,
            overlay: str | None, trim_start_s: float, stadium: int | None = None,
            angle: int = 0, ramp: tuple[float, float, float] | None = None
            ) -> Iterator[np.ndarray]:
    sc = _make_scene(scene)
    cam = None if stadium is None else _make_camera(stadium, scene, angle)
    if cam is None:
        base = cv2.resize(sc.background, (width, height), interpolation=cv2.INTER_CUBIC)
    else:
        base = cv2.resize(cam.panorama, (width * PANORAMA_VIEWS, height),
                          interpolation=cv2.INTER_CUBIC)
    base = np.clip(base, 0, 255).astype(np.uint8)
    rng = np.random.default_rng(seed + 1_000_003)
    # a handful of precomputed noise planes keeps generation cheap while frames stay "noisy"
    # coarse (4x4-pixel) low-amplitude noise: visible grain that mp4v still compresses cheaply;
    # split into saturating add/subtract planes so per-frame work stays in OpenCV
    nh, nw = max(1, height // 4), max(1, width // 4)
    noise: list[tuple[np.ndarray, np.ndarray]] = []
    for _ in range(4):
        small = rng.integers(-6, 7, size=(nh, nw), dtype=np.int16)
        plane = cv2.resize(small.astype(np.float32), (width, height),
                           interpolation=cv2.INTER_NEAREST).astype(np.int16)
        pos = cv2.merge([np.clip(plane, 0, None).astype(np.uint8)] * 3)
        neg = cv2.merge([np.clip(-plane, 0, None).astype(np.uint8)] * 3)
        noise.append((pos, neg))
    picks = rng.integers(0, len(noise), size=max(1, round(ramp_seconds(seconds, ramp) * fps)))
    for i, pick in enumerate(picks):
        t_s = trim_start_s + _content_s(i / fps, ramp)
        if cam is None:
            frame = _render(sc, base, t_s, width, height)
        else:
            frame = _render(sc, _panned(base, cam, t_s, width), t_s, width, height, cam.mirror)
        pos, neg = noise[int(pick)]
        frame = cv2.subtract(cv2.add(frame, pos), neg)
        if overlay:
            _draw_overlay(frame, overlay)
        yield frame


def write_clip(path: Path, *, seed: int, seconds: float = 3.0, width: int = 640, height: int = 360,
               fps: float = 25.0, quality: int | None = None, overlay: str | None = None,
               trim_start_s: float = 0.0, scene: int | None = None, codec: str = "mp4v",
               h264: H264Options | None = None, stadium: int | None = None,
               angle: int = 0, reframe: str = "none", zoom_frac: float = 0.08,
               watermark: str | None = None, ramp: tuple[float, float, float] | None = None,
               zoom_shift: tuple[float, float] = (0.0, 0.0)) -> Path:
    """Write a seeded synthetic clip; `scene` (default `seed`) fixes the content shared by variants.

    Content is a function of content time, so the same scene at another size, fps, start
    (`trim_start_s`), with an `overlay` text or at JPEG `quality` (1-100) is a variant of one clip.
    `codec` "mp4v" writes with OpenCV; "h264" writes libx264 yuv420p with PyAV (`h264` settings).
    With `stadium`, the background is a camera panning over that stadium's panorama (shared by
    every clip of the stadium), and `angle` picks another camera on the same play (mirrored when
    odd): a hard negative for dedup. `reframe` cuts a re-poster's copy from the broadcast frame
    ("zoom": `zoom_frac` off each side; "portrait": the centre 9:16 column of a 16:9 frame;
    "pillarbox": the centre 4:3 with black bars; `zoom_shift` (x, y) moves the zoomed window
    off-centre, in fractions of the margin) and `watermark` adds their text. `ramp` (start_s,
    end_s, speed) plays that stretch of content time at `speed` (a slow-motion replay).
    """
    if width < 16 or height < 16 or fps <= 0 or seconds <= 0:
        raise ValueError("width/height >= 16, fps > 0 and seconds > 0 required")
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
    if reframe not in REFRAMES or not 0 <= zoom_frac < 0.5:
        raise ValueError(f"reframe must be one of {REFRAMES} and 0 <= zoom_frac < 0.5")
    opts = h264 or H264Options()

    def write(dest: Path, frames: Iterator[np.ndarray]) -> int:
        if codec == "h264":
            return write_h264(dest, frames, width=width, height=height, fps=fps, opts=opts)
        return write_mp4v(dest, frames, width=width, height=height, fps=fps)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    src_w, src_h = source_size(reframe, width, height)
    frames = _frames(seed=seed, scene=seed if scene is None else scene, seconds=seconds,
                     width=src_w, height=src_h, fps=fps, overlay=overlay,
                     trim_start_s=trim_start_s, stadium=stadium, angle=angle, ramp=ramp)
    if reframe != "none" or watermark:
        frames = reframed(frames, reframe=reframe, zoom_frac=zoom_frac, width=width,
                           height=height, watermark=watermark, zoom_shift=zoom_shift)
    if quality is None:
        write(path, frames)
        return path
    fd, tmp_name = tempfile.mkstemp(suffix=".mp4", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        expected = write_mp4v(tmp, frames, width=width, height=height, fps=fps)
        written = write(path, degrade(tmp, quality=quality, width=width, height=height))
    finally:
        tmp.unlink(missing_ok=True)
    if abs(written - expected) > 1:
        raise ClipWriteError(f"re-encode read back {written} of {expected} frames")
    return path


def write_garbage(path: Path, size_bytes: int, *, seed: int = 0) -> Path:
    """Write `size_bytes` of seeded random bytes (not a video) to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random.Random(seed).randbytes(size_bytes))
    return path


def expected_frames(seconds: float, fps: float) -> int:
    """Number of frames `write_clip` writes for `seconds` at `fps`."""
    return max(1, round(seconds * fps))


@dataclass(frozen=True)
class ClipSpec:
    """One named entry of the clip host's catalogue and the behaviour serving it."""

    name: str
    # clip | garbage | oversized | oversized_nolength | slow | trickle | status
    kind: str
    scene: int = 0
    seed: int = 0
    seconds: float = 0.0
    width: int = 0
    height: int = 0
    quality: int | None = None
    overlay: str | None = None
    trim_start_s: float = 0.0
    status: int = 200
    codec: str = "mp4v"
    note: str = ""

    @property
    def filename(self) -> str:
        """File name inside the catalogue directory."""
        return f"{self.name}.mp4"


def _clip(name: str, scene: int, seed: int, seconds: float, width: int, height: int,
          **kw: Any) -> ClipSpec:
    return ClipSpec(name=name, kind="clip", scene=scene, seed=seed, seconds=seconds,
                    width=width, height=height, **kw)


SCORE_OVERLAY = "LEV 1-0 BAY"
CATALOGUE: dict[str, ClipSpec] = {s.name: s for s in (
    # scene 1 = goal clip "A" and its re-posts
    _clip("a_720p", 1, 1, 6.0, 1280, 720),
    _clip("a_low", 1, 11, 6.0, 640, 360, quality=15),
    _clip("a_480p", 1, 12, 6.0, 854, 480),
    _clip("a_trim1", 1, 13, 5.0, 640, 360, trim_start_s=1.0),
    _clip("a_logo", 1, 14, 6.0, 960, 540, overlay=SCORE_OVERLAY),
    # scene 2 = a different clip "B" (another angle) with the same broadcast graphics
    _clip("b_540p", 2, 2, 5.0, 960, 540, overlay=SCORE_OVERLAY),
    _clip("portrait", 3, 3, 4.0, 360, 640),
    _clip("short", 4, 4, 2.0, 640, 360),
    ClipSpec(name="garbage", kind="garbage", seed=5, note="random bytes served as video/mp4"),
    ClipSpec(name="oversized", kind="oversized", note="Content-Length above the cap"),
    ClipSpec(name="oversized_nolength", kind="oversized_nolength", note="chunked, above the cap"),
    ClipSpec(name="slow", kind="slow", note="sends a little, then stalls"),
    ClipSpec(name="trickle", kind="trickle", note="1 KiB every trickle_interval_s, never ends"),
    ClipSpec(name="missing", kind="status", status=404, note="post deleted"),
    ClipSpec(name="geo", kind="status", status=403, note="geo-blocked"),
    ClipSpec(name="limited", kind="status", status=429, note="rate limited"),
    ClipSpec(name="broken", kind="status", status=503, note="server error"),
)}
GARBAGE_BYTES = 200_000


def generate_catalogue(directory: Path, *, codec: str | None = None,
                       names: Iterable[str] | None = None) -> dict[str, Path]:
    """Write every file-backed catalogue entry missing from `directory`; return name -> path.

    `codec` ("mp4v" or "h264") overrides each entry's own codec, e.g. H.264 for browser demos;
    `names` limits generation to those entries.
    """
    if codec is not None and codec not in CODECS:
        raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    wanted = None if names is None else set(names)
    for spec in CATALOGUE.values():
        if spec.kind not in ("clip", "garbage") or (wanted is not None and spec.name not in wanted):
            continue
        path = directory / spec.filename
        if not path.exists():
            # write under a temporary name then rename, so a crash never leaves half a clip
            tmp = directory / f".{spec.name}.{os.getpid()}.tmp.mp4"
            if spec.kind == "garbage":
                write_garbage(tmp, GARBAGE_BYTES, seed=spec.seed)
            else:
                write_clip(tmp, seed=spec.seed, scene=spec.scene, seconds=spec.seconds,
                           width=spec.width, height=spec.height, quality=spec.quality,
                           overlay=spec.overlay, trim_start_s=spec.trim_start_s,
                           codec=codec or spec.codec)
            os.replace(tmp, path)
        paths[spec.name] = path
    return paths
