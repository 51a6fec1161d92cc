"""A labelled dedup corpus of broadcast-like H.264 clips with hard negatives (bench and tests).

One match: every clip shares the stadium panorama and the score bug. Per goal: the HD original
and its re-posts (480p, low-bitrate 360p, whole and fractional trims, cut ends, watermark, crop +
watermark + trim + low-bitrate combos, two off-centre, a speed-ramped slow motion), another
camera angle of the same goal (a distinct clip, with a re-post of its own), the same camera's
shots of other moments (a zoomed-in one from the same position, with a re-post; another zoomed
one; a wide one), which are geometrically crops of the main camera's panorama and so the hard
negative for any crop-tolerant rule, and a portrait cut and a pillarboxed 4:3 copy (which must
never match another clip; whether they match their own is not scored).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from footyd.sim.clipgen import H264Options, write_clip

SCORE_BUG = "LEV 1-0 BAY"
STADIUM = 11


@dataclass(frozen=True)
class CorpusClip:
    """One file of the corpus: `label` names the distinct clip it is a copy of."""

    name: str
    label: str
    kwargs: dict[str, Any] = field(hash=False)
    scored: bool = True  # False: only its matches with other labels count (as false positives)


def _even(x: float) -> int:
    return max(16, 2 * round(x / 2))


def corpus_specs(*, goals: int = 4, seconds: float = 8.0, scale: float = 1.0) -> list[CorpusClip]:
    """The corpus for `goals` goals of `seconds` each; `scale` shrinks every frame size."""
    def size(w: int, h: int) -> dict[str, int]:
        return {"width": _even(w * scale), "height": _even(h * scale)}

    def abr(kbps: int) -> H264Options:
        return H264Options(bitrate_kbps=max(30, round(kbps * scale * scale)))

    def tight(zoom_frac: float, shift: tuple[float, float], start_s: float) -> dict[str, Any]:
        return {"reframe": "zoom", "zoom_frac": zoom_frac, "zoom_shift": shift,
                "trim_start_s": start_s}

    out: list[CorpusClip] = []
    for g in range(goals):
        scene, label = 100 + g, f"goal{g}"
        base: dict[str, Any] = {"scene": scene, "stadium": STADIUM, "overlay": SCORE_BUG,
                                "codec": "h264", "seconds": seconds}
        variants: list[tuple[str, str, dict[str, Any], bool]] = [
            ("hd", label, size(1280, 720), True),
            ("p480", label, size(854, 480), True),
            ("low360", label, {**size(640, 360), "h264": abr(200)}, True),
            ("trim1", label, {**size(640, 360), "trim_start_s": 1.0, "seconds": seconds - 1.0}, True),
            ("trim04", label, {**size(854, 480), "trim_start_s": 0.4, "seconds": seconds - 0.4}, True),
            ("cut", label, {**size(1280, 720), "trim_start_s": 0.7, "seconds": seconds - 2.2}, True),
            ("wmark", label, {**size(854, 480), "watermark": "@goalsdaily"}, True),
            ("combo", label, {**size(640, 360), "reframe": "zoom", "zoom_frac": 0.08,
                              "watermark": "@footy_hd", "trim_start_s": 0.7,
                              "seconds": seconds - 2.0, "h264": abr(300)}, True),
            ("combo2", label, {**size(854, 480), "reframe": "zoom", "zoom_frac": 0.12,
                               "trim_start_s": 1.3, "seconds": seconds - 1.9,
                               "watermark": "REPLAY", "h264": abr(350)}, True),
            # a slow-motion replay (content 4.0-5.5 s at 0.4x) and an off-centre crop: other
            # ramps and crops than the held-out corpus's, so B still tests what A taught
            ("slowmo", label, {**size(854, 480), "ramp": (0.5 * seconds, 0.6875 * seconds, 0.4)}, True),
            ("offcrop", label, {**size(640, 360), "reframe": "zoom", "zoom_frac": 0.1,
                                "zoom_shift": (-0.9, 0.7), "trim_start_s": 0.5,
                                "seconds": seconds - 1.2, "watermark": "@clips24",
                                "h264": abr(300)}, True),
            ("angle", f"{label}_angle", {**size(1280, 720), "angle": 1}, True),
            ("angle_low", f"{label}_angle", {**size(640, 360), "angle": 1, "h264": abr(250)}, True),
            ("portrait", label, {**size(360, 640), "reframe": "portrait"}, False),
            ("pillar", label, {**size(640, 360), "reframe": "pillarbox"}, False),
            # the main camera at later moments, each its own stretch of time (none overlapping
            # the goal's or another's, so no two labels share a frame): tight shots (the bottom
            # 70% of the wide picture, as a zoomed camera on the same gantry sees it; one with a
            # re-post) and wide shots of a scene that nearly repeats itself
            ("tight", f"{label}_tight", {**size(1280, 720), **tight(0.15, (0.0, 1.0), seconds + 1)},
             True),
            ("tight_low", f"{label}_tight", {**size(640, 360), **tight(0.15, (0.0, 1.0), seconds + 1),
                                             "h264": abr(250)}, True),
            ("tight2", f"{label}_tight2", {**size(1280, 720),
                                           **tight(0.12, (0.8, -0.5), 3 * seconds + 3)}, True),
            ("late", f"{label}_late", {**size(1280, 720), "trim_start_s": 2 * seconds + 2}, True),
            ("late2", f"{label}_late2", {**size(1280, 720), "trim_start_s": 4 * seconds + 4}, True),
            # an off-centre crop that falls between the crop windows in zoom and both shifts
            ("offcrop2", label, {**size(854, 480), "reframe": "zoom", "zoom_frac": 0.105,
                                 "zoom_shift": (0.3, -0.3), "trim_start_s": 0.9,
                                 "seconds": seconds - 1.7, "watermark": "@matchday",
                                 "h264": abr(320)}, True),
        ]
        for i, (kind, lab, kw, scored) in enumerate(variants):
            out.append(CorpusClip(f"g{g}_{kind}", lab, {**base, **kw, "seed": scene * 100 + i},
                                  scored))
    return out


def build_corpus(directory: Path, specs: list[CorpusClip]) -> dict[str, Path]:
    """Write the clips missing from `directory` (a cache: names encode the spec); name -> path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for spec in specs:
        key = hashlib.sha1(repr(sorted(spec.kwargs.items())).encode()).hexdigest()[:10]
        path = directory / f"{spec.name}-{key}.mp4"
        if not path.exists():
            tmp = directory / f".{spec.name}.{os.getpid()}.tmp.mp4"
            write_clip(tmp, **spec.kwargs)
            os.replace(tmp, path)
        paths[spec.name] = path
    return paths
