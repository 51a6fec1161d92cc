"""The PyAV sampled decode on real H.264 clips: timestamps, skipped frames, damage, cost cap."""

from __future__ import annotations

import itertools
import multiprocessing
import random
import statistics
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path

import av
import pytest

from footyd.errors import DownloadFailed
from footyd.media import fingerprint, hamming
from footyd.media.decode import sample_frames, stream_info
from footyd.sim.clipgen import write_clip

# its module-scoped clips are built once: one worker runs the file
pytestmark = pytest.mark.xdist_group("test_decode")

REF_FPS = 5.0


@pytest.fixture(scope="module")
def clip50(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s of a panning scene at 50 frames/s, libx264 (b-frames, so NONREF has work to skip)."""
    return write_clip(tmp_path_factory.mktemp("decode") / "c50.mp4", seed=61, seconds=4.0,
                      width=320, height=180, fps=50.0, stadium=2, codec="h264")


def _vfr_copy(src: Path, dst: Path, *, seed: int) -> Path:
    """Re-encode `src` keeping a random ~half of its frames at their original timestamps."""
    keep = random.Random(seed)
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        ins = inp.streams.video[0]
        outs = out.add_stream("libx264", rate=50)
        outs.width, outs.height, outs.pix_fmt = ins.width, ins.height, "yuv420p"
        for i, frame in enumerate(inp.decode(ins)):
            if i == 0 or keep.random() < 0.5:
                frame.pts = i
                frame.time_base = Fraction(1, 50)
                out.mux(outs.encode(frame.reformat(format="yuv420p")))
        out.mux(outs.encode(None))
    return dst


def test_samples_follow_timestamps_on_variable_frame_rate(clip50: Path, tmp_path: Path) -> None:
    vfr = _vfr_copy(clip50, tmp_path / "vfr.mp4", seed=3)
    cfr_fp = fingerprint(str(clip50), sample_fps=REF_FPS)
    vfr_fp = fingerprint(str(vfr), sample_fps=REF_FPS)
    assert len(cfr_fp.hashes) == 20
    assert abs(len(vfr_fp.hashes) - 20) <= 1
    # sampled by time, not by frame index: the same moments are hashed
    dists = [hamming(a, b) for a, b in zip(cfr_fp.hashes, vfr_fp.hashes, strict=False)]
    # re-encode noise only: well below what one sample (0.2 s) of drift costs in this clip
    drift = [hamming(a, b) for a, b in itertools.pairwise(cfr_fp.hashes)]
    assert statistics.median(dists) <= 4 < statistics.median(drift), (dists, drift)
    # truly variable: ~half the frames over the full 4 s, so sampling every 10th decoded frame
    # (frame index / nominal rate) would have hashed ~10 samples drifting to twice their time
    with av.open(str(vfr)) as c:
        times = [f.time for f in c.decode(c.streams.video[0])]
    assert len(times) < 150 and times[-1] > 3.9


def test_nonref_skipping_keeps_the_hashes(clip50: Path) -> None:
    """50 frames/s vs 5 samples/s allows NONREF; its hashes agree with a full decode."""
    fast = fingerprint(str(clip50), sample_fps=REF_FPS)
    full = fingerprint(str(clip50), sample_fps=REF_FPS, allow_nonref=False)
    assert len(fast.hashes) == len(full.hashes) == 20 and fast.truncated == ""
    dists = [hamming(a, b) for a, b in zip(fast.hashes, full.hashes, strict=True)]
    assert statistics.median(dists) <= 1 and max(dists) <= 8, dists
    assert fingerprint(str(clip50), sample_fps=REF_FPS) == fast  # deterministic
    # a dense rate turns NONREF off: every frame is a sample
    assert len(sample_frames(str(clip50), sample_fps=50.0, width=36, height=32).frames) == 200


def test_stream_info_reads_headers(clip50: Path) -> None:
    info = stream_info(str(clip50))
    assert (info.width, info.height, info.fps) == (320, 180, 50.0)
    assert info.duration_s == pytest.approx(4.0, abs=0.05)


def test_truncated_file_is_fingerprinted_up_to_the_cut(clip50: Path, tmp_path: Path) -> None:
    data = clip50.read_bytes()
    half = tmp_path / "half.mp4"
    half.write_bytes(data[: len(data) // 2])  # moov up front: the start still plays
    full = fingerprint(str(clip50), sample_fps=REF_FPS)
    part = fingerprint(str(half), sample_fps=REF_FPS)
    assert 3 <= len(part.hashes) < len(full.hashes)
    assert part.hashes == full.hashes[: len(part.hashes)]
    assert part.truncated.startswith("decode errors:")
    assert part.to_doc()["truncated"] == part.truncated


def test_corrupt_middle_never_crashes_the_worker(clip50: Path, tmp_path: Path) -> None:
    data = bytearray(clip50.read_bytes())
    rng = random.Random(1)
    for i in range(len(data) // 3, len(data) // 3 + len(data) // 5):
        data[i] = rng.randrange(256)
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(bytes(data))
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        fp = pool.submit(fingerprint, str(bad), sample_fps=REF_FPS).result(timeout=60)
        assert pool.submit(len, "alive").result(timeout=60) == 5  # the same worker lives on
    assert fp.hashes and fp.truncated


def test_moov_at_end_truncated_is_refused_with_a_reason(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "m.mp4", seed=5, seconds=2.0, width=320, height=180)  # mp4v
    data = src.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(DownloadFailed) as err:
        fingerprint(str(tmp_path / "cut.mp4"), sample_fps=REF_FPS)
    assert err.value.kind == "invalid_media" and "cannot open" in err.value.reason


def test_decode_cost_cap_refuses_before_decoding(clip50: Path) -> None:
    # 4 s x 0.0576 megapixels = 0.23 megapixel-s
    assert fingerprint(str(clip50), sample_fps=REF_FPS, max_megapixel_s=0.3).hashes
    with pytest.raises(DownloadFailed) as err:
        fingerprint(str(clip50), sample_fps=REF_FPS, max_megapixel_s=0.2)
    assert err.value.kind == "filtered"
    assert err.value.reason.startswith("decode cost 0.2 megapixel-s (duration x size) above")
