"""Probe (OpenCV) and perceptual fingerprint (PyAV) of real generated clips, no mocks."""

from __future__ import annotations

import itertools
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import bson
import cv2
import numpy as np
import pytest

from footyd.config import Config
from footyd.errors import DownloadFailed
from footyd.media import Fingerprint, compare, fingerprint, hamming, probe
from footyd.media.fingerprint import to_signed64
from footyd.media.windows import WINDOWS
from footyd.sim.clipgen import write_clip, write_garbage

# its module-scoped clips are built once: one worker runs the file
pytestmark = pytest.mark.xdist_group("test_fingerprint")

REF_FPS = 5.0
DEDUP = Config().dedup
MAX_HAMMING = DEDUP.max_hamming
MIN_CONSECUTIVE = DEDUP.min_consecutive
RULE = {"max_hamming": MAX_HAMMING, "min_consecutive": MIN_CONSECUTIVE,
        "min_match_s": DEDUP.min_match_s, "min_match_ratio": DEDUP.min_match_ratio,
        "min_match_coverage": DEDUP.min_match_coverage}
OVERLAY = "LEV 1-0 BAY"

A = 41
VARIANTS: dict[str, dict[str, Any]] = {
    "a": dict(seed=A),
    "a_small": dict(seed=100, scene=A, width=480, height=270),
    "a_720p": dict(seed=101, scene=A, width=1280, height=720),
    "a_low": dict(seed=102, scene=A, quality=10),
    "a_30fps": dict(seed=103, scene=A, fps=30.0),
    "a_trim1": dict(seed=104, scene=A, seconds=3.0, trim_start_s=1.0),
    "a_trim05": dict(seed=105, scene=A, seconds=3.5, trim_start_s=0.5),
    "a_logo": dict(seed=106, scene=A, overlay=OVERLAY),
    "a_combo": dict(seed=107, scene=A, seconds=3.5, trim_start_s=0.5, width=480, height=270,
                    quality=15, overlay=OVERLAY),
}
OTHERS: dict[str, dict[str, Any]] = {
    "b": dict(seed=42),
    "c_logo": dict(seed=43, overlay=OVERLAY),
    "d_logo": dict(seed=44, overlay=OVERLAY),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fp_clips")
    paths = {}
    for name, kw in {**VARIANTS, **OTHERS}.items():
        paths[name] = write_clip(root / f"{name}.mp4", **{"seconds": 4.0, **kw})
    return paths


@pytest.fixture(scope="module")
def fps(clips: dict[str, Path]) -> dict[str, Fingerprint]:
    return {name: fingerprint(str(p), sample_fps=REF_FPS) for name, p in clips.items()}


def _cmp(a: Fingerprint, b: Fingerprint) -> Any:
    return compare(a, b, **RULE)


def test_probe_good_clip(clips: dict[str, Path]) -> None:
    info = probe(str(clips["a_720p"]))
    assert (info.width, info.height) == (1280, 720)
    assert info.fps == pytest.approx(25.0)
    assert abs(info.duration_s - 4.0) <= 1 / 25 + 1e-9
    assert abs(info.frame_count - 100) <= 1
    assert info.codec and info.size_bytes == clips["a_720p"].stat().st_size
    assert info.aspect == pytest.approx(16 / 9) and info.short_side_px == 720


def test_probe_portrait(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "p.mp4", seed=5, seconds=2.0, width=360, height=640)
    info = probe(str(path))
    assert (info.width, info.height) == (360, 640)
    assert info.aspect < 1


def _truncated(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


@pytest.mark.parametrize("kind", ["garbage", "empty", "truncated", "text", "missing"])
def test_probe_and_fingerprint_reject_invalid_media(kind: str, tmp_path: Path,
                                                    clips: dict[str, Path]) -> None:
    path = tmp_path / "bad.mp4"
    if kind == "garbage":
        write_garbage(path, 300_000, seed=9)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        _truncated(clips["a"], path)
    elif kind == "text":
        path.write_text("<html><body>Sorry, this video is not available</body></html>")
    with pytest.raises(DownloadFailed) as probe_err:
        probe(str(path))
    assert probe_err.value.kind == "invalid_media" and not probe_err.value.retryable
    with pytest.raises(DownloadFailed) as fp_err:
        fingerprint(str(path), sample_fps=REF_FPS)
    assert fp_err.value.kind == "invalid_media"


def test_fingerprint_sampling_rate(fps: dict[str, Fingerprint]) -> None:
    a = fps["a"]
    assert a.sample_fps == REF_FPS
    assert len(a.hashes) == 20  # 4 s at 5 samples/s
    assert len(fps["a_30fps"].hashes) == 20
    # motion: consecutive samples differ, so the time offset is identifiable
    assert sum(hamming(x, y) for x, y in itertools.pairwise(a.hashes)) > 0


@pytest.mark.parametrize("name", [n for n in VARIANTS if n != "a"])
def test_every_variant_matches_original(name: str, fps: dict[str, Fingerprint]) -> None:
    result = _cmp(fps["a"], fps[name])
    assert result is not None, name
    assert result.run_length >= MIN_CONSECUTIVE
    assert result.mean_distance <= MAX_HAMMING


def test_variants_mostly_match_each_other(fps: dict[str, Fingerprint]) -> None:
    pairs = list(itertools.combinations(VARIANTS, 2))
    matched = [p for p in pairs if _cmp(fps[p[0]], fps[p[1]]) is not None]
    assert len(matched) / len(pairs) >= 0.9, set(pairs) - set(matched)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_distinct_clip_never_matches(variant: str, fps: dict[str, Fingerprint]) -> None:
    assert _cmp(fps[variant], fps["b"]) is None
    assert _cmp(fps[variant], fps["d_logo"]) is None


def test_same_overlay_different_scenes_do_not_match(fps: dict[str, Fingerprint]) -> None:
    # lesson 27: shared broadcast graphics alone must not make two goals' clips duplicates
    assert _cmp(fps["c_logo"], fps["d_logo"]) is None
    assert _cmp(fps["a_logo"], fps["c_logo"]) is None


@pytest.mark.parametrize(("name", "trim_s"), [("a_trim1", 1.0), ("a_trim05", 0.5),
                                              ("a_combo", 0.5)])
def test_trimmed_copy_reports_offset(name: str, trim_s: float,
                                     fps: dict[str, Fingerprint]) -> None:
    forward = _cmp(fps["a"], fps[name])
    backward = _cmp(fps[name], fps["a"])
    assert forward is not None and backward is not None
    # one dense interval (0.2 s) is the resolution of the offset
    assert forward.offset_s == pytest.approx(trim_s, abs=1 / REF_FPS + 1e-9)
    assert backward.offset_s == pytest.approx(-forward.offset_s)
    assert backward.run_length == forward.run_length


def test_sparser_fingerprint_is_compared_at_its_rate(clips: dict[str, Path],
                                                      fps: dict[str, Fingerprint]) -> None:
    sparse = fingerprint(str(clips["a_trim05"]), sample_fps=2.5)
    assert sparse.sample_fps == 2.5
    result = _cmp(fps["a"], sparse)
    assert result is not None and result.offset_s == pytest.approx(0.5, abs=0.4)
    assert _cmp(fps["b"], sparse) is None


def test_match_thresholds_are_enforced(fps: dict[str, Fingerprint]) -> None:
    # a trimmed 3 s copy has 15 samples at 5 frames/s
    assert compare(fps["a"], fps["a_trim1"], **{**RULE, "min_consecutive": 50}) is None
    assert compare(fps["a"], fps["a_trim1"], **{**RULE, "min_match_s": 3.2}) is None
    assert compare(fps["a"], fps["a_logo"], **{**RULE, "max_hamming": 0}) is None
    found = _cmp(fps["a"], fps["a_trim1"])
    assert found is not None and found.matched >= 0.7 * found.overlap and found.overlap >= 14


def test_flat_frames_never_match(tmp_path: Path) -> None:
    path = tmp_path / "black.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 25.0, (640, 360))
    assert writer.isOpened()
    for _ in range(75):
        writer.write(np.zeros((360, 640, 3), dtype=np.uint8))
    writer.release()
    black = fingerprint(str(path), sample_fps=REF_FPS)
    assert len(black.flat) == len(black.hashes) == 15
    assert _cmp(black, black) is None


def test_doc_round_trip_is_int64_and_bson_safe(fps: dict[str, Fingerprint]) -> None:
    fp = fps["a_combo"]
    doc = fp.to_doc()
    assert all(-(2**63) <= h < 2**63 for h in doc["hashes"])
    decoded = bson.decode(bson.encode({"fp": doc}))["fp"]
    again = Fingerprint.from_doc(decoded)
    assert again == fp
    assert np.array_equal(again.windows, fp.windows) and fp.windows.shape == (len(WINDOWS), len(fp.hashes))
    assert to_signed64(2**63 + 5) == -(2**63) + 5
    assert hamming(to_signed64(2**64 - 1), 0) == 64


def test_an_older_or_damaged_doc_is_refused(fps: dict[str, Fingerprint]) -> None:
    """The dedup stage fingerprints such a clip again from storage."""
    doc = fps["a"].to_doc()
    with pytest.raises(ValueError, match="version"):
        Fingerprint.from_doc({**doc, "v": 3})  # 100 windows, fewer than a v4 doc's
    with pytest.raises(ValueError, match="windows"):
        Fingerprint.from_doc({**doc, "windows": doc["windows"][:-8]})


def test_subsample_never_below_requested_rate(fps: dict[str, Fingerprint]) -> None:
    sub = fps["a"].subsample(2.0)
    assert sub.sample_fps == 2.5 and sub.hashes == fps["a"].hashes[::2]
    assert sub.zooms == tuple(z[::2] for z in fps["a"].zooms)
    assert np.array_equal(sub.windows, fps["a"].windows[:, ::2])
    assert fps["a"].subsample(10.0) is fps["a"]


def test_results_are_picklable_and_run_in_a_process_pool(clips: dict[str, Path],
                                                         fps: dict[str, Fingerprint]) -> None:
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        remote = pool.submit(fingerprint, str(clips["a"]), sample_fps=REF_FPS).result(timeout=60)
        info = pool.submit(probe, str(clips["a"])).result(timeout=60)
    assert remote == fps["a"]
    assert info.width == 640
    match = _cmp(fps["a"], fps["a_logo"])
    assert pickle.loads(pickle.dumps(match)) == match
