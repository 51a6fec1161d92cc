"""Speed-ramped copies: the two-piece rule of footyd/media/ramp.py, on constructed fingerprints
and on a real slow-motion H.264 clip."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from footyd.config import Config
from footyd.media import Fingerprint, compare, fingerprint, probe
from footyd.media.fingerprint import to_signed64
from footyd.media.ramp import RAMP_MIN_RATIO
from footyd.sim.clipgen import ramp_seconds, write_clip

DC = Config().dedup
RULE = {"max_hamming": DC.max_hamming, "min_consecutive": DC.min_consecutive,
        "min_match_s": DC.min_match_s, "min_match_ratio": DC.min_match_ratio,
        "min_match_coverage": DC.min_match_coverage}
FPS = 5.0


def _hashes(n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [to_signed64(rng.getrandbits(64)) for _ in range(n)]


def _print(hashes: list[int]) -> Fingerprint:
    return Fingerprint(sample_fps=FPS, hashes=tuple(hashes))


def test_a_slowed_stretch_matches_at_two_offsets_both_ways_round() -> None:
    clip = _hashes(40, 1)
    # samples 12-17 shown twice each: six extra samples, 1.2 s of slow motion
    slowed = clip[:12] + [h for h in clip[12:18] for _ in range(2)] + clip[18:]
    a, b = _print(clip), _print(slowed)

    found = compare(a, b, **RULE)
    back = compare(b, a, **RULE)

    assert found is not None and back is not None
    # one sample of jitter on each side lets the pieces line up up to a sample early or late
    assert found.ramp_s == pytest.approx(1.2, abs=0.41)
    assert back.ramp_s == pytest.approx(-1.2, abs=0.41)
    assert found.offset_s == pytest.approx(0.0, abs=0.21)
    assert back.offset_s == pytest.approx(0.0, abs=0.21)
    assert found.ratio >= RAMP_MIN_RATIO and back.ratio >= RAMP_MIN_RATIO


def test_foreign_samples_between_the_pieces_are_not_a_ramp() -> None:
    """Every sample of the clip lines up at two offsets, but what lies between the pieces is not
    the clip slowed down: counted as unmatched, it keeps the share below RAMP_MIN_RATIO."""
    clip = _hashes(40, 2)
    spliced = clip[:20] + _hashes(10, 3) + clip[20:]

    assert compare(_print(clip), _print(spliced), **RULE) is None
    assert compare(_print(spliced), _print(clip), **RULE) is None


def test_pieces_from_two_different_clips_never_add_up() -> None:
    first, second = _hashes(40, 4), _hashes(40, 5)
    joined = first[:20] + second[20:]

    assert compare(_print(first), _print(joined), **RULE) is None
    # and one clip against a different one: nothing at one offset, nothing at two
    assert compare(_print(first), _print(second), **RULE) is None


def test_a_one_offset_copy_is_not_reported_as_a_ramp() -> None:
    clip = _hashes(40, 6)
    found = compare(_print(clip), _print(clip[5:]), **RULE)

    assert found is not None and found.ramp_s == 0.0 and found.offset_s == pytest.approx(1.0)


def test_a_real_slow_motion_replay_matches_its_broadcast(tmp_path: Path) -> None:
    """H.264 through PyAV: content 3.0-4.5 s played at 0.4x inside an 8 s clip."""
    ramp = (3.0, 4.5, 0.4)
    common = {"scene": 52, "stadium": 5, "overlay": "LEV 1-0 BAY", "codec": "h264",
              "seconds": 8.0, "width": 640, "height": 360}
    hd = write_clip(tmp_path / "hd.mp4", seed=520, **common)
    slow = write_clip(tmp_path / "slow.mp4", seed=521, ramp=ramp, **common)
    other = write_clip(tmp_path / "other.mp4", seed=530, **{**common, "scene": 53})
    assert probe(str(slow)).duration_s == pytest.approx(ramp_seconds(8.0, ramp), abs=0.1)
    prints = {p.stem: fingerprint(str(p), sample_fps=DC.reference_fps) for p in (hd, slow, other)}

    found = compare(prints["hd"], prints["slow"], **RULE)

    assert found is not None, "the slow-motion copy is the same clip"
    # the extra time: 1.5 s of content played over 3.75 s
    assert found.ramp_s == pytest.approx(2.25, abs=0.6)
    assert compare(prints["other"], prints["slow"], **RULE) is None
