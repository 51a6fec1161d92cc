"""The crop step on real H.264 clips (footyd.sim.corpus, real PyAV and OpenCV)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from footyd.cli import explain
from footyd.config import Config
from footyd.media.crop import crop_pairs, window_match
from footyd.media.fingerprint import (
    SMALL_H,
    SMALL_W,
    Fingerprint,
    _hash_region,
    compare,
    fingerprint,
    fingerprint_frames,
    hamming,
)
from footyd.media.probe import probe
from footyd.media.windows import WINDOW_MAX_SAMPLES, WINDOWS, window_hashes
from footyd.sim.corpus import build_corpus
from footyd.stages.dedup_rules import ClipQuality, Evidence, match_and_group, representative
from tests.plugins.corpus import quarter_specs

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("test_crop")]

DC = Config().dedup
RULE = {"max_hamming": DC.max_hamming, "min_consecutive": DC.min_consecutive,
        "min_match_s": DC.min_match_s, "min_match_ratio": DC.min_match_ratio,
        "min_match_coverage": DC.min_match_coverage}
# one goal, 5 s, quarter size: its copies (an off-centre crop among them), another angle, and
# the main camera at later moments (tight and wide): the full-size figures are bench/dedup_quality
SPECS = [s for s in quarter_specs(goals=1) if s.scored]
NAMES = [s.name for s in SPECS]
LABEL = {s.name: s.label for s in SPECS}


@pytest.fixture(scope="module")
def paths(quarter_corpus: Path) -> dict[str, Path]:
    return build_corpus(quarter_corpus, SPECS)


@pytest.fixture(scope="module")
def prints(paths: dict[str, Path]) -> list[Fingerprint]:
    return [fingerprint(str(paths[n]), sample_fps=DC.reference_fps) for n in NAMES]


@pytest.fixture(scope="module")
def quality(paths: dict[str, Path]) -> list[ClipQuality]:
    return [ClipQuality(clip_id=n, duration_s=info.duration_s, width=info.width,
                        height=info.height, bitrate_bps=info.size_bytes * 8 / info.duration_s,
                        stored_at=datetime(2026, 1, 1, tzinfo=UTC))
            for n in NAMES for info in [probe(str(paths[n]))]]


def _labels(groups: list[list[int]]) -> list[set[str]]:
    return [{LABEL[NAMES[i]] for i in g} for g in groups]


def _group_of(name: str, groups: list[list[int]]) -> set[str]:
    return next({NAMES[i] for i in g} for g in groups if NAMES.index(name) in g)


def test_an_off_centre_crop_is_found_through_one_window_at_its_offset(
        prints: list[Fingerprint]) -> None:
    hd, crop = prints[NAMES.index("g0_hd")], prints[NAMES.index("g0_offcrop")]
    assert compare(hd, crop, **RULE) is None  # no centre crop lines up with it
    found = window_match(hd, crop, min_consecutive=DC.min_consecutive,
                         min_match_s=DC.min_match_s, min_match_coverage=DC.min_match_coverage)
    assert found is not None and found.crop_window
    assert found.offset_s == pytest.approx(0.5, abs=0.2 + 1e-9)  # the crop's copy starts 0.5 s in
    assert found.ratio >= 0.9


def test_the_crop_step_joins_the_crop_and_keeps_every_clip_apart(
        prints: list[Fingerprint], quality: list[ClipQuality]) -> None:
    _, before = match_and_group(NAMES, prints, quality, **RULE)
    assert _group_of("g0_offcrop", before.groups) == {"g0_offcrop"}
    pairs, after = match_and_group(NAMES, prints, quality, crops=True, **RULE)
    assert {"g0_hd", "g0_offcrop"} <= _group_of("g0_offcrop", after.groups)
    assert any(m.crop_window for i, j, m in pairs if "g0_offcrop" in (NAMES[i], NAMES[j]))
    group = next(g for g in after.groups if NAMES.index("g0_offcrop") in g)
    kept = NAMES[representative(quality)(group)]
    evidence = Evidence(NAMES, pairs, after).of("g0_offcrop", kept)
    assert evidence.get("crop_window") and "crop window" in explain._evidence(evidence)
    # the tight shots are crops of the main camera too, of other moments: never joined
    assert all(len(labels) == 1 for labels in _labels(after.groups))
    assert len(after.groups) == len(set(LABEL.values()))


def test_the_crop_step_stops_at_its_budget(prints: list[Fingerprint],
                                           quality: list[ClipQuality]) -> None:
    pairs, grouping = match_and_group(NAMES, prints, quality, **RULE)
    rule = {"min_consecutive": DC.min_consecutive, "min_match_s": DC.min_match_s,
            "min_match_coverage": DC.min_match_coverage}
    best = representative(quality)
    assert crop_pairs(prints, grouping, pairs, best, **rule)
    assert crop_pairs(prints, grouping, pairs, best, budget=0, **rule) == []


def test_every_window_hash_is_the_dhash_of_the_picture_cropped_there() -> None:
    """The summed-area hashing of all WINDOWS (every zoom, every shift) against OpenCV's
    area resize of each window cut out (ties between near-equal cells may flip a bit)."""
    rng = np.random.default_rng(7)
    h, w = SMALL_H, SMALL_W
    picture = cv2.GaussianBlur(rng.uniform(0, 255, (h, w)), (0, 0), 3).astype(np.uint8)
    hashed = window_hashes(picture[None])
    for k, (frac, sx, sy) in enumerate(WINDOWS):
        top, left = round(h * frac * (1 + sy)), round(w * frac * (1 + sx))
        cut = picture[top:top + round(h * (1 - 2 * frac)), left:left + round(w * (1 - 2 * frac))]
        assert hamming(int(hashed[k, 0]), _hash_region(cut)[0]) <= 2, WINDOWS[k]
    assert len({z for z, _, _ in WINDOWS}) == 7 and len(WINDOWS) == 175


@functools.cache
def _pan(samples: int, crop: tuple[float, float, float] | None = None) -> tuple[np.ndarray, ...]:
    """Small gray pictures of a camera panning over a textured world at a varying speed;
    with `crop` (as a window: zoom, x shift, y shift), a re-poster's crop of each."""
    rng = np.random.default_rng(3)
    world = cv2.GaussianBlur(rng.uniform(0, 255, (300, 2400)), (0, 0), 12)
    world = (world - world.min()) * 255 / np.ptp(world)  # shapes the size of a hash cell
    xs = np.cumsum(rng.uniform(0.0, 8.0, samples)).astype(int)
    ys = (40 + 30 * np.sin(np.arange(samples) / 9)).astype(int)
    out = []
    for x, y in zip(xs, ys, strict=True):
        view = world[y:y + 180, x:x + 320]
        if crop is not None:
            frac, sx, sy = crop
            top, left = round(180 * frac * (1 + sy)), round(320 * frac * (1 + sx))
            view = view[top:top + round(180 * (1 - 2 * frac)), left:left + round(320 * (1 - 2 * frac))]
        out.append(cv2.resize(view.astype(np.float32), (SMALL_W, SMALL_H),
                              interpolation=cv2.INTER_AREA).astype(np.uint8))
    return tuple(out)


@functools.cache
def _long_print() -> Fingerprint:
    return fingerprint_frames(_pan(400), sample_fps=5.0)  # windows for every 4th sample


def test_a_long_clip_holds_its_windows_at_a_stride_and_still_finds_its_crop() -> None:
    """80 s at 5/s: windows for every 4th sample (a bounded document), and an off-centre crop
    re-posted from 8 s in is still found through one window, at 8 s, which `compare` misses."""
    long_print = _long_print()
    crop_print = fingerprint_frames(_pan(400, crop=(0.12, 1.0, -1.0))[40:300], sample_fps=5.0)
    assert (long_print.window_stride, crop_print.window_stride) == (4, 2)
    assert long_print.windows.shape == (len(WINDOWS), 100) and 100 <= WINDOW_MAX_SAMPLES
    doc = long_print.to_doc()
    assert len(doc["windows"]) == len(WINDOWS) * 100 * 8
    again = Fingerprint.from_doc(doc)
    assert again.window_stride == 4 and np.array_equal(again.windows, long_print.windows)
    assert compare(long_print, crop_print, **RULE) is None
    found = window_match(long_print, crop_print, min_consecutive=DC.min_consecutive,
                         min_match_s=DC.min_match_s, min_match_coverage=DC.min_match_coverage)
    assert found is not None and found.crop_window and found.offset_s == pytest.approx(8.0, abs=0.8)


def test_windows_held_at_a_stride_are_kept_only_where_they_line_up() -> None:
    fp = _long_print()
    half = fp.every(2)
    assert half.window_stride == 2 and np.array_equal(half.windows, fp.windows)
    eighth = fp.every(8)
    assert eighth.window_stride == 1 and np.array_equal(eighth.windows, fp.windows[:, ::2])
    assert eighth.windows.shape[1] == len(eighth.hashes)
    assert fp.every(3).windows.size == 0  # no sample of every 3rd has its windows
